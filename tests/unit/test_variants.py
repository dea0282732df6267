"""Model variants: the manifest records them, the store checks them, the setting picks one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from pydantic import ValidationError

from app.config import Settings
from app.errors import CorruptModel
from app.metrics import Metrics
from app.runtime import variants as variants_module
from app.runtime.backend import LoadedSession, SessionOptions, create_session
from app.runtime.batcher import BatchLimits
from app.runtime.engine import EngineConfig, InferenceEngine
from app.runtime.variants import VariantSetting, choose_variant, load_variant
from app.service import engine_config
from app.store.manifest import (
    FP16,
    FP16_FILE,
    FP32,
    INT8,
    INT8_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    Manifest,
    Variant,
)
from app.store.versions import ModelStore
from tests.support.tiny_model import WORDS, publish_tiny_classifier

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def manifest_with(accuracy: dict[str, float] | None, *, int8: bool = True) -> Manifest:
    """A manifest whose variants record ``accuracy`` (a variant left out records none)."""
    scores = accuracy or {}
    variants = {
        FP32: Variant(file=MODEL_FILE, eval={"accuracy": scores[FP32]} if FP32 in scores else {})
    }
    if int8:
        variants[INT8] = Variant(
            file=INT8_FILE, eval={"accuracy": scores[INT8]} if INT8 in scores else {}
        )
    if FP16 in scores:
        variants[FP16] = Variant(file=FP16_FILE, eval={"accuracy": scores[FP16]})
    return Manifest(
        name="sentiment", labels=["negative", "positive"], base_model="tiny", max_seq_length=16,
        variants=variants,
    )  # fmt: skip


# -- the manifest ------------------------------------------------------------------------------
def test_manifest_round_trips_its_variants() -> None:
    manifest = manifest_with({FP32: 0.91, INT8: 0.905})
    manifest.variants[INT8].eval.update({"macro_f1": 0.9, "n": 872})

    again = Manifest.model_validate_json(manifest.model_dump_json())

    assert again == manifest
    assert again.variant_files() == {FP32: MODEL_FILE, INT8: INT8_FILE}
    assert again.variants[INT8].eval == {"accuracy": 0.905, "macro_f1": 0.9, "n": 872}
    assert (again.variant_accuracy(FP32), again.variant_accuracy(INT8)) == (0.91, 0.905)


def test_a_manifest_without_variants_is_fp32_only() -> None:
    old = {"name": "sentiment", "labels": ["a", "b"], "base_model": "x", "max_seq_length": 8}

    manifest = Manifest.model_validate_json(json.dumps(old))

    assert manifest.variants == {}
    assert manifest.variant_files() == {FP32: MODEL_FILE}
    assert manifest.variant_accuracy(FP32) is None
    assert manifest.variant_accuracy(INT8) is None


def test_variants_given_as_bare_file_names_still_read() -> None:
    # The shape the field had before variants recorded their accuracy.
    raw = {
        "name": "sentiment", "labels": ["a", "b"], "base_model": "x", "max_seq_length": 8,
        "variants": {"int8": "model.int8.onnx"},
    }  # fmt: skip

    manifest = Manifest.model_validate_json(json.dumps(raw))

    assert manifest.variants == {INT8: Variant(file=INT8_FILE)}
    assert manifest.variant_files() == {FP32: MODEL_FILE, INT8: INT8_FILE}


# -- the store ---------------------------------------------------------------------------------
def test_publish_checksums_both_variant_files(store: ModelStore) -> None:
    manifest = publish_tiny_classifier(store, int8=True, variant_accuracy={FP32: 0.9, INT8: 0.9})

    assert {MODEL_FILE, INT8_FILE, "tokenizer.json"} == set(manifest.files)
    assert store.verify("sentiment", 1) == manifest
    on_disk = json.loads((store.version_dir("sentiment", 1) / MANIFEST_FILE).read_text())
    assert on_disk["variants"] == {
        "fp32": {"file": "model.onnx", "eval": {"accuracy": 0.9, "n": 200}},
        "int8": {"file": "model.int8.onnx", "eval": {"accuracy": 0.9, "n": 200}},
    }
    # Really quantized: the projection's weights are stored as int8.
    graph = onnx.load(str(store.version_dir("sentiment", 1) / INT8_FILE)).graph
    int8_weights = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.INT8}
    assert "weight_quantized" in int8_weights


def test_a_corrupt_int8_file_refuses_the_version_like_fp32(store: ModelStore) -> None:
    publish_tiny_classifier(store, seed=1, int8=True)
    publish_tiny_classifier(store, seed=2, int8=True, activate=False)
    int8 = store.version_dir("sentiment", 2) / INT8_FILE
    int8.write_bytes(int8.read_bytes()[:-10] + b"0123456789")

    with pytest.raises(CorruptModel, match=r"checksum mismatch for model\.int8\.onnx"):
        store.set_active("sentiment", 2)
    assert store.active_version("sentiment") == 1


def test_a_variant_file_without_a_checksum_is_refused(store: ModelStore) -> None:
    publish_tiny_classifier(store, int8=True)
    path = store.version_dir("sentiment", 1) / MANIFEST_FILE
    raw = json.loads(path.read_text())
    del raw["files"][INT8_FILE]  # the file could then be swapped unnoticed
    path.write_text(json.dumps(raw))

    with pytest.raises(CorruptModel, match=r"int8 file model\.int8\.onnx has no checksum"):
        store.verify("sentiment", 1)


def test_publishing_a_variant_whose_file_is_missing_fails(
    store: ModelStore, tmp_path: Path
) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / MODEL_FILE).write_bytes(b"onnx")

    with pytest.raises(CorruptModel, match=r"int8 file model\.int8\.onnx missing"):
        store.publish(staging, manifest_with(None))
    assert store.versions("sentiment") == []


# -- choosing ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("setting", "accuracy", "provider", "expected"),
    [
        ("fp32", {FP32: 0.90, INT8: 0.90}, CPU, FP32),
        ("int8", {FP32: 0.90, INT8: 0.50}, CPU, INT8),  # asked for: no accuracy check
        ("int8", {FP32: 0.90, INT8: 0.90}, CUDA, INT8),
        ("auto", {FP32: 0.90, INT8: 0.895}, CPU, INT8),
        ("auto", {FP32: 0.90, INT8: 0.89}, CPU, INT8),  # exactly one point: within
        ("auto", {FP32: 0.90, INT8: 0.92}, CPU, INT8),
        ("auto", {FP32: 0.90, INT8: 0.889}, CPU, FP32),  # more than a point worse
        ("auto", {FP32: 0.90, INT8: 0.85}, CPU, FP32),
        ("auto", {FP32: 0.90}, CPU, FP32),  # int8 never scored
        ("auto", {INT8: 0.90}, CPU, FP32),  # nothing to compare it with
        ("auto", None, CPU, FP32),
        ("auto", {FP32: 0.90, INT8: 0.90}, CUDA, FP32),  # int8 is for CPU kernels
        ("auto", {FP32: 0.90, INT8: 0.90, FP16: 0.90}, CUDA, FP16),  # a GPU gets fp16
        ("auto", {FP32: 0.90, INT8: 0.90, FP16: 0.85}, CUDA, FP32),  # unless it lost accuracy
        ("auto", {FP32: 0.90, INT8: 0.80, FP16: 0.90}, CPU, FP32),  # never fp16 on a CPU
        ("fp16", {FP32: 0.90, FP16: 0.90}, CPU, FP16),  # asked for
        ("fp16", {FP32: 0.90}, CUDA, FP32),  # asked for, absent: fp32 rather than refuse
    ],
)
def test_the_setting_picks_the_variant(
    setting: VariantSetting, accuracy: dict[str, float] | None, provider: str, expected: str
) -> None:
    assert choose_variant(manifest_with(accuracy), setting, provider) == expected


@pytest.mark.parametrize("setting", ["auto", "fp32", "int8"])
def test_a_version_without_int8_always_loads_fp32(setting: VariantSetting) -> None:
    assert choose_variant(manifest_with({FP32: 0.9}, int8=False), setting, CPU) == FP32
    old = Manifest(name="m", labels=["a", "b"], base_model="x", max_seq_length=8)
    assert choose_variant(old, setting, CPU) == FP32


def test_model_variant_setting_is_validated() -> None:
    assert Settings().model_variant == "auto"
    assert engine_config(Settings(model_variant="int8")).variant == "int8"
    assert engine_config(Settings(model_variant="fp16")).variant == "fp16"
    with pytest.raises(ValidationError):
        Settings(model_variant="bf16")


# -- loading -----------------------------------------------------------------------------------
@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The file name of every session that variant loading opens, in order."""
    names: list[str] = []
    real = create_session

    def spy(path: Path, options: SessionOptions) -> LoadedSession:
        names.append(path.name)
        return real(path, options)

    monkeypatch.setattr(variants_module, "create_session", spy)
    return names


def engine_for(store: ModelStore, setting: VariantSetting) -> InferenceEngine:
    config = EngineConfig(SessionOptions((CPU,)), BatchLimits(), variant=setting)
    manifest = store.verify("sentiment", 1)
    return InferenceEngine(store.version_dir("sentiment", 1), manifest, config, Metrics())


@pytest.mark.parametrize(
    ("setting", "accuracy", "file", "variant"),
    [
        ("fp32", {FP32: 0.9, INT8: 0.9}, MODEL_FILE, FP32),
        ("int8", {FP32: 0.9, INT8: 0.5}, INT8_FILE, INT8),
        ("auto", {FP32: 0.9, INT8: 0.895}, INT8_FILE, INT8),
        ("auto", {FP32: 0.9, INT8: 0.88}, MODEL_FILE, FP32),
        ("auto", {FP32: 0.9}, MODEL_FILE, FP32),
    ],
)
def test_the_engine_loads_the_chosen_file(
    store: ModelStore,
    opened: list[str],
    setting: VariantSetting,
    accuracy: dict[str, float],
    file: str,
    variant: str,
) -> None:
    publish_tiny_classifier(store, int8=True, variant_accuracy=accuracy)

    engine = engine_for(store, setting)

    assert opened == [file]
    assert engine.variant == variant
    engine.close(1.0)


def test_a_provider_that_fails_to_start_is_chosen_for_again(
    store: ModelStore, opened: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # CUDA is offered by this ORT build but cannot start: the session lands on the CPU, where
    # `auto` prefers int8, so the version is reopened as int8.
    publish_tiny_classifier(store, int8=True, variant_accuracy={FP32: 0.9, INT8: 0.9})
    monkeypatch.setattr(variants_module, "expected_provider", lambda options: CUDA)
    manifest = store.verify("sentiment", 1)

    loaded, variant = load_variant(
        store.version_dir("sentiment", 1), manifest, SessionOptions((CUDA, CPU)), "auto"
    )

    assert (loaded.provider, variant) == (CPU, INT8)
    assert opened == [MODEL_FILE, INT8_FILE]


def test_int8_agrees_with_fp32_on_the_argmax_for_most_texts(store: ModelStore) -> None:
    publish_tiny_classifier(store, int8=True, variant_accuracy={FP32: 0.9, INT8: 0.9})
    fp32, int8 = engine_for(store, "fp32"), engine_for(store, "int8")
    rng = np.random.default_rng(7)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 12)))) for _ in range(300)]

    (expected,), _ = fp32.run_direct(texts)
    (got,), _ = int8.run_direct(texts)

    assert (int8.variant, fp32.variant) == (INT8, FP32)
    assert got.shape == expected.shape
    assert not np.array_equal(got, expected)  # really the quantized network
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).mean() >= 0.95
    assert np.abs(got - expected).max() < 0.5
    fp32.close(1.0)
    int8.close(1.0)


def test_fp16_conversion_keeps_float32_io_and_the_argmax(store: ModelStore, tmp_path: Path) -> None:
    """The GPU file, checked on the CPU: fed and read like fp32, and it agrees with it."""
    from app.training.optimize import build_fp16

    manifest = publish_tiny_classifier(store)
    folder = store.version_dir(manifest.name, manifest.version)
    # Not a transformer: nothing to fuse, the graph still converts (num_heads 0: detect).
    half = build_fp16(folder / MODEL_FILE, tmp_path / FP16_FILE, num_heads=0, hidden_size=0)
    options = SessionOptions((CPU,))
    fp32, fp16 = create_session(folder / MODEL_FILE, options), create_session(half, options)
    assert [i.type for i in fp16.session.get_inputs()] == [
        i.type for i in fp32.session.get_inputs()
    ]
    ids = np.asarray([[5, 6, 7, 8], [9, 10, 0, 0]], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": (ids > 0).astype(np.int64)}
    a, b = fp32.session.run(None, feeds)[0], fp16.session.run(None, feeds)[0]
    assert b.dtype == np.float32
    assert (a.argmax(-1) == b.argmax(-1)).all()
    assert np.abs(a - b).max() < 1e-2

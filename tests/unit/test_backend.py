"""ONNX Runtime sessions: provider options and the IO-binding run path."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.runtime.backend import SessionOptions, create_session, cuda_options, run_bound
from app.runtime.tokenizer import pad_batch
from app.store.versions import ModelStore
from tests.support.tiny_model import publish_tiny_classifier


def test_io_binding_gives_what_run_gives(tmp_path: Path) -> None:
    """The GPU's run path, exercised on the CPU: same feeds, same outputs, same order."""
    store = ModelStore(tmp_path / "store")
    manifest = publish_tiny_classifier(store)
    folder = store.version_dir(manifest.name, manifest.version)
    loaded = create_session(folder / "model.onnx", SessionOptions(("CPUExecutionProvider",)))
    rows = [np.asarray(r, dtype=np.int64) for r in ([5, 6, 7], [8], [9, 10, 11, 12, 13])]
    feeds = pad_batch(rows, 0, loaded.input_names)
    plain = loaded.session.run(loaded.output_names, feeds)
    bound = run_bound(loaded.session, feeds, loaded.output_names, "cpu")
    assert len(bound) == len(plain)
    for a, b in zip(plain, bound, strict=True):
        np.testing.assert_array_equal(a, b)


def test_cuda_options_name_the_device_and_cap_memory_only_when_asked() -> None:
    options = cuda_options(SessionOptions(("CUDAExecutionProvider",), cuda_device_id=3))
    assert options["device_id"] == "3"
    assert options["arena_extend_strategy"] == "kSameAsRequested"
    assert "gpu_mem_limit" not in options
    capped = cuda_options(
        SessionOptions(("CUDAExecutionProvider",), cuda_mem_limit_bytes=8 * 1024**3)
    )
    assert capped["gpu_mem_limit"] == str(8 * 1024**3)


def test_a_missing_cuda_provider_falls_back_to_the_cpu_and_says_so(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    manifest = publish_tiny_classifier(store)
    folder = store.version_dir(manifest.name, manifest.version)
    loaded = create_session(
        folder / "model.onnx",
        SessionOptions(("CUDAExecutionProvider", "CPUExecutionProvider")),
    )
    assert loaded.provider == "CPUExecutionProvider"
    assert "CUDAExecutionProvider" in loaded.unavailable

"""The ``auto`` gate measured again on the serving session (forced here on the CPU provider)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.runtime.backend import CPU, SessionOptions
from app.runtime.variants import GATE_FILE, load_checked_variant
from app.store.manifest import FP32, INT8, Manifest
from app.store.versions import ModelStore
from tests.support.tiny_model import publish_tiny_classifier

# Keyword texts the tiny classifier gets right (labels: negative, neutral, positive).
HELD_OUT: dict[str, Any] = {
    "texts": ["awful", "great", "terrible", "excellent"],
    "labels": [0, 2, 0, 2],
}


def _version(
    tmp_path: Path, fp32_accuracy: float, gate: dict[str, Any] | None
) -> tuple[Path, Manifest]:
    store = ModelStore(tmp_path)
    manifest = publish_tiny_classifier(
        store, int8=True, variant_accuracy={FP32: fp32_accuracy, INT8: fp32_accuracy}
    )
    folder = store.version_dir(manifest.name, manifest.version)
    if gate is not None:
        (folder / GATE_FILE).write_text(json.dumps(gate))
    return folder, manifest


def test_the_faster_file_stays_when_it_scores_as_recorded(tmp_path: Path) -> None:
    folder, manifest = _version(tmp_path, 1.0, HELD_OUT)
    loaded, variant, note = load_checked_variant(
        folder, manifest, SessionOptions((CPU,)), "auto", force=True
    )
    assert variant == INT8 and loaded.provider == CPU
    assert note is not None and "accuracy 1.0000 on 4 held-out rows" in note and "kept" in note


def test_a_drop_on_the_serving_session_falls_back_to_fp32(tmp_path: Path) -> None:
    wrong: dict[str, Any] = {
        "texts": HELD_OUT["texts"],
        "labels": [1, 1, 1, 1],
    }  # scores 0 where fp32 had 1
    folder, manifest = _version(tmp_path, 1.0, wrong)
    loaded, variant, note = load_checked_variant(
        folder, manifest, SessionOptions((CPU,)), "auto", force=True
    )
    assert variant == FP32
    assert loaded.session._model_path.endswith("model.onnx")  # the fp32 file
    assert note is not None and "fell back to fp32" in note


@pytest.mark.parametrize(("force", "gate"), [(False, HELD_OUT), (True, None)])
def test_the_gate_runs_only_on_cuda_and_with_rows_kept(
    tmp_path: Path, force: bool, gate: dict[str, Any] | None
) -> None:
    folder, manifest = _version(tmp_path, 1.0, gate)
    _, variant, note = load_checked_variant(
        folder, manifest, SessionOptions((CPU,)), "auto", force=force
    )
    assert variant == INT8
    if force:
        assert note is not None and note.startswith("not re-measured")
    else:
        assert note is None  # the CPU provider: the recorded figure stands

"""Warm-up runs batch shapes across the batcher's limits, within its token budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.metrics import Metrics
from app.runtime import engine as engine_module
from app.runtime.backend import CPU, SessionOptions, score_batch
from app.runtime.batcher import BatchLimits
from app.runtime.engine import EngineConfig, InferenceEngine
from app.runtime.warmup import Shape, warmup_shapes
from app.store.versions import ModelStore
from tests.support.tiny_model import publish_tiny_classifier


def test_shapes_reach_every_limit_and_respect_the_token_budget() -> None:
    limits = BatchLimits(max_batch_size=32, max_batch_tokens=2048)
    shapes = warmup_shapes(limits, max_length=128, count=8)
    assert shapes[:4] == [Shape(1, 16), Shape(32, 16), Shape(16, 128), Shape(1, 128)]
    assert len(set(shapes)) == len(shapes) == 7  # (16, 128) twice: the budget caps a full batch
    assert all(s.padded_tokens <= 2048 and s.rows <= 32 and s.tokens <= 128 for s in shapes)
    # The count bounds the cost; the most telling shapes come first.
    assert warmup_shapes(limits, 128, 2) == shapes[:2]
    assert warmup_shapes(limits, 128, 0) == []


def test_a_short_model_gets_no_duplicate_shapes() -> None:
    shapes = warmup_shapes(BatchLimits(max_batch_size=1), max_length=8, count=8)
    assert shapes == [Shape(1, 8)]


def test_engine_warmup_runs_those_shapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ModelStore(tmp_path)
    manifest = publish_tiny_classifier(store, max_seq_length=32)
    seen: list[tuple[int, int]] = []
    real = score_batch

    def recording(loaded, rows, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append((len(rows), max(len(r) for r in rows)))
        return real(loaded, rows, *args, **kwargs)

    monkeypatch.setattr(engine_module, "score_batch", recording)
    limits = BatchLimits(max_batch_size=8, max_batch_tokens=128)
    config = EngineConfig(SessionOptions((CPU,)), limits, warmup_shapes=4)
    engine = InferenceEngine(store.version_dir(manifest.name, 1), manifest, config, Metrics())
    engine.warmup()

    expected = warmup_shapes(limits, 32, 4)
    assert engine.warmed_shapes == expected
    assert seen[-4:] == [(s.rows, s.tokens) for s in expected]
    assert (8, 16) in seen[-4:] and (4, 32) in seen[-4:]  # a full batch; the longest rows
    assert engine.warm and engine.warmup_s > 0
    outputs, _ = engine.run_direct(["great"])
    assert np.isfinite(outputs[0]).all()
    engine.close(1.0)

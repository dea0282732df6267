"""One loaded model version: ORT session + tokenizer + dynamic batcher + its metrics."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import numpy as np

from app.errors import InferenceFailed
from app.metrics import Metrics
from app.runtime.backend import CUDA, LoadedSession, SessionOptions, score_batch
from app.runtime.batcher import BatchLimits, BatchObserver, BatchResult, DynamicBatcher
from app.runtime.tokenizer import IntArray, TextTokenizer
from app.runtime.variants import VariantSetting, load_checked_variant, load_variant
from app.runtime.warmup import Shape, warmup_shapes
from app.store.manifest import Manifest

log = logging.getLogger(__name__)

WARMUP_TEXTS = [
    "warm up",
    "A slightly longer warm-up sentence so the kernels see more than one sequence length.",
]


class _MetricsObserver(BatchObserver):
    """Records batcher events on the labelled children of the service metrics."""

    def __init__(self, metrics: Metrics, model: str, version: str) -> None:
        self._queue_wait = metrics.queue_wait.labels(model, version)
        self._tokenization = metrics.tokenization.labels(model, version)
        self._inference = metrics.inference.labels(model, version)
        self._batch_texts = metrics.batch_texts.labels(model, version)
        self._batch_tokens = metrics.batch_tokens.labels(model, version)
        self._depth = metrics.queue_depth.labels(model, version)
        self._texts = metrics.texts.labels(model, version)
        self._truncated = metrics.truncated.labels(model, version)
        self._e2e = metrics.end_to_end.labels(model, version)
        self._errors = metrics.inference_errors.labels(model, version)
        self._rejections = metrics.rejections
        self._model = model

    def batch(self, texts: int, tokens: int, seconds: float) -> None:
        self._batch_texts.observe(texts)
        self._batch_tokens.observe(tokens)
        self._inference.observe(seconds)
        self._texts.inc(texts)

    def tokenized(self, texts: int, truncated: int, seconds: float) -> None:
        self._tokenization.observe(seconds)
        if truncated:
            self._truncated.inc(truncated)

    def queued(self, depth: int) -> None:
        self._depth.set(depth)

    def dequeued(self, wait_s: float) -> None:
        self._queue_wait.observe(wait_s)

    def done(self, seconds: float) -> None:
        self._e2e.observe(seconds)

    def rejected(self, reason: str) -> None:
        self._rejections.labels(self._model, reason).inc()

    def failed(self) -> None:
        self._errors.inc()


@dataclass(frozen=True)
class EngineConfig:
    session: SessionOptions
    limits: BatchLimits
    # Measure the fixed cost per run at warm-up and shape batches with it.
    calibrate: bool = False
    # Run through IO binding when the session is on CUDA.
    io_binding: bool = True
    # Model runs in flight at once (app/runtime/layout.py).
    streams: int = 1
    # With streams > 1: a second session on all the cores for lone batches (light load).
    solo_session: bool = True
    # With a solo session: a lone request that finds the batcher idle runs on the caller's
    # thread, skipping the queue's thread hand-offs (app/runtime/batch_inline.py).
    inline_when_idle: bool = True
    # Which ONNX file of a version to load (app/runtime/variants.py).
    variant: VariantSetting = "auto"
    # Batch shapes run at warm-up, spanning the batcher's limits (app/runtime/warmup.py).
    warmup_shapes: int = 6


class InferenceEngine:
    """Serves one model version. Thread-safe; ``infer`` is called from the event loop."""

    def __init__(self, folder: Path, manifest: Manifest, config: EngineConfig, metrics: Metrics):
        self.manifest = manifest
        self.name = manifest.name
        self.version = manifest.version
        self.folder = folder
        # On CUDA, ``auto``'s accuracy gate is measured again with the session that serves.
        loaded, self.variant, self.variant_note = load_checked_variant(
            folder, manifest, config.session, config.variant
        )
        self.provider = loaded.provider
        self.unavailable_providers = loaded.unavailable
        self._session: LoadedSession | None = loaded
        self.output_names = loaded.output_names
        self._tokenizer = TextTokenizer(
            folder / manifest.tokenizer_file, manifest.max_seq_length, manifest.pad_token_id
        )
        # With several single-thread runs in flight, a second session on all of the process's
        # cores serves lone batches at light load: the latency of one run on every core, for
        # a second copy of the weights (23 MB int8, 90 MB fp32 for a MiniLM-size model).
        self._solo: LoadedSession | None = None
        if config.streams > 1 and config.solo_session and self.provider != CUDA:
            threads = config.streams * max(1, config.session.intra_op_threads)
            solo, _ = load_variant(
                folder,
                manifest,
                replace(config.session, intra_op_threads=threads),
                cast(VariantSetting, self.variant),  # the same file as the main session
            )
            self._solo = solo
        self._batcher = DynamicBatcher(
            self._tokenizer.encode,
            self._run,
            config.limits,
            _MetricsObserver(metrics, self.name, str(self.version)),
            name=f"batcher-{self.name}-{self.version}",
            streams=config.streams,
            run_solo=self._run_solo if self._solo is not None else None,
            inline_when_idle=config.inline_when_idle,
        )
        self._calibrate = config.calibrate
        # IO binding where the session runs on a GPU (see backend.run_bound).
        self._bound_device = "cuda" if config.io_binding and self.provider == CUDA else None
        self._device_id = config.session.cuda_device_id
        self._shapes = config.warmup_shapes
        self.warmed_shapes: list[Shape] = []
        self.warmup_s = 0.0
        self.warm = False

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def queued_texts(self) -> int:
        return self._batcher.queued_texts

    def _run_solo(self, rows: list[IntArray]) -> list[np.ndarray]:
        return self._run(rows, self._solo)

    def _run(self, rows: list[IntArray], session: LoadedSession | None = None) -> list[np.ndarray]:
        # The session is only dropped (close) after the batcher has stopped running.
        loaded = session or self._session
        assert loaded is not None, f"{self.ref} is closed"
        return score_batch(
            loaded,
            rows,
            self._tokenizer.pad_token_id,
            self.output_names,
            bound_device=self._bound_device,
            device_id=self._device_id,
        )

    def run_direct(
        self, texts: list[str], solo: bool = False
    ) -> tuple[list[np.ndarray], list[bool]]:
        """Tokenize and run ``texts`` as one batch, bypassing the queue (warm-up, benchmarks).

        ``solo``: on the all-cores session where there is one, as a lone request runs.
        """
        encoded = self._tokenizer.encode(texts)
        session = self._solo if solo else None
        outputs = self._run([e.ids for e in encoded], session)
        return outputs, [e.truncated for e in encoded]

    def warmup(self) -> None:
        """Run a small batch of real texts, then batch shapes across the batcher's limits
        (``warmup_shapes``), so that no request pays for a first-time shape."""
        started = time.perf_counter()
        try:
            self.run_direct(WARMUP_TEXTS)
            if self._solo is not None:
                self.run_direct(WARMUP_TEXTS, solo=True)
            shapes = warmup_shapes(self._batcher.limits, self._tokenizer.max_length, self._shapes)
            filler = self._tokenizer.encode([" ".join(["warm"] * self._tokenizer.max_length)])
            ids = filler[0].ids
            for shape in shapes:
                row = np.resize(ids, shape.tokens).astype(ids.dtype)
                self._run([row] * shape.rows)
                self.warmed_shapes.append(shape)
        except Exception as exc:
            raise InferenceFailed(f"{self.ref} failed its warm-up batch: {exc}") from exc
        if self._calibrate:
            overhead = self.measure_overhead_tokens()
            self._batcher.limits = replace(self._batcher.limits, overhead_tokens=overhead)
            log.info("%s: one run costs %.1f padded tokens of fixed overhead", self.ref, overhead)
        self.warmup_s = time.perf_counter() - started
        log.info(
            "%s warmed in %.2f s over %d batch shapes",
            self.ref, self.warmup_s, len(self.warmed_shapes),
        )  # fmt: skip
        self.warm = True

    def measure_overhead_tokens(
        self, width: int = 32, sizes: tuple[int, ...] = (1, 2, 4, 8, 16), repeats: int = 5
    ) -> float:
        """The fixed cost of one run, in tokens: a line ``t(n) = a + n*w*b`` fitted to timed
        runs of ``n`` rows of ``w`` tokens; the answer is ``a / b``.

        Each shape is timed ``repeats`` times, round-robin so that a slow spell of the machine
        hits every shape alike, and its best time kept. A line through five shapes rather than
        two: from two, the estimate moved between 16 and 58 tokens from one start to the next
        on this VM, and batch shaping with it. The answer is what batch shaping needs to know
        about this hardware: tens of tokens' worth on a CPU, thousands on a GPU, where a run
        costs launches and copies whatever its size.
        """
        width = min(width, self._tokenizer.max_length)
        ids = self._tokenizer.encode([" ".join(["calibrate"] * width)])[0].ids[:width]
        best = dict.fromkeys(sizes, float("inf"))
        for _ in range(repeats):
            for n in sizes:
                t0 = time.perf_counter()
                self._run([ids] * n)
                best[n] = min(best[n], time.perf_counter() - t0)
        return overhead_tokens(
            {n * width: t for n, t in best.items()}, float(self._batcher.limits.max_batch_tokens)
        )

    def token_counts(self, texts: list[str]) -> list[int]:
        """Tokens each text is fed to the model as (after truncation): usage reports count them."""
        return [len(e.ids) for e in self._tokenizer.encode(texts)]

    async def infer(self, texts: list[str], timeout_s: float) -> BatchResult:
        return await self._batcher.submit(texts, timeout_s)

    def stop_accepting(self) -> None:
        """New work is refused from now on; queued work still runs."""
        self._batcher.close()

    def close(self, drain_timeout_s: float) -> bool:
        """Stop taking work, finish what is queued within the grace period, free the session."""
        drained = self._batcher.join(drain_timeout_s)
        # Dropping the session frees its weights and arena now, not when the last stray
        # reference to this engine goes. A run still going past the grace period holds its
        # own reference and finishes.
        self._session = self._solo = None
        log.info("engine %s closed (drained=%s)", self.ref, drained)
        return drained


def overhead_tokens(times: dict[int, float], limit: float) -> float:
    """``a / b`` of the least-squares line ``t = a + b * tokens`` through ``times`` (padded
    tokens of a run -> its seconds), within ``[0, limit]``; ``limit`` when there is no slope."""
    xs = [float(x) for x in times]
    ys = list(times.values())
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var_x = sum((x - mean_x) ** 2 for x in xs)
    if var_x == 0:
        return limit
    per_token = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var_x
    if per_token <= 0:  # noise swamped the slope: treat runs as all overhead
        return limit
    overhead = (mean_y - per_token * mean_x) / per_token
    return float(min(max(overhead, 0.0), limit))

"""One loaded model version: ORT session + tokenizer + dynamic batcher + its metrics."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.errors import InferenceFailed
from app.metrics import Metrics
from app.registry.manifest import MODEL_FILE, Manifest
from app.runtime.batcher import BatchLimits, BatchObserver, BatchResult, DynamicBatcher
from app.runtime.session import SessionOptions, create_session
from app.runtime.tokenizer import IntArray, TextTokenizer, pad_batch

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


class InferenceEngine:
    """Serves one model version. Thread-safe; ``infer`` is called from the event loop."""

    def __init__(self, folder: Path, manifest: Manifest, config: EngineConfig, metrics: Metrics):
        self.manifest = manifest
        self.name = manifest.name
        self.version = manifest.version
        self.folder = folder
        loaded = create_session(folder / MODEL_FILE, config.session)
        self.provider = loaded.provider
        self.unavailable_providers = loaded.unavailable
        self._session = loaded.session
        self._input_names = loaded.input_names
        self.output_names = loaded.output_names
        self._tokenizer = TextTokenizer(
            folder / manifest.tokenizer_file, manifest.max_seq_length, manifest.pad_token_id
        )
        # ORT's run() is thread-safe, but the batcher thread is its only caller in serving.
        self._run_lock = threading.Lock()
        self._batcher = DynamicBatcher(
            self._tokenizer.encode,
            self._run,
            config.limits,
            _MetricsObserver(metrics, self.name, str(self.version)),
            name=f"batcher-{self.name}-{self.version}",
        )
        self.warm = False

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def queued_texts(self) -> int:
        return self._batcher.queued_texts

    def _run(self, rows: list[IntArray]) -> list[np.ndarray]:
        feeds = pad_batch(rows, self._tokenizer.pad_token_id, self._input_names)
        with self._run_lock:
            outputs = self._session.run(self.output_names, feeds)
        return [np.asarray(o) for o in outputs]

    def run_direct(self, texts: list[str]) -> tuple[list[np.ndarray], list[bool]]:
        """Tokenize and run ``texts`` as one batch, bypassing the queue (warm-up, benchmarks)."""
        encoded = self._tokenizer.encode(texts)
        outputs = self._run([e.ids for e in encoded])
        return outputs, [e.truncated for e in encoded]

    def warmup(self) -> None:
        """Run one small batch so the first real request does not pay for lazy initialisation."""
        try:
            self.run_direct(WARMUP_TEXTS)
        except Exception as exc:
            raise InferenceFailed(f"{self.ref} failed its warm-up batch: {exc}") from exc
        self.warm = True

    async def infer(self, texts: list[str], timeout_s: float) -> BatchResult:
        return await self._batcher.submit(texts, timeout_s)

    def stop_accepting(self) -> None:
        """New work is refused from now on; queued work still runs."""
        self._batcher.close()

    def close(self, drain_timeout_s: float) -> bool:
        """Stop taking work, finish what is queued within the grace period, free the session."""
        drained = self._batcher.join(drain_timeout_s)
        # Dropping the session frees its weights and arena now, not when the last stray
        # reference to this engine goes; the batcher thread that used it has exited.
        with self._run_lock:
            self._session = None
        log.info("engine %s closed (drained=%s)", self.ref, drained)
        return drained

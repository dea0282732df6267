"""The service's parts, built once from settings and shared by every route."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from app.config import Settings
from app.metrics import Metrics
from app.registry.registry import ModelRegistry
from app.registry.store import ModelStore
from app.runtime.batcher import BatchLimits
from app.runtime.engine import EngineConfig
from app.runtime.session import SessionOptions
from app.serving.classifier import Classifier

log = logging.getLogger(__name__)


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        session=SessionOptions(
            providers=settings.providers,
            intra_op_threads=settings.intra_op_threads,
            inter_op_threads=settings.inter_op_threads,
        ),
        limits=BatchLimits(
            max_batch_size=settings.max_batch_size,
            max_batch_tokens=settings.max_batch_tokens,
            max_wait_s=settings.max_wait_ms / 1000.0,
            max_queue_texts=settings.max_queue_texts,
        ),
    )


@dataclass
class Services:
    """Everything a request handler may need, owned by one app instance."""

    settings: Settings
    metrics: Metrics
    store: ModelStore
    registry: ModelRegistry
    classifier: Classifier
    draining: bool = False
    _loader: threading.Thread | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        metrics = Metrics()
        store = ModelStore(settings.model_store)
        registry = ModelRegistry(
            store,
            engine_config(settings),
            metrics,
            names=settings.models,
            warmup=settings.warmup,
            drain_timeout_s=settings.drain_timeout_s,
        )
        return cls(settings, metrics, store, registry, Classifier(registry, metrics))

    def start(self) -> None:
        """Load models in the background so /healthz answers while they load."""
        self._loader = threading.Thread(target=self._load, name="model-loader", daemon=True)
        self._loader.start()

    def _load(self) -> None:
        state = self.registry.load_all()
        if state.ready:
            log.info("ready: %s", ", ".join(e.ref for e in self.registry.active_engines().values()))
        else:
            log.error("not ready: %s", state.reason)

    def wait_loaded(self, timeout_s: float | None = None) -> None:
        if self._loader is not None:
            self._loader.join(timeout_s)

    def stop(self) -> None:
        """Refuse new work, finish queued work within the grace period, free the sessions."""
        self.draining = True
        self.wait_loaded(self.settings.drain_timeout_s)
        self.registry.close(self.settings.drain_timeout_s)

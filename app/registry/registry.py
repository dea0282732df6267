"""The live registry: which engine serves each model, loading, warming and swapping them."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from app.errors import CorruptModel, ModelNotFound, ModelNotReady, UnusableVersion
from app.metrics import Metrics
from app.runtime.engine import EngineConfig, InferenceEngine
from app.store.manifest import Manifest, check_name
from app.store.versions import ModelStore

log = logging.getLogger(__name__)


@dataclass
class LoadFailure:
    name: str
    version: int | None
    reason: str


@dataclass
class RegistryState:
    """What /readyz and /v1/models report."""

    ready: bool = False
    reason: str = "models not loaded yet"
    failures: list[LoadFailure] = field(default_factory=list)


class ModelRegistry:
    """Maps model names to the engine of their active version (plus a few pinned versions)."""

    def __init__(
        self,
        store: ModelStore,
        config: EngineConfig,
        metrics: Metrics,
        *,
        names: tuple[str, ...] = (),
        warmup: bool = True,
        drain_timeout_s: float = 30.0,
        pinned_cache: int = 2,
    ) -> None:
        self.store = store
        self._config = config
        self._metrics = metrics
        self._names = names
        self._warmup = warmup
        self._drain_timeout_s = drain_timeout_s
        self._active: dict[str, InferenceEngine] = {}
        # Versions asked for explicitly (`name@3`) that are not active, least recently used first.
        self._pinned: OrderedDict[tuple[str, int], InferenceEngine] = OrderedDict()
        self._pinned_cache = pinned_cache
        self._lock = threading.RLock()
        # Serialises swaps, so the watcher and an explicit promote never load one version twice.
        self._swap_lock = threading.Lock()
        # name -> (version, reason) of the last pointer that failed to load; not retried until
        # the pointer moves, so a corrupt version is not reloaded every watch interval.
        self._failed: dict[str, tuple[int, str]] = {}
        self._stop_watch = threading.Event()
        self._watcher: threading.Thread | None = None
        self.state = RegistryState()
        # Called with (name, version) once a promotion moved the pointer (the Redis nudge).
        self.promotion_listeners: list[Callable[[str, int], object]] = []

    # -- loading ---------------------------------------------------------------------------
    def served_names(self) -> list[str]:
        return list(self._names) if self._names else self.store.names()

    def _empty_reason(self) -> str:
        # A mistyped path and an empty store need different fixes: say which it is.
        root = self.store.root
        if not root.is_dir():
            return f"the model store {root} does not exist (TEXTSERVE_MODEL_STORE)"
        return f"the model store {root} has no models"

    def load_all(self) -> RegistryState:
        """Load and warm the active version of every served model; report what failed."""
        failures: list[LoadFailure] = []
        names = self.served_names()
        for name in names:
            version = self.store.active_version(name)
            if version is None:
                failures.append(LoadFailure(name, None, "no active version"))
                continue
            try:
                self._activate_engine(self._load(name, version))
            except Exception as exc:
                log.error("could not load %s@%s: %s", name, version, exc)
                failures.append(LoadFailure(name, version, str(exc)))
                self._failed[name] = (version, str(exc))
        with self._lock:
            if not names:
                self.state = RegistryState(False, self._empty_reason(), failures)
            elif failures:
                reason = "; ".join(f"{f.name}: {f.reason}" for f in failures)
                self.state = RegistryState(False, reason, failures)
            else:
                self.state = RegistryState(True, "ok", [])
        self._metrics.ready.set(1 if self.state.ready else 0)
        return self.state

    def _load(self, name: str, version: int) -> InferenceEngine:
        try:
            manifest = self.store.verify(name, version)
        except CorruptModel:
            self._metrics.model_loads.labels(name, "corrupt").inc()
            raise
        try:
            engine = InferenceEngine(
                self.store.version_dir(name, version), manifest, self._config, self._metrics
            )
            for provider in engine.unavailable_providers:
                log.warning(
                    "%s@%s: execution provider %s is not available here; running on %s",
                    name, version, provider, engine.provider,
                )  # fmt: skip
                self._metrics.provider_fallbacks.labels(name, provider).inc()
            if self._warmup:
                engine.warmup()
        except Exception:
            self._metrics.model_loads.labels(name, "error").inc()
            raise
        self._metrics.model_loads.labels(name, "ok").inc()
        return engine

    def _activate_engine(self, engine: InferenceEngine) -> None:
        with self._lock:
            old = self._active.get(engine.name)
            self._active[engine.name] = engine
        self._metrics.model_info.labels(engine.name).info(
            {
                "version": str(engine.version),
                "provider": engine.provider,
                "task": engine.manifest.task,
                "variant": engine.variant,
            }
        )
        if old is not None and old is not engine:
            # In-flight requests hold a reference to the old engine; let them finish first.
            threading.Thread(target=old.close, args=(self._drain_timeout_s,), daemon=True).start()

    def activate(self, name: str, version: int) -> Manifest:
        """Load, warm and switch traffic to ``name@version``; the old engine drains in the back."""
        with self._swap_lock:
            return self._swap(name, version)

    def _swap(self, name: str, version: int) -> Manifest:
        # Callers hold _swap_lock.
        active = self._active.get(name)
        if active is not None and active.version == version:
            return active.manifest
        engine = self._load(name, version)
        self._activate_engine(engine)
        return engine.manifest

    def promote(self, name: str, version: int, *, reason: str) -> Manifest:
        """Make ``name@version`` the active version everywhere.

        A served model is loaded and warmed here first, so a version that cannot load
        never becomes the store's pointer (which every other replica follows); then the
        pointer moves and its history records ``reason``. A version whose files fail
        verification raises ``UnusableVersion``: the caller's choice is refused, nothing moves.
        """
        served = self.served_names()
        # One lock over the swap and the pointer: the watcher must not see the new engine
        # beside the old pointer and swap back in between.
        with self._swap_lock:
            try:
                if name in served:
                    self._swap(name, version)
                    self._failed.pop(name, None)
                manifest = self.store.set_active(name, version, reason=reason)
            except CorruptModel as exc:
                active = self._active.get(name)
                still = (
                    f"{active.ref} keeps serving" if active else "the active version is unchanged"
                )
                raise UnusableVersion(
                    f"version {version} of {name!r} cannot become active, its files fail "
                    f"verification ({exc}); {still}"
                ) from exc
        self._refresh_state(served)
        for listener in self.promotion_listeners:
            listener(name, version)
        return manifest

    # -- following the store ---------------------------------------------------------------
    def sync(self, names: list[str] | None = None) -> list[str]:
        """Bring the served models in line with the store's active pointers.

        Loads and warms each pointer that moved (or a model that appeared), switches
        traffic to it and drains the old engine. Returns the refs it switched to. A
        version that fails to load is logged and left until the pointer moves again; the
        engine serving before keeps serving.
        """
        switched: list[str] = []
        served = self.served_names()
        for name in names if names is not None else served:
            if name not in served:
                continue
            with self._swap_lock:  # the pointer is read under the lock that moves it
                version = self.store.active_version(name)
                engine = self._active.get(name)
                if version is None or (engine is not None and engine.version == version):
                    continue
                if self._failed.get(name, (None, ""))[0] == version:
                    continue
                try:
                    self._swap(name, version)
                except Exception as exc:
                    log.error("could not switch %s to version %s: %s", name, version, exc)
                    self._failed[name] = (version, str(exc))
                    continue
            self._failed.pop(name, None)
            switched.append(f"{name}@{version}")
            log.info("now serving %s@%s", name, version)
        if switched or names is None:
            self._refresh_state(served)
        return switched

    def _refresh_state(self, served: list[str]) -> None:
        with self._lock:
            if self.state.reason == "shutting down":
                return
            failures = []
            for name in served:
                if name in self._active:
                    continue
                failed = self._failed.get(name)
                reason = failed[1] if failed else "no active version"
                failures.append(LoadFailure(name, failed[0] if failed else None, reason))
            if not served:
                self.state = RegistryState(False, self._empty_reason(), failures)
            elif failures:
                reason = "; ".join(f"{f.name}: {f.reason}" for f in failures)
                self.state = RegistryState(False, reason, failures)
            else:
                self.state = RegistryState(True, "ok", [])
        self._metrics.ready.set(1 if self.state.ready else 0)

    def watch(self, interval_s: float) -> None:
        """Follow the store's pointers every ``interval_s`` seconds in a background thread.

        Every replica that shares the store's volume does this, so a promotion or a
        rollback made through any of them reaches all of them.
        """
        if interval_s <= 0 or self._watcher is not None:
            return

        def loop() -> None:
            while not self._stop_watch.wait(interval_s):
                try:
                    self.sync()
                except Exception:
                    log.exception("registry watch step failed")

        self._watcher = threading.Thread(target=loop, name="registry-watch", daemon=True)
        self._watcher.start()

    # -- lookup ----------------------------------------------------------------------------
    def get(self, name: str, version: int | None = None) -> InferenceEngine:
        check_name(name)
        with self._lock:
            active = self._active.get(name)
            if version is None or (active is not None and active.version == version):
                if active is not None:
                    return active
                if name in self.served_names():
                    raise ModelNotReady(f"model {name!r} is not loaded: {self.state.reason}")
                raise ModelNotFound(f"no model named {name!r}")
            pinned = self._pinned.get((name, version))
            if pinned is not None:
                self._pinned.move_to_end((name, version))
                return pinned
        if version not in self.store.versions(name):
            raise ModelNotFound(f"model {name!r} has no version {version}")
        engine = self._load(name, version)
        with self._lock:
            self._pinned[(name, version)] = engine
            while len(self._pinned) > self._pinned_cache:
                _, evicted = self._pinned.popitem(last=False)
                threading.Thread(
                    target=evicted.close, args=(self._drain_timeout_s,), daemon=True
                ).start()
        return engine

    def active_engines(self) -> dict[str, InferenceEngine]:
        with self._lock:
            return dict(self._active)

    def close(self, drain_timeout_s: float) -> None:
        """Drain and free every engine (shutdown)."""
        self._stop_watch.set()
        if self._watcher is not None:
            self._watcher.join(5.0)
        with self._lock:
            engines = list(self._active.values()) + list(self._pinned.values())
            self._active.clear()
            self._pinned.clear()
            self.state = RegistryState(False, "shutting down")
        self._metrics.ready.set(0)
        for engine in engines:
            engine.stop_accepting()
        for engine in engines:
            engine.close(drain_timeout_s)

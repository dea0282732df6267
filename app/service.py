"""The service's parts, built once from settings and shared by every route."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from app.cluster.promotions import PromotionNudge
from app.cluster.redis_link import RedisLink
from app.config import Settings
from app.jobs.service import JobService
from app.knowledge import open_vector_store
from app.knowledge.records import KnowledgeDatabase, default_url
from app.knowledge.service import EmbedderResolver, KnowledgeBaseService
from app.metrics import Metrics
from app.registry.registry import ModelRegistry
from app.runtime.backend import CUDA, SessionOptions
from app.runtime.batcher import BatchLimits
from app.runtime.engine import EngineConfig
from app.runtime.layout import Layout, plan
from app.runtime.variants import expected_provider
from app.serving.classifier import Classifier
from app.serving.conversations import ConversationLimits, Conversations, ConversationStore
from app.serving.conversations_redis import RedisConversations
from app.serving.embedder import Embedder
from app.serving.kb_embedders import registry_resolver
from app.serving.monitor import OpinionMonitor, StreamGate
from app.serving.opinion import OpinionService
from app.serving.ranker import Ranker
from app.serving.responder import ReplyPolicy, Responder
from app.store.versions import ModelStore

log = logging.getLogger(__name__)


def engine_layout(settings: Settings) -> Layout:
    """Processes x runs in flight x ORT threads for these settings on this machine."""
    gpu = expected_provider(SessionOptions(providers=settings.providers)) == CUDA
    return plan(settings.workers, settings.batch_streams, settings.intra_op_threads, gpu=gpu)


def engine_config(settings: Settings) -> EngineConfig:
    layout = engine_layout(settings)
    return EngineConfig(
        streams=layout.streams,
        solo_session=settings.solo_session,
        inline_when_idle=settings.inline_when_idle,
        session=SessionOptions(
            providers=settings.providers,
            intra_op_threads=layout.threads,
            inter_op_threads=settings.inter_op_threads,
            allow_spinning=settings.ort_spinning,
            cuda_device_id=settings.cuda_device_id,
            cuda_mem_limit_bytes=settings.cuda_mem_limit_mb * 1024 * 1024,
            cuda_shared_arena=settings.cuda_shared_arena,
        ),
        limits=BatchLimits(
            max_batch_size=settings.max_batch_size,
            max_batch_tokens=settings.max_batch_tokens,
            max_wait_s=settings.max_wait_ms / 1000.0,
            max_queue_texts=settings.max_queue_texts,
            overhead_tokens=settings.batch_overhead_tokens or BatchLimits.overhead_tokens,
        ),
        calibrate=settings.batch_overhead_tokens is None,
        io_binding=settings.io_binding,
        variant=settings.model_variant,
        warmup_shapes=settings.warmup_shapes,
    )


def build_conversations(
    settings: Settings, metrics: Metrics, redis: RedisLink | None = None
) -> Conversations:
    """Kept conversations: in the shared Redis when there is one, else in this process."""
    limits = ConversationLimits(
        max_turns=settings.conversation_max_turns,
        ttl_s=settings.conversation_ttl_s,
        max_bytes=settings.conversation_max_bytes,
        max_conversations=settings.conversation_max_count,
    )
    if redis is not None:
        return RedisConversations(redis, limits)
    store = ConversationStore(limits)
    # Read at scrape time: the store needs no reference to the metrics.
    metrics.conversations.set_function(lambda: store.size)
    metrics.conversation_bytes.set_function(lambda: store.bytes)
    return store


def build_knowledge(
    settings: Settings, registry: ModelRegistry, embedders: EmbedderResolver | None = None
) -> KnowledgeBaseService:
    """Knowledge bases over the store ``TEXTSERVE_VECTOR_URL`` names and the metadata
    database; ``embedders`` resolves embedding model versions (default: the served models)."""
    api_key = settings.vector_api_key.get_secret_value() if settings.vector_api_key else None
    store = open_vector_store(
        settings.vector_url, settings.data_dir, api_key, settings.vector_ann_min_chunks
    )
    database = KnowledgeDatabase(settings.knowledge_db_url or default_url(settings.data_dir))
    return KnowledgeBaseService(store, database, embedders or registry_resolver(registry))


def build_responder(
    settings: Settings,
    registry: ModelRegistry,
    classifier: Classifier,
    metrics: Metrics,
    redis: RedisLink | None = None,
    knowledge: KnowledgeBaseService | None = None,
) -> Responder:
    conversations = build_conversations(settings, metrics, redis)
    policy = ReplyPolicy(
        default_model=settings.reply_model,
        low_confidence=settings.reply_low_confidence,
        context_confidence=settings.reply_context_confidence,
        negative_sentiment=settings.reply_negative_sentiment,
        sentiment_model=settings.reply_sentiment_model or None,
        alternatives=settings.reply_alternatives,
        default_slots=dict(settings.reply_slots),
        kb_min_score=settings.reply_kb_min_score,
    )
    return Responder(registry, classifier, conversations, metrics, policy, knowledge)


def build_opinion(
    settings: Settings, registry: ModelRegistry, classifier: Classifier, metrics: Metrics
) -> OpinionService:
    monitor = OpinionMonitor(
        keep_s=settings.monitor_keep_s, fine_keep_s=settings.monitor_fine_keep_s
    )
    gate = StreamGate(settings.monitor_streams, settings.monitor_max_streams)
    return OpinionService(registry, classifier, monitor, gate, metrics)


@dataclass
class Services:
    """Everything a request handler may need, owned by one app instance."""

    settings: Settings
    metrics: Metrics
    store: ModelStore
    registry: ModelRegistry
    classifier: Classifier
    jobs: JobService
    responder: Responder
    opinion: OpinionService
    knowledge: KnowledgeBaseService
    # Sentence vectors (/v1/embeddings) and what ranks with them (/v1/rerank, /v1/recommend).
    embedder: Embedder
    ranker: Ranker
    draining: bool = False
    # The Redis replicas share (TEXTSERVE_REDIS_URL), and the promotion nudge over it.
    redis: RedisLink | None = None
    nudge: PromotionNudge | None = None
    _loader: threading.Thread | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls,
        settings: Settings,
        redis: RedisLink | None = None,
        embedders: EmbedderResolver | None = None,
    ) -> Services:
        """Every part from settings; ``redis``: the link the guard's limits use too;
        ``embedders``: how knowledge bases get their embedders (default: served models)."""
        if redis is None:
            redis = RedisLink.from_settings(settings)
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
        jobs = JobService.build(settings, store, registry, metrics)
        classifier = Classifier(registry, metrics)
        knowledge = build_knowledge(settings, registry, embedders)
        responder = build_responder(settings, registry, classifier, metrics, redis, knowledge)
        opinion = build_opinion(settings, registry, classifier, metrics)
        embedder = Embedder(registry)
        nudge = None
        if redis is not None:
            metrics.watch_redis(redis.stats)
            nudge = PromotionNudge(redis, lambda name: registry.sync([name]))
            registry.promotion_listeners.append(nudge.published)
        return cls(
            settings,
            metrics,
            store,
            registry,
            classifier,
            jobs=jobs,
            responder=responder,
            opinion=opinion,
            knowledge=knowledge,
            embedder=embedder,
            ranker=Ranker(embedder),
            redis=redis,
            nudge=nudge,
        )

    def start(self) -> None:
        """Load models in the background so /healthz answers while they load."""
        self._loader = threading.Thread(target=self._load, name="model-loader", daemon=True)
        self._loader.start()
        self.jobs.start()

    def _load(self) -> None:
        state = self.registry.load_all()
        if state.ready:
            log.info("ready: %s", ", ".join(e.ref for e in self.registry.active_engines().values()))
        else:
            log.error("not ready: %s", state.reason)
        # Follow the store's active pointers from now on (promotions made by any replica).
        self.registry.watch(self.settings.watch_interval_s)
        if self.nudge is not None:  # and hear of them at once where Redis tells us
            self.nudge.start()

    def wait_loaded(self, timeout_s: float | None = None) -> None:
        if self._loader is not None:
            self._loader.join(timeout_s)

    def stop(self) -> None:
        """Refuse new work, finish queued work within the grace period, free the sessions."""
        self.draining = True
        self.wait_loaded(self.settings.drain_timeout_s)
        self.jobs.stop()
        if self.nudge is not None:
            self.nudge.stop()
        self.registry.close(self.settings.drain_timeout_s)
        self.knowledge.db.close()

    async def aclose(self) -> None:
        """Close what needs the event loop: the Redis connection pool."""
        if self.redis is not None:
            await self.redis.aclose()

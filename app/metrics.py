"""Every Prometheus metric the service exports: names, labels and buckets in one place.

Each app builds its own ``CollectorRegistry`` so several apps (tests, workers) never clash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.errors import TextserveError
from app.gpu import register_gpu_metrics

if TYPE_CHECKING:
    from app.cluster.redis_link import RedisStats

# `_created` series double the exposition for no dashboard use.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Latency buckets from 0.5 ms to 30 s: a single CPU inference sits at a few ms, a queued
# request under overload at seconds.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
BATCH_TEXT_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 128, 256)
BATCH_TOKEN_BUCKETS = (16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
# A fine-tune takes from tens of seconds (a few rows on CPU) to hours (a big set on a GPU).
JOB_DURATION_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)


class Metrics:
    """The service's metrics, registered on a private registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        mv = ("model", "version")
        self.http_requests = Counter(
            "textserve_http_requests_total",
            "HTTP requests answered, by route template, method and status code.",
            ("route", "method", "status"),
            registry=r,
        )
        self.http_duration = Histogram(
            "textserve_http_request_duration_seconds",
            "Time from request received to response sent.",
            ("route", "method", "status"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.http_inflight = Gauge(
            "textserve_http_requests_in_flight", "HTTP requests being handled now.", registry=r
        )
        self.queue_wait = Histogram(
            "textserve_queue_wait_seconds",
            "Time a request's texts waited in the batcher before their first model run.",
            mv,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokenization = Histogram(
            "textserve_tokenization_seconds",
            "Tokenization time of one batch of new arrivals.",
            mv,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "textserve_inference_seconds",
            "ONNX Runtime time of one batch run.",
            mv,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end = Histogram(
            "textserve_model_request_seconds",
            "Time from a request entering the engine to its last row computed.",
            mv,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_texts = Histogram(
            "textserve_batch_size_texts",
            "Texts in one model run.",
            mv,
            buckets=BATCH_TEXT_BUCKETS,
            registry=r,
        )
        self.batch_tokens = Histogram(
            "textserve_batch_size_tokens",
            "Padded tokens (texts x longest) in one model run.",
            mv,
            buckets=BATCH_TOKEN_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "textserve_queue_depth_texts", "Texts waiting in the batcher.", mv, registry=r
        )
        self.texts = Counter("textserve_texts_total", "Texts run through a model.", mv, registry=r)
        self.truncated = Counter(
            "textserve_truncated_texts_total",
            "Texts cut to the model's maximum sequence length.",
            mv,
            registry=r,
        )
        self.rejections = Counter(
            "textserve_rejections_total",
            "Requests refused, by reason: queue_full, deadline, payload_too_large, "
            "invalid_input, shutting_down.",
            ("model", "reason"),
            registry=r,
        )
        self.inference_errors = Counter(
            "textserve_inference_errors_total",
            "Model runs that raised.",
            mv,
            registry=r,
        )
        self.predictions = Counter(
            "textserve_predictions_total",
            "Top predicted label per text, by model and version.",
            ("model", "version", "label"),
            registry=r,
        )
        self.opinions = Counter(
            "textserve_opinion_total",
            "Texts classified for both topic and sentiment, by stream, topic and sentiment.",
            ("stream", "topic", "sentiment"),
            registry=r,
        )
        self.handoffs = Counter(
            "textserve_handoffs_total",
            "Replies handed to a human agent, by reason: customer_asked_for_human, "
            "low_confidence, negative_sentiment.",
            ("model", "version", "reason"),
            registry=r,
        )
        self.conversations = Gauge(
            "textserve_conversations", "Conversations whose turns the service keeps.", registry=r
        )
        self.conversation_bytes = Gauge(
            "textserve_conversation_memory_bytes",
            "Estimated memory held by kept conversation turns.",
            registry=r,
        )
        self.model_info = Info(
            "textserve_model",
            "The active version of each model, the execution provider it runs on and the "
            "variant of its ONNX file (fp32, int8).",
            ("model",),
            registry=r,
        )
        self.provider_fallbacks = Counter(
            "textserve_provider_unavailable_total",
            "Requested execution providers that this machine could not offer.",
            ("model", "provider"),
            registry=r,
        )
        self.model_loads = Counter(
            "textserve_model_loads_total",
            "Model version loads, by outcome (ok, corrupt, error).",
            ("model", "outcome"),
            registry=r,
        )
        self.ready = Gauge(
            "textserve_ready", "1 when every active model is loaded and warmed.", registry=r
        )
        # textserve_gpu_*: utilisation, memory and temperature per device, where NVML sees one.
        self.gpu = register_gpu_metrics(r)
        self.finetune_jobs_finished = Counter(
            "textserve_finetune_jobs_total",
            "Fine-tune jobs finished by this replica, by final state.",
            ("state",),
            registry=r,
        )
        self.finetune_duration = Histogram(
            "textserve_finetune_job_duration_seconds",
            "Time from a fine-tune job starting to run to its end, by final state.",
            ("state",),
            buckets=JOB_DURATION_BUCKETS,
            registry=r,
        )
        self.training_samples_per_second = Gauge(
            "textserve_training_samples_per_second",
            "Training throughput of each running fine-tune job.",
            ("job",),
            registry=r,
        )
        self.training_loss = Gauge(
            "textserve_training_loss",
            "Current mean training loss (this epoch) of each running fine-tune job.",
            ("job",),
            registry=r,
        )

    def watch_job_states(self, counts: Callable[[], dict[str, int]]) -> None:
        """Export ``textserve_finetune_jobs{state}``, read from the job store at scrape time."""
        # A collector rather than a Gauge: the name shares its stem with the counter
        # textserve_finetune_jobs_total, which the client library's name check would refuse,
        # and reading the store keeps the figure right across restarts and replicas.
        self.registry.register(_JobStateCollector(counts))

    def watch_redis(self, stats: Callable[[], RedisStats]) -> None:
        """Export ``textserve_redis_*`` (up, errors, fallbacks), read from the link at scrape
        time (docs/scale-out.md)."""
        self.registry.register(_RedisCollector(stats))


class _RedisCollector(Collector):
    def __init__(self, stats: Callable[[], RedisStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        up = GaugeMetricFamily(
            "textserve_redis_up",
            "1 while the shared Redis answers; 0 from a failed call until one succeeds.",
        )
        up.add_metric((), 1 if stats.up else 0)
        yield up
        errors = CounterMetricFamily(
            "textserve_redis_errors",
            "Redis calls that failed, by use (rate_limits, conversations, promotions, ping).",
            labels=("use",),
        )
        for use, n in stats.errors.items():
            errors.add_metric((use,), n)
        yield errors
        fallbacks = CounterMetricFamily(
            "textserve_redis_fallbacks",
            "Requests served without Redis, by use and how: conversations answered stateless; "
            "rate limits charged locally, let through (open) or refused (closed).",
            labels=("use", "mode"),
        )
        for (use, mode), n in stats.fallbacks.items():
            fallbacks.add_metric((use, mode), n)
        yield fallbacks


class _JobStateCollector(Collector):
    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "textserve_finetune_jobs",
            "Fine-tune jobs in the job store, by state (shared by replicas of one database).",
            labels=("state",),
        )
        try:
            counts = self._counts()
        except TextserveError:
            # The job database is away (503 on the job routes): the scrape goes on without
            # this family rather than losing every serving metric with it.
            return
        for state, n in counts.items():
            family.add_metric((state,), n)
        yield family

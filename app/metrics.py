"""Every Prometheus metric the service exports: names, labels and buckets in one place.

Each app builds its own ``CollectorRegistry`` so several apps (tests, workers) never clash.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)

# `_created` series double the exposition for no dashboard use.
disable_created_metrics()

# Latency buckets from 0.5 ms to 30 s: a single CPU inference sits at a few ms, a queued
# request under overload at seconds.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
BATCH_TEXT_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 128, 256)
BATCH_TOKEN_BUCKETS = (16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


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
        self.model_info = Info(
            "textserve_model",
            "The active version of each model and the execution provider it runs on.",
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

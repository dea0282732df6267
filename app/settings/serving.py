"""Serving: the server, ONNX Runtime, the batcher, limits and deadlines, logs.

One section of ``app.config.Settings``, which composes the sections; fields read
``TEXTSERVE_<FIELD>`` there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode

from app.settings.values import split_csv

DEFAULT_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


class ServingSettings(BaseSettings):
    """Serving: the server, ONNX Runtime, the batcher, limits and deadlines, logs."""

    host: str = Field("127.0.0.1", description="Address to bind.")
    port: int = Field(8000, ge=0, le=65535, description="Port to bind (0 picks a free one).")
    model_store: Path = Field(
        Path("models"),
        description="Root of the model store: a `<name>/<version>/` folder per version and "
        "an `active` pointer per name.",
    )
    # NoDecode: env values are "A,B" (or a JSON list), split by `_split_csv` below.
    models: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Model names to serve; empty serves every model with an active version."
    )
    providers: Annotated[tuple[str, ...], NoDecode] = Field(
        DEFAULT_PROVIDERS,
        description="ONNX Runtime execution providers, in order of preference; one that is not "
        "available is logged and counted.",
    )
    workers: int = Field(
        1,
        ge=1,
        description="Server processes (each loads the models and has its own metrics; prefer "
        "replicas).",
    )
    batch_streams: int = Field(
        0,
        ge=0,
        description="Model runs in flight per model (0: auto, one per core on the CPU, one on a "
        "GPU; app/runtime/layout.py).",
    )
    solo_session: bool = Field(
        True,
        description="With several runs in flight, also load a session on all the cores for "
        "lone requests (light-load latency, for a second copy of the weights).",
    )
    inline_when_idle: bool = Field(
        True,
        description="With a solo session: a one-text request that finds nothing queued or "
        "running is run by the event loop itself, skipping the queue's two thread hand-offs "
        "(light-load latency).",
    )
    intra_op_threads: int = Field(
        0, ge=0, description="ORT intra-op threads per run (0: the run's share of the cores)."
    )
    inter_op_threads: int = Field(1, ge=0, description="ORT inter-op threads.")
    cuda_device_id: int = Field(0, ge=0, description="GPU the CUDA provider runs on.")
    cuda_mem_limit_mb: int = Field(
        0, ge=0, description="Most GPU memory ORT's arena may take, in MiB (0: no limit)."
    )
    cuda_shared_arena: bool = Field(
        True,
        description="One CUDA memory arena for every session of the process (all models, "
        "versions and hot swaps), so that cuda_mem_limit_mb is one budget for them all; off: "
        "each session has its own arena of up to cuda_mem_limit_mb.",
    )
    io_binding: bool = Field(True, description="Run through ORT IO binding on CUDA.")
    ort_spinning: bool = Field(
        False, description="Let idle ORT threads busy-wait (lower latency on dedicated cores)."
    )
    model_variant: Literal["auto", "fp32", "int8", "fp16"] = Field(
        "auto",
        description="ONNX file to serve: fp32, int8, fp16 (fp32 where a version has none), or "
        "auto: int8 on the CPU provider, fp16 on CUDA, when that file scored within 1 accuracy "
        "point of fp32 on the version's held-out rows, else fp32.",
    )
    max_batch_size: int = Field(32, ge=1, description="Most texts in one ORT run.")
    max_batch_tokens: int = Field(8192, ge=16, description="Most padded tokens in one ORT run.")
    max_wait_ms: float = Field(
        2.0, ge=0, description="Longest a batch waits to fill up (only under load)."
    )
    batch_overhead_tokens: float | None = Field(
        None,
        ge=0,
        description="Fixed cost of one ORT run in padded tokens, for batch shaping "
        "(empty: measured at warm-up).",
    )
    gil_switch_interval_ms: float = Field(
        0.5,
        gt=0,
        le=100,
        description="Python's thread switch interval: how long a thread back from a model run "
        "may wait for the GIL while the event loop runs (CPython's default: 5).",
    )
    lean_http: bool = Field(
        True,
        description="Serve POST /classify by a plain ASGI endpoint (same contract, less CPU "
        "per request); off: through FastAPI's router.",
    )
    max_queue_texts: int = Field(
        1024, ge=1, description="Queued texts per model version before 429 (with Retry-After)."
    )
    default_timeout_ms: int = Field(10_000, ge=1, description="Deadline when a request sets none.")
    max_timeout_ms: int = Field(60_000, ge=1, description="Largest deadline a request may ask for.")
    max_texts_per_request: int = Field(
        256, ge=1, description="Most texts in one request (422 above)."
    )
    max_text_chars: int = Field(
        20_000, ge=1, description="Most characters in one text (422 above)."
    )
    max_body_bytes: int = Field(
        2_000_000,
        ge=1024,
        description="Largest request body (413 above; uploads have their own limit, "
        "TEXTSERVE_MAX_UPLOAD_BYTES).",
    )
    # Capped well below where the json parser recurses out of stack (about 1,000 levels).
    max_json_depth: int = Field(
        32,
        ge=1,
        le=256,
        description="Deepest nesting of a JSON request body (422 beyond, checked before parsing).",
    )
    retry_after_s: int = Field(1, ge=1, description="Retry-After sent with 429 and 503.")
    max_inflight_requests: int = Field(
        256,
        ge=0,
        description="Requests served at once before 503 + Retry-After (0: no cap; probes exempt); "
        "a request with a body takes its place once the body is in.",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Time a request body has to arrive whole (an upload: between two chunks); "
        "408 and the connection closed after it.",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Time a connection has to send a request's headers (from its opening, or a "
        "later request's first byte); 408 and the connection closed after it.",
    )
    drain_timeout_s: float = Field(
        30.0, ge=0, description="Grace period to finish queued work on shutdown."
    )
    warmup: bool = Field(True, description="Run a warm-up batch before /readyz turns 200.")
    warmup_shapes: int = Field(
        6,
        ge=0,
        le=8,
        description="Batch shapes (rows x tokens, spanning max_batch_size, max_batch_tokens and "
        "the model's max length) each model runs at warm-up, so that no request pays for a "
        "first-time shape; each costs one run.",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="Log level."
    )
    log_format: Literal["json", "text"] = Field(
        "json", description="Log lines as JSON objects (one per request in the access log) or text."
    )
    docs: bool = Field(
        True,
        description="Serve the API's description at /docs, /redoc and /openapi.json (open to "
        "anyone who can reach the port, keys or not); their scripts and styles are served from "
        "the installed package under /docs-assets, never from a CDN.",
    )
    opentelemetry: bool = Field(
        False,
        description="FastAPI's own OpenTelemetry spans, metrics and logs, sent to the providers "
        "the process configures, e.g. with opentelemetry-instrument (off: its per-request check "
        "of them is skipped).",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("providers", "models", mode="before")
    @classmethod
    def _split_provider_lists(cls, value: object) -> object:
        return split_csv(value)

    @model_validator(mode="after")
    def _deadlines(self) -> Self:
        if self.default_timeout_ms > self.max_timeout_ms:
            raise ValueError(
                f"TEXTSERVE_DEFAULT_TIMEOUT_MS ({self.default_timeout_ms}) is above "
                f"TEXTSERVE_MAX_TIMEOUT_MS ({self.max_timeout_ms})"
            )
        return self

"""Service settings: read once from the environment (prefix ``TEXTSERVE_``) and passed down."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
# A `stream` name of /classify (and of TEXTSERVE_MONITOR_STREAMS): a Prometheus label value.
STREAM_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


class Settings(BaseSettings):
    """Every knob of the service. Each field is also the env var ``TEXTSERVE_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="TEXTSERVE_", frozen=True, extra="ignore")

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
    # -- fine-tune jobs ----------------------------------------------------------------------
    data_dir: Path = Field(
        Path("var"),
        description="Uploaded data sets, the SQLite jobs database (WAL) and job work folders.",
    )
    jobs_db_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the jobs database, e.g. PostgreSQL shared by replicas "
        "(default: SQLite in TEXTSERVE_DATA_DIR).",
    )
    max_upload_bytes: int = Field(
        200_000_000, ge=1024, description="Largest data set upload (413 above)."
    )
    max_concurrent_jobs: int = Field(
        1, ge=1, description="Fine-tunes this replica runs at once; more queue."
    )
    job_worker: bool = Field(True, description="Run queued fine-tunes on this replica.")
    job_poll_s: float = Field(2.0, gt=0, description="How often the job dispatcher looks.")
    job_stale_after_s: float = Field(
        120.0, gt=0, description="A running job whose owner sent no heartbeat for this long failed."
    )
    cancel_grace_s: float = Field(3.0, ge=0, description="SIGTERM to SIGKILL grace on cancel.")
    ray_address: str | None = Field(
        None,
        validation_alias=AliasChoices("TEXTSERVE_RAY_ADDRESS", "RAY_ADDRESS", "ray_address"),
        description="Run fine-tunes on this Ray cluster (also read from RAY_ADDRESS); a job "
        'asks for its share with `resources: {"cpus": …, "gpus": …}`.',
    )
    watch_interval_s: float = Field(
        2.0,
        ge=0,
        description="How often each replica re-reads the active pointers, to hot-swap (0: never).",
    )
    # -- replies (/reply, /v1/chat/completions) ---------------------------------------------
    reply_model: str = Field("reply", description="Reply model used when a request names none.")
    reply_low_confidence: float = Field(
        0.5, ge=0, le=1, description="Hand off to a human below this intent confidence."
    )
    reply_negative_sentiment: float = Field(
        0.9, ge=0, le=1, description="Hand off when the sentiment model's P(negative) reaches this."
    )
    reply_sentiment_model: str = Field(
        "sentiment", description="Classifier with a `negative` label for handoffs ('' turns off)."
    )
    reply_context_confidence: float = Field(
        0.7, ge=0, le=1, description="Below this, read a message together with the last turn."
    )
    reply_alternatives: int = Field(3, ge=0, le=20, description="Runner-up intents returned.")
    reply_kb_min_score: float = Field(
        0.45,
        ge=-1,
        le=1,
        description="/reply with a `knowledge_base`: least cosine similarity of the best "
        "passage to answer from it (below: hand off as without one). Tune it for the "
        "embedding model; see docs/knowledge-bases.md.",
    )
    reply_slots: dict[str, str] = Field(
        default_factory=dict,
        description='Slot values for every reply, as JSON (e.g. {"website_url": "shop.example"}).',
    )
    conversation_max_turns: int = Field(20, ge=1, description="Turns kept per conversation.")
    conversation_ttl_s: float = Field(
        1800.0, gt=0, description="Turns older than this are forgotten."
    )
    conversation_max_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Memory for all kept conversations (default 64 MiB; the least recently "
        "used are dropped beyond).",
    )
    conversation_max_count: int = Field(100_000, ge=1, description="Most conversations kept.")
    # -- security (app/security) -------------------------------------------------------------
    api_keys_file: Path | None = Field(
        None,
        description="File of API keys, one `name:scopes:secret` a line; the secret plain or "
        "`sha256:<hex>`, scopes `infer`, `admin`, `metrics` (see SECURITY.md).",
    )
    api_keys: SecretStr | None = Field(
        None, description="API keys inline, `name:scopes:secret` entries separated by `;`."
    )
    require_api_keys: bool = Field(
        False, description="Refuse to start without API keys (otherwise: open, with a warning)."
    )
    metrics_require_key: bool = Field(
        False, description="/metrics needs a key with the `metrics` scope (otherwise open)."
    )
    rate_limit_requests: dict[str, float] = Field(
        default_factory=lambda: {"infer": 100.0, "admin": 10.0, "metrics": 5.0},
        description="Requests per second per key and scope, as JSON (0 or absent: no limit).",
    )
    rate_limit_texts: dict[str, float] = Field(
        default_factory=lambda: {"infer": 2000.0},
        description="Texts per second per key and scope, as JSON (0 or absent: no limit).",
    )
    rate_limit_burst_s: float = Field(
        2.0, gt=0, description="Bucket size, in seconds of the rate: the burst a key may send."
    )
    # -- opinion monitoring (app/serving/monitor.py, GET /v1/monitor) ---------------------------
    monitor_streams: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description='Stream names /classify accepts in `stream` ("news,social"); empty: the '
        "first TEXTSERVE_MONITOR_MAX_STREAMS names seen.",
    )
    monitor_max_streams: int = Field(
        16, ge=1, le=1000, description="Without an allowlist: most distinct stream names taken."
    )
    monitor_keep_s: int = Field(
        86_400,
        ge=120,
        le=7 * 86_400,
        description="How far back the per-minute buckets of /v1/monitor reach, in seconds.",
    )
    monitor_fine_keep_s: int = Field(
        900,
        ge=10,
        le=3600,
        description="How far back the per-second buckets reach (windows within it are exact to "
        "the second; longer ones to the minute).",
    )
    monitor_window_s: int = Field(300, ge=1, description="/v1/monitor's default `window`.")
    monitor_baseline_s: int = Field(3600, ge=1, description="/v1/monitor's default `baseline`.")
    monitor_min_count: int = Field(
        20, ge=1, description="/v1/monitor's default `min_count`: texts a window needs to alert."
    )
    monitor_floor: float = Field(
        0.3, ge=0, le=1, description="/v1/monitor's default `floor`: least negative share to alert."
    )
    monitor_ratio: float = Field(
        2.0,
        ge=1,
        description="/v1/monitor's default `ratio`: least multiple of the baseline share to alert.",
    )
    # -- knowledge bases (app/knowledge) -----------------------------------------------------
    vector_url: str | None = Field(
        None,
        description="Vector store of knowledge bases: empty for the local store in data_dir/"
        "vectors (one replica); a Qdrant URL (http://qdrant:6333) when replicas share vectors; "
        "`:memory:` or `file:<path>` for qdrant-client's local mode.",
    )
    vector_api_key: SecretStr | None = Field(
        None, description="API key sent to Qdrant (TEXTSERVE_VECTOR_URL), if it needs one."
    )
    vector_ann_min_chunks: int = Field(
        200_000,
        ge=0,
        description="Local store: a collection of at least this many chunks is searched "
        "through an approximate (IVF) index instead of exactly (0: always exact).",
    )
    knowledge_db_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the knowledge-base metadata database (default: SQLite "
        "in data_dir; PostgreSQL when replicas share it).",
    )
    # -- shared state across replicas (docs/scale-out.md) -------------------------------------
    redis_url: SecretStr | None = Field(
        None,
        description="Redis shared by the replicas (redis://host:6379/0, rediss:// for TLS): "
        "conversations, rate limits and promotion nudges live there. Unset: each replica keeps "
        "them in its own memory.",
    )
    redis_prefix: str = Field(
        "textserve:",
        description="Prefix of every Redis key and channel, so deployments can share one Redis.",
    )
    redis_timeout_ms: float = Field(
        250.0,
        gt=0,
        description="Longest a Redis call may take before it counts as a failure (opening a "
        "connection: at least 1 s).",
    )
    redis_retry_s: float = Field(
        1.0,
        gt=0,
        description="After a Redis failure, requests take their fallback for this long before "
        "one tries Redis again.",
    )
    redis_rate_limit_fail: Literal["local", "open", "closed"] = Field(
        "local",
        description="Rate limits while Redis is unreachable: `local` (each replica enforces the "
        "limits alone, so N replicas allow up to N times them), `open` (no limits) or `closed` "
        "(503 for keyed requests).",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("monitor_streams", mode="after")
    @classmethod
    def _stream_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [name for name in value if not STREAM_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"stream names must match {STREAM_NAME.pattern}: {bad}")
        return value

    @model_validator(mode="after")
    def _deadlines(self) -> Settings:
        if self.default_timeout_ms > self.max_timeout_ms:
            raise ValueError(
                f"TEXTSERVE_DEFAULT_TIMEOUT_MS ({self.default_timeout_ms}) is above "
                f"TEXTSERVE_MAX_TIMEOUT_MS ({self.max_timeout_ms})"
            )
        return self

    @model_validator(mode="after")
    def _monitor_periods(self) -> Settings:
        if self.monitor_window_s + self.monitor_baseline_s > self.monitor_keep_s:
            raise ValueError(
                f"TEXTSERVE_MONITOR_WINDOW_S + TEXTSERVE_MONITOR_BASELINE_S "
                f"({self.monitor_window_s + self.monitor_baseline_s}) exceed "
                f"TEXTSERVE_MONITOR_KEEP_S ({self.monitor_keep_s})"
            )
        return self

    @field_validator("providers", "models", "monitor_streams", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        # Env vars arrive as "A,B" or as a JSON list.
        if isinstance(value, str) and value.lstrip().startswith("["):
            return json.loads(value)
        if isinstance(value, str):
            return tuple(p.strip() for p in value.split(",") if p.strip())
        return value


def settings_problems(exc: Exception) -> list[str]:
    """One line per problem of settings that failed to load, each naming its variable.

    For a person reading a failed start, and for a log pipeline: pydantic's own report is a
    multi-line box naming fields, not the variables that set them.
    """
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    if isinstance(exc, ValidationError):
        lines = []
        for error in exc.errors(include_url=False):
            loc = error.get("loc") or ()
            if not loc:  # a rule across fields: its message names the variables
                lines.append(str(error.get("msg", "")).removeprefix("Value error, "))
                continue
            name = f"TEXTSERVE_{str(loc[0]).upper()}"
            lines.append(f"{name}={error.get('input')!r}: {error.get('msg')}")
        return lines
    if isinstance(exc, SettingsError):  # a value that is not the JSON its field needs
        found = re.search(r'field "(\w+)"', str(exc))
        name = f"TEXTSERVE_{found.group(1).upper()}" if found else "a setting"
        return [f"{name}: not valid JSON ({exc.__cause__ or exc})"]
    return [str(exc)]

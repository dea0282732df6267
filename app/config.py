"""Service settings: read once from the environment (prefix ``TEXTSERVE_``) and passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


class Settings(BaseSettings):
    """Every knob of the service. Each field is also the env var ``TEXTSERVE_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="TEXTSERVE_", frozen=True, extra="ignore")

    host: str = Field("127.0.0.1", description="Address to bind.")
    port: int = Field(8000, ge=0, le=65535, description="Port to bind (0 picks a free one).")
    model_store: Path = Field(Path("models"), description="Root of the model store.")
    models: tuple[str, ...] = Field(
        (), description="Model names to serve; empty serves every model with an active version."
    )
    providers: tuple[str, ...] = Field(
        DEFAULT_PROVIDERS, description="ONNX Runtime execution providers, in order of preference."
    )
    intra_op_threads: int = Field(0, ge=0, description="ORT intra-op threads (0: one per core).")
    inter_op_threads: int = Field(1, ge=0, description="ORT inter-op threads.")
    max_batch_size: int = Field(32, ge=1, description="Most texts in one ORT run.")
    max_batch_tokens: int = Field(8192, ge=16, description="Most padded tokens in one ORT run.")
    max_wait_ms: float = Field(2.0, ge=0, description="Longest a batch waits to fill up.")
    max_queue_texts: int = Field(1024, ge=1, description="Queued texts per model before 429.")
    default_timeout_ms: int = Field(10_000, ge=1, description="Deadline when a request sets none.")
    max_timeout_ms: int = Field(60_000, ge=1, description="Largest deadline a request may ask for.")
    max_texts_per_request: int = Field(256, ge=1, description="Most texts in one request.")
    max_text_chars: int = Field(20_000, ge=1, description="Most characters in one text.")
    max_body_bytes: int = Field(2_000_000, ge=1024, description="Largest request body (413 above).")
    retry_after_s: int = Field(1, ge=1, description="Retry-After sent with 429 and 503.")
    drain_timeout_s: float = Field(30.0, ge=0, description="Grace period to finish queued work.")
    warmup: bool = Field(True, description="Run a warm-up batch before /readyz turns 200.")
    log_level: str = Field("info", description="Log level.")

    @field_validator("providers", "models", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        # Env vars arrive as "A,B"; JSON lists are accepted too by pydantic-settings.
        if isinstance(value, str) and not value.startswith("["):
            return tuple(p.strip() for p in value.split(",") if p.strip())
        return value

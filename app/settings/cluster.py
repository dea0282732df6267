"""State shared across replicas through Redis (docs/scale-out.md).

One section of ``app.config.Settings``, which composes the sections; fields read
``TEXTSERVE_<FIELD>`` there.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings


class ClusterSettings(BaseSettings):
    """State shared across replicas through Redis (docs/scale-out.md)."""

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

"""API keys and rate limits (app/security).

One section of ``app.config.Settings``, which composes the sections; fields read
``TEXTSERVE_<FIELD>`` there.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings


class SecuritySettings(BaseSettings):
    """API keys and rate limits (app/security)."""

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

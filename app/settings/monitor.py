"""Opinion monitoring windows and surge rules (app/serving/monitor.py).

One section of ``app.config.Settings``, which composes the sections; fields read
``TEXTSERVE_<FIELD>`` there.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode

from app.settings.values import STREAM_NAME, split_csv


class MonitorSettings(BaseSettings):
    """Opinion monitoring windows and surge rules (app/serving/monitor.py)."""

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

    @field_validator("monitor_streams", mode="before")
    @classmethod
    def _split_stream_list(cls, value: object) -> object:
        return split_csv(value)

    @field_validator("monitor_streams", mode="after")
    @classmethod
    def _stream_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [name for name in value if not STREAM_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"stream names must match {STREAM_NAME.pattern}: {bad}")
        return value

    @model_validator(mode="after")
    def _monitor_periods(self) -> Self:
        if self.monitor_window_s + self.monitor_baseline_s > self.monitor_keep_s:
            raise ValueError(
                f"TEXTSERVE_MONITOR_WINDOW_S + TEXTSERVE_MONITOR_BASELINE_S "
                f"({self.monitor_window_s + self.monitor_baseline_s}) exceed "
                f"TEXTSERVE_MONITOR_KEEP_S ({self.monitor_keep_s})"
            )
        return self

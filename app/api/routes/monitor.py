"""GET /v1/monitor: each topic's negative share in a recent window against its baseline."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.api.deps import ServicesDep
from app.api.errors import InvalidInput
from app.api.schemas import ErrorResponse
from app.api.schemas_opinion import MonitorResponse
from app.config import STREAM_NAME
from app.serving.monitor import DEFAULT_STREAM, PeriodTooLong, SurgeRule

router = APIRouter(tags=["monitoring"])

DURATION = re.compile(r"(\d{1,7})([smhd]?)")
UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_duration(value: str | None, default_s: int, field: str) -> int:
    """``15s``, ``5m``, ``6h``, ``1d`` or plain seconds, as whole seconds (at least one)."""
    if value is None:
        return default_s
    found = DURATION.fullmatch(value.strip())
    if found is None:
        raise InvalidInput(field, f"{value!r} is not a duration such as 15s, 5m, 6h or 1d")
    seconds = int(found.group(1)) * UNIT_S[found.group(2)]
    if seconds < 1:
        raise InvalidInput(field, "must be at least 1 second")
    return seconds


@router.get(
    "/v1/monitor",
    response_model=MonitorResponse,
    responses={422: {"model": ErrorResponse}},
)
async def monitor(
    services: ServicesDep,
    stream: Annotated[
        str, Query(description="The stream, as /classify's `stream` named it.")
    ] = DEFAULT_STREAM,
    window: Annotated[
        str | None, Query(description="Recent period: 15s, 5m, 6h... (default 5m).")
    ] = None,
    baseline: Annotated[
        str | None, Query(description="The period before the window to compare with (1h).")
    ] = None,
    min_count: Annotated[
        int | None, Query(ge=1, description="Texts a window needs before a topic alerts (20).")
    ] = None,
    floor: Annotated[
        float | None,
        Query(ge=0, le=1, allow_inf_nan=False, description="Least negative share to alert (0.3)."),
    ] = None,
    ratio: Annotated[
        float | None,
        Query(ge=0, allow_inf_nan=False, description="Least multiple of the baseline share (2)."),
    ] = None,
) -> dict[str, Any]:
    """Per topic of one stream: texts and negative share over `window`, the share over the
    `baseline` before it, and whether that is a surge. Covers the replica that answers."""
    settings = services.settings
    if not STREAM_NAME.fullmatch(stream):
        raise InvalidInput("stream", f"must match {STREAM_NAME.pattern}")
    window_s = parse_duration(window, settings.monitor_window_s, "window")
    baseline_s = parse_duration(baseline, settings.monitor_baseline_s, "baseline")
    rule = SurgeRule(
        min_count=settings.monitor_min_count if min_count is None else min_count,
        floor=settings.monitor_floor if floor is None else floor,
        ratio=settings.monitor_ratio if ratio is None else ratio,
    )
    try:
        trend = services.opinion.monitor.trend(stream, window_s, baseline_s, rule)
    except PeriodTooLong as exc:
        raise InvalidInput(exc.param or "window", str(exc)) from None
    return {
        "stream": trend.stream,
        "window_s": trend.window_s,
        "baseline_s": trend.baseline_s,
        "resolution_s": trend.resolution_s,
        "min_count": rule.min_count,
        "floor": rule.floor,
        "ratio": rule.ratio,
        "topics": [vars(t) for t in trend.topics],
    }

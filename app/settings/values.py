"""Parsing shared by the settings sections."""

from __future__ import annotations

import json
import re

# A `stream` name of /classify (and of TEXTSERVE_MONITOR_STREAMS): a Prometheus label value.
STREAM_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


def split_csv(value: object) -> object:
    """A list setting from the environment: "A,B" or a JSON list; anything else as given."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        return json.loads(value)
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    return value

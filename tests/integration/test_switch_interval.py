"""The service sets Python's thread switch interval from its settings when it starts."""

from __future__ import annotations

import sys

from app.store.versions import ModelStore
from tests.integration.conftest import run, running, settings_for


def test_startup_sets_the_gil_switch_interval(tiny_store: ModelStore) -> None:
    before = sys.getswitchinterval()

    async def main() -> None:
        async with running(settings_for(tiny_store, gil_switch_interval_ms=2.5)) as (client, _):
            assert (await client.get("/readyz")).status_code == 200
            assert sys.getswitchinterval() == 0.0025

    try:
        run(main)
    finally:
        sys.setswitchinterval(before)

"""Promotion and rollback under continuous concurrent /classify load: zero failed requests."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from app.store.versions import ModelStore
from tests.integration.conftest import run, running
from tests.support.finetune import job_settings
from tests.support.tiny_model import publish_tiny_classifier

CLIENTS = 8


def test_promote_and_rollback_under_load_fail_no_request(
    tiny_store: ModelStore, tmp_path: Path
) -> None:
    publish_tiny_classifier(tiny_store, "sentiment", seed=1, activate=False)  # version 2
    settings = job_settings(tiny_store, tmp_path / "var", watch_interval_s=0.1)
    # (started, finished, status, version) of every request
    log: list[tuple[float, float, int, int | None]] = []

    async def main() -> None:
        async with running(settings) as (client, app):
            stop = asyncio.Event()

            async def load() -> None:
                i = 0
                while not stop.is_set():
                    i += 1
                    started = time.monotonic()
                    r = await client.post(
                        "/classify", json={"model": "sentiment", "texts": [f"great {i}", "bad"]}
                    )
                    version = r.json().get("version") if r.status_code == 200 else None
                    log.append((started, time.monotonic(), r.status_code, version))

            async def marks() -> dict[str, float]:
                at: dict[str, float] = {}
                await asyncio.sleep(0.3)
                r = await client.post("/v1/models/sentiment/promote", json={"version": 2})
                assert r.status_code == 200, r.text
                assert r.json() == {"model": "sentiment", "active_version": 2,
                                    "previous_version": 1, "loaded_version": 2}  # fmt: skip
                at["promoted"] = time.monotonic()
                await asyncio.sleep(0.3)
                at["rollback"] = time.monotonic()
                r = await client.post("/v1/models/sentiment/rollback")
                assert r.status_code == 200, r.text
                assert r.json()["active_version"] == 1
                assert r.json()["loaded_version"] == 1
                at["rolled_back"] = time.monotonic()
                await asyncio.sleep(0.3)
                # Another replica moves the pointer: this one follows by watching the store.
                tiny_store.set_active("sentiment", 2, reason="promote")
                at["pointer_moved"] = time.monotonic()
                await asyncio.sleep(1.0)
                stop.set()
                return at

            tasks = [asyncio.create_task(load()) for _ in range(CLIENTS)]
            at = await marks()
            await asyncio.gather(*tasks)

            failed = [entry for entry in log if entry[2] != 200]
            assert failed == [], failed[:5]
            assert len(log) > 50
            assert all(v in (1, 2) for *_, v in log)
            # Every request sent after a swap returned, and answered before the next swap
            # began, is answered by the new version. (One sent just before the next swap may
            # reach the registry after it: its start time says nothing about that.)
            between = [v for s, f, _, v in log if at["promoted"] < s and f < at["rollback"]]
            assert between
            assert set(between) == {2}
            after_rollback = [
                v for s, f, _, v in log if at["rolled_back"] < s and f < at["pointer_moved"]
            ]
            assert after_rollback
            assert set(after_rollback) == {1}
            tail = [v for s, _, _, v in log if s > at["pointer_moved"] + 0.5]
            assert tail
            assert set(tail) == {2}

            card = (await client.get("/v1/models/sentiment")).json()
            assert (card["active_version"], card["loaded_version"]) == (2, 2)
            # The retired engines were drained and their sessions freed.
            await asyncio.sleep(0.2)
            engine = app.state.services.registry.get("sentiment")
            assert engine.version == 2
            # Rollback with nothing earlier than the first version is a conflict.
            tiny_store.set_active("topic", 1)
            r = await client.post("/v1/models/topic/rollback")
            assert r.status_code == 409
            r = await client.post("/v1/models/sentiment/promote", json={"version": 9})
            assert r.status_code == 404
            r = await client.post("/v1/models/nothing/rollback")
            assert r.status_code == 404

    run(main)


def test_the_watcher_loads_a_model_that_appears_and_readiness_follows(
    store: ModelStore, tmp_path: Path
) -> None:
    settings = job_settings(store, tmp_path / "var", watch_interval_s=0.1)

    async def main() -> None:
        async with running(settings) as (client, _):
            assert (await client.get("/readyz")).status_code == 503
            publish_tiny_classifier(store, "fresh")
            deadline = time.monotonic() + 5
            while (await client.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            r = await client.post("/classify", json={"model": "fresh", "text": "great"})
            assert r.json()["version"] == 1

    run(main)


def test_a_corrupt_new_version_is_not_served_and_the_old_one_keeps_serving(
    tiny_store: ModelStore, tmp_path: Path
) -> None:
    publish_tiny_classifier(tiny_store, "sentiment", seed=1, activate=False)
    settings = job_settings(tiny_store, tmp_path / "var", watch_interval_s=0.1)

    async def main() -> None:
        async with running(settings) as (client, _):
            (tiny_store.root / "sentiment" / "active").write_text("2\n")
            model = tiny_store.version_dir("sentiment", 2) / "model.onnx"
            model.write_bytes(b"broken")
            await asyncio.sleep(0.5)
            r = await client.post("/classify", json={"model": "sentiment", "text": "great"})
            assert r.status_code == 200
            assert r.json()["version"] == 1
            r = await client.post("/v1/models/sentiment/promote", json={"version": 2})
            assert r.status_code == 409
            assert r.json()["error"]["type"] == "corrupt_model"

    run(main)


def test_promoting_a_version_whose_files_fail_their_checksum_is_refused_naming_it(
    tiny_store: ModelStore, tmp_path: Path
) -> None:
    """The operator named a damaged version: a 4xx that says which, and nothing moves."""
    publish_tiny_classifier(tiny_store, "sentiment", seed=1, activate=False)  # version 2
    model = tiny_store.version_dir("sentiment", 2) / "model.onnx"
    model.write_bytes(model.read_bytes()[:-64] + bytes(64))  # a damaged copy, same size
    settings = job_settings(tiny_store, tmp_path / "var", watch_interval_s=0.1)

    async def main() -> None:
        async with running(settings) as (client, _):
            r = await client.post("/v1/models/sentiment/promote", json={"version": 2})
            assert r.status_code == 409, r.text
            error = r.json()["error"]
            assert error["code"] == error["type"] == "corrupt_model"
            assert error["param"] == "version"
            assert "version 2 of 'sentiment'" in error["message"]
            assert "checksum mismatch for model.onnx" in error["message"]
            assert "sentiment@1 keeps serving" in error["message"]
            assert tiny_store.active_version("sentiment") == 1
            assert [e["version"] for e in tiny_store.history("sentiment")] == [1]
            r = await client.post("/classify", json={"model": "sentiment", "text": "great"})
            assert r.status_code == 200
            assert r.json()["version"] == 1
            r = await client.get("/readyz")
            assert r.status_code == 200, r.text

    run(main)

"""Fine-tunes through the HTTP API with real training of the packaged encoder (few rows)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.store.versions import ModelStore
from app.training.tasks import TASKS
from tests.integration.conftest import run, running
from tests.support.finetune import FAST_HP, finished, job_settings, sentiment_csv, upload, wait_for


def test_a_fine_tune_publishes_a_servable_version_and_a_second_is_compared(
    store: ModelStore, tmp_path: Path
) -> None:
    async def main() -> None:
        async with running(job_settings(store, tmp_path / "var")) as (client, _app):
            fid = (await upload(client, sentiment_csv(20))).json()["id"]
            r = await client.post(
                "/v1/fine-tunes",
                json={"model": "reviews", "training_file": fid, "hyperparameters": FAST_HP},
            )
            assert r.status_code == 201, r.text
            job = r.json()
            assert job["object"] == "fine_tuning.job"
            assert job["status"] == "validating_files"
            assert job["promote"] == "if_better"

            # Server-sent events, as they happen, until the job ends.
            seen: list[dict[str, object]] = []
            async with client.stream(
                "GET", f"/v1/fine-tunes/{job['id']}/events", params={"stream": "true"}
            ) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                async for line in stream.aiter_lines():
                    if line.startswith("data: "):
                        seen.append(json.loads(line[6:]))
            assert seen[-1] == {"status": "succeeded"}, seen
            states = [e["data"]["state"] for e in seen[:-1] if e.get("type") == "state"]  # type: ignore[index]
            assert states == ["validating_files", "queued", "running", "succeeded"]
            stages = [e["message"] for e in seen if e.get("type") == "stage"]
            assert stages[:2] == ["loading data", "training"]
            assert "exporting" in stages
            assert "checking parity" in stages
            progress = [e for e in seen if e.get("type") == "progress"]
            assert progress
            last = progress[-1]["data"]
            assert last["step"] == last["total_steps"] == 3  # type: ignore[index]
            assert last["samples_per_second"] > 0  # type: ignore[index]

            done = (await client.get(f"/v1/fine-tunes/{job['id']}")).json()
            assert done["status"] == "succeeded"
            assert done["fine_tuned_model"] == "reviews@1"
            assert done["progress"]["step"] == 3
            assert done["progress"]["eta_seconds"] == 0
            result = done["result"]
            assert result["version"] == 1
            assert set(result["metrics"]["eval"]) >= {"accuracy", "macro_f1", "per_label",
                                                       "confusion_matrix"}  # fmt: skip
            assert result["validation_rows"] == 4
            assert result["promotion"]["promoted"] is True
            manifest = store.read_manifest("reviews", 1)
            assert manifest.parity["argmax_agree"] is True
            assert manifest.recipe["job"] == job["id"]
            assert store.active_version("reviews") == 1

            # Served at once by this replica, without a restart.
            r = await client.post("/classify", json={"model": "reviews", "text": "loved it"})
            assert r.status_code == 200
            assert r.json()["version"] == 1
            assert r.json()["label"] in ("positive", "negative")
            assert (await client.get("/readyz")).json()["models"] == {"reviews": "reviews@1"}

            # A second job with its own validation file: published, and compared with the
            # active version on the same rows; promoted only if strictly better.
            vid = (await upload(client, sentiment_csv(3), "valid.csv")).json()["id"]
            r = await client.post(
                "/v1/fine-tunes",
                json={
                    "model": "reviews",
                    "training_file": fid,
                    "validation_file": vid,
                    "hyperparameters": {**FAST_HP, "seed": 4},
                },
            )
            second = await wait_for(client, r.json()["id"], finished)
            assert second["status"] == "succeeded", second
            assert second["fine_tuned_model"] == "reviews@2"
            assert second["result"]["validation_rows"] == 6
            comparison = second["result"]["comparison"]
            assert comparison["active"]["version"] == 1
            assert comparison["active"]["n"] == 6
            better = comparison["candidate"]["accuracy"] > comparison["active"]["accuracy"]
            assert second["result"]["promotion"]["promoted"] is better
            assert store.active_version("reviews") == (2 if better else 1)

            listed = (await client.get("/v1/fine-tunes", params={"limit": 1})).json()
            assert [j["id"] for j in listed["data"]] == [second["id"]]
            assert listed["has_more"] is True
            events = (await client.get(f"/v1/fine-tunes/{job['id']}/events",
                                       params={"limit": 2})).json()  # fmt: skip
            assert len(events["data"]) == 2
            assert events["has_more"] is True
            after = events["data"][-1]["id"]
            rest = (await client.get(f"/v1/fine-tunes/{job['id']}/events",
                                     params={"after": after})).json()  # fmt: skip
            assert rest["data"][0]["id"] > after

            text = (await client.get("/metrics")).text
            families = {f.name: f for f in text_string_to_metric_families(text)}
            by_state = {
                s.labels["state"]: s.value for s in families["textserve_finetune_jobs"].samples
            }
            assert by_state["succeeded"] == 2
            assert by_state["running"] == 0
            totals = [s for s in families["textserve_finetune_jobs"].samples]
            assert totals
            assert 'textserve_finetune_jobs_total{state="succeeded"} 2.0' in text
            assert 'textserve_finetune_job_duration_seconds_count{state="succeeded"} 2.0' in text

            # Other labels are another contract for every client: published, never promoted
            # by a score (the active version would score 0 on labels it never knew).
            renamed = sentiment_csv(20).replace(b"positive", b"good").replace(b"negative", b"bad")
            rid = (await upload(client, renamed, "renamed.csv")).json()["id"]
            r = await client.post(
                "/v1/fine-tunes",
                json={"model": "reviews", "training_file": rid, "hyperparameters": FAST_HP},
            )
            third = await wait_for(client, r.json()["id"], finished)
            assert third["status"] == "succeeded", third
            assert third["result"]["comparison"]["labels_differ"]["candidate"] == ["bad", "good"]
            promotion = third["result"]["promotion"]
            assert promotion["promoted"] is False
            assert "promote it explicitly" in promotion["reason"]
            assert store.active_version("reviews") == (2 if better else 1)

    run(main)


def test_bad_requests_and_bad_files_are_refused(
    store: ModelStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        async with running(job_settings(store, tmp_path / "var")) as (client, _):
            fid = (await upload(client, sentiment_csv(5))).json()["id"]

            async def post(body: dict[str, Any]) -> httpx.Response:
                return await client.post("/v1/fine-tunes", json=body)

            r = await post({"model": "x", "training_file": "file-nope"})
            assert r.status_code == 404
            assert r.json()["error"]["param"] == "training_file"
            r = await post({"model": "x", "training_file": fid, "validation_file": "file-nope"})
            assert r.status_code == 404
            assert r.json()["error"]["param"] == "validation_file"
            r = await post({"model": "Bad Name", "training_file": fid})
            assert r.status_code == 422
            r = await post({"model": "x", "training_file": fid, "hyperparameters": {"epochs": 0}})
            assert r.status_code == 422
            assert r.json()["error"]["param"] == "hyperparameters.epochs"
            r = await post({"model": "x", "training_file": fid, "hyperparameters": {"lr": 1}})
            assert r.status_code == 422
            r = await post({"model": "x", "training_file": fid, "base_model": "/no/such/dir"})
            assert r.status_code == 422
            assert r.json()["error"]["type"] == "base_model_unavailable"
            r = await post({"model": "x", "training_file": fid, "promote": "sometimes"})
            assert r.status_code == 422
            r = await post({"model": "x", "training_file": fid, "task": "summarization"})
            assert r.status_code == 422
            assert r.json()["error"]["param"] == "task"
            # A task missing from the task registry is refused up front.
            monkeypatch.delitem(TASKS, "reply")
            r = await post({"model": "x", "training_file": fid, "task": "reply"})
            assert r.status_code == 422
            assert r.json()["error"]["type"] == "task_not_available"
            assert "task 'reply' is not available" in r.json()["error"]["message"]
            monkeypatch.undo()

            # Labels the training file lacks: refused before a job is recorded (the file
            # records say so; tests/integration/test_fine_tune_checks.py has the rest).
            other = (await upload(client, b"text,label\nhello there,neutral\nhi,neutral\n",
                                  "v.csv")).json()["id"]  # fmt: skip
            r = await post({"model": "x", "training_file": fid, "validation_file": other})
            assert r.status_code == 422
            assert r.json()["error"]["type"] == "invalid_dataset"
            assert r.json()["error"]["param"] == "validation_file"
            assert "neutral" in r.json()["error"]["message"]
            assert (await client.get("/v1/fine-tunes")).json()["data"] == []

            assert (await client.get("/v1/fine-tunes/ftjob-nope")).status_code == 404

    run(main)


def test_an_unknown_page_cursor_is_named_as_the_field_at_fault(
    store: ModelStore, tmp_path: Path
) -> None:
    async def main() -> None:
        async with running(job_settings(store, tmp_path / "var")) as (client, _):
            r = await client.get("/v1/fine-tunes", params={"after": "ftjob-nope"})
            assert r.status_code == 404
            error = r.json()["error"]
            assert (error["type"], error["param"]) == ("job_not_found", "after")

    run(main)


def test_a_lora_job_through_the_api_publishes_a_merged_servable_model(
    store: ModelStore, tmp_path: Path
) -> None:
    async def main() -> None:
        async with running(job_settings(store, tmp_path / "var")) as (client, _app):
            fid = (await upload(client, sentiment_csv(20))).json()["id"]
            r = await client.post(
                "/v1/fine-tunes",
                json={
                    "model": "reviews",
                    "training_file": fid,
                    "hyperparameters": {**FAST_HP, "method": "lora"},
                },
            )
            assert r.status_code == 201, r.text
            assert r.json()["hyperparameters"]["learning_rate"] == 5e-4  # the LoRA default
            job = await wait_for(client, r.json()["id"], finished, timeout_s=300)
            assert job["status"] == "succeeded", job
            assert job["result"]["training"]["method"] == "lora"
            assert job["result"]["training"]["samples_per_second"] > 0
            manifest = store.read_manifest("reviews", 1).model_dump()
            assert manifest["training"]["method"] == "lora"
            assert manifest["parity"]["argmax_agree"] is True
            r = await client.post("/classify", json={"model": "reviews", "text": "loved it"})
            assert r.status_code == 200
            assert 0 < r.json()["score"] <= 1

            r = await client.post(
                "/v1/fine-tunes",
                json={"model": "reviews", "training_file": fid,
                      "hyperparameters": {"method": "qlora"}},
            )  # fmt: skip
            assert r.status_code == 422
            assert "method" in r.text

    run(main)

"""What POST /v1/fine-tunes refuses up front: a task that is not the model's, a file that
cannot train the task. No training runs here: a refused job is never recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from app.store.versions import ModelStore
from tests.integration.conftest import run, running
from tests.support.finetune import finished, job_settings, sentiment_csv, upload, wait_for
from tests.support.tiny_model import publish_tiny_classifier
from tests.support.tiny_reply_model import publish_tiny_reply_model

# Bitext's layout (instruction, intent, response): what a reply fine-tune trains on.
REPLY_CSV = "instruction,category,intent,response\n" + "".join(
    f"{text} {i},{cat},{intent},{reply}\n"
    for i in range(3)
    for text, cat, intent, reply in (
        ("where is my order", "ORDER", "track_order", "It is on its way."),
        ("I want a refund", "REFUND", "get_refund", "Refunds take 5 days."),
    )
)


@pytest.fixture
def models(store: ModelStore) -> ModelStore:
    """A tiny `reply` model and a tiny `sentiment` classifier, both active."""
    publish_tiny_reply_model(store)
    publish_tiny_classifier(store, "sentiment")
    return store


async def post(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/v1/fine-tunes", json=body)


async def job_ids(client: httpx.AsyncClient) -> list[str]:
    return [j["id"] for j in (await client.get("/v1/fine-tunes")).json()["data"]]


def test_a_fine_tune_of_an_existing_model_trains_that_models_task(
    models: ModelStore, tmp_path: Path
) -> None:
    # job_worker off: a job that is accepted stays recorded and nothing trains.
    settings = job_settings(models, tmp_path / "var", job_worker=False)

    async def main() -> None:
        async with running(settings) as (client, _):
            labels = (await upload(client, sentiment_csv(5))).json()["id"]
            replies = (await upload(client, REPLY_CSV.encode(), "bitext.csv")).json()["id"]

            # Task omitted: the existing model's task, else classification.
            r = await post(client, model="reply", training_file=replies)
            assert r.status_code == 201, r.text
            assert r.json()["task"] == "reply"
            r = await post(client, model="sentiment", training_file=labels)
            assert (r.status_code, r.json()["task"]) == (201, "classification")
            r = await post(client, model="brand-new", training_file=labels)
            assert (r.status_code, r.json()["task"]) == (201, "classification")
            accepted = await job_ids(client)

            # A task that is not the existing model's: 409, naming the model and both tasks.
            for model, task, file_id in (
                ("reply", "classification", labels),
                ("sentiment", "reply", replies),
            ):
                r = await post(client, model=model, training_file=file_id, task=task)
                assert r.status_code == 409, r.text
                error = r.json()["error"]
                assert error["type"] == "task_mismatch"
                assert error["param"] == "task"
                other = "reply" if task == "classification" else "classification"
                for word in (repr(model), task, other):
                    assert word in error["message"]

            # The probe: a sentiment file for the reply model, task omitted. It would train
            # the reply model, and the file is no reply data set: refused, nothing recorded.
            r = await post(client, model="reply", training_file=labels)
            assert r.status_code == 422, r.text
            assert r.json()["error"]["param"] == "training_file"
            assert await job_ids(client) == accepted

    run(main)


def test_a_reply_fine_tune_needs_utterance_intent_and_response_columns(
    store: ModelStore, tmp_path: Path
) -> None:
    settings = job_settings(store, tmp_path / "var", job_worker=False)

    async def main() -> None:
        async with running(settings) as (client, _):
            tsv = b"text\tlabel\n" + b"".join(
                f"sentence {i}\t{('pos', 'neg')[i % 2]}\n".encode() for i in range(10)
            )
            fid = (await upload(client, tsv, "probe.tsv")).json()["id"]
            r = await post(client, model="probe1", training_file=fid, task="reply")
            assert r.status_code == 422, r.text
            error = r.json()["error"]
            assert (error["type"], error["param"]) == ("invalid_dataset", "training_file")
            assert fid in error["message"]
            # It has text (an utterance) and label (an intent) columns: only response lacks.
            assert "missing: response (" in error["message"]
            assert "utterance (" not in error["message"]

            # Without a header nothing names the columns.
            bare = (await upload(client, tsv.split(b"\n", 1)[1], "bare.tsv")).json()["id"]
            r = await post(client, model="probe1", training_file=bare, task="reply")
            assert r.status_code == 422
            assert "header" in r.json()["error"]["message"]

            # One intent is no reply model either; said up front, not after training starts.
            one = (REPLY_CSV.splitlines()[0] + "\n" + "".join(
                f"where is order {i},ORDER,track_order,On its way.\n" for i in range(6)
            )).encode()  # fmt: skip
            single = (await upload(client, one, "one.csv")).json()["id"]
            r = await post(client, model="probe1", training_file=single, task="reply")
            assert r.status_code == 422
            assert "intent" in r.json()["error"]["message"]
            assert await job_ids(client) == []

            good = (await upload(client, REPLY_CSV.encode(), "bitext.csv")).json()["id"]
            r = await post(client, model="probe1", training_file=good, task="reply")
            assert r.status_code == 201, r.text

    run(main)


def test_a_validation_file_for_another_task_is_refused_up_front(
    store: ModelStore, tmp_path: Path
) -> None:
    settings = job_settings(store, tmp_path / "var", job_worker=False)

    async def main() -> None:
        async with running(settings) as (client, _):
            labels = (await upload(client, sentiment_csv(5))).json()["id"]
            replies = (await upload(client, REPLY_CSV.encode(), "bitext.csv")).json()["id"]
            for task, train, valid in (
                ("classification", labels, replies),
                ("reply", replies, labels),
            ):
                r = await post(
                    client, model="x", task=task, training_file=train, validation_file=valid
                )
                assert r.status_code == 422, r.text
                error = r.json()["error"]
                assert (error["type"], error["param"]) == ("invalid_dataset", "validation_file")
                assert "labels the training file lacks" in error["message"]
            assert await job_ids(client) == []

    run(main)


def test_a_job_whose_model_changed_task_since_it_was_created_fails_before_it_runs(
    store: ModelStore, tmp_path: Path
) -> None:
    """The check is made again when the job's files are validated: another job (or replica)
    may have published the name as another task meanwhile."""
    data_dir = tmp_path / "var"
    job: dict[str, Any] = {}

    async def create() -> None:
        async with running(job_settings(store, data_dir, job_worker=False)) as (client, _):
            fid = (await upload(client, sentiment_csv(5))).json()["id"]
            r = await post(client, model="fresh", training_file=fid)
            assert r.status_code == 201, r.text
            job.update(r.json())

    async def dispatch() -> None:
        async with running(job_settings(store, data_dir)) as (client, _):
            done = await wait_for(client, job["id"], finished, timeout_s=10)
            assert done["status"] == "failed"
            assert done["error"]["code"] == "task_mismatch"
            assert "'fresh'" in done["error"]["message"]
            assert done["started_at"] is None

    run(create)
    publish_tiny_reply_model(store, "fresh")
    run(dispatch)

"""The official `openai` package's files and fine_tuning.jobs calls against a real server.

A real socket, the real client and a real fine-tune of the packaged encoder (a few rows,
one epoch), as a user porting OpenAI fine-tuning code would run it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.fine_tuning import FineTuningJob

from app.store.versions import ModelStore
from tests.support.finetune import NEGATIVE, POSITIVE, job_settings
from tests.support.inprocess_server import serve_in_thread
from tests.support.tiny_model import publish_tiny_classifier

# FAST_HP of tests/support/finetune.py: OpenAI's words in each call (n_epochs 1, batch_size
# 16, seed 3), the extension for the rest.
SHORT_TEXTS = {"textserve": {"hyperparameters": {"max_length": 32}}}


def training_jsonl(per_label: int = 20) -> bytes:
    """``{"text", "label"}`` rows, as an OpenAI user would write a classification data set."""
    rows = []
    for i in range(per_label):
        rows.append({"text": f"{POSITIVE[i % len(POSITIVE)]} number {i}", "label": "positive"})
        rows.append({"text": f"{NEGATIVE[i % len(NEGATIVE)]} number {i}", "label": "negative"})
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = ModelStore(tmp_path_factory.mktemp("openai-ft") / "models")
    publish_tiny_classifier(store, "sentiment", ("negative", "positive"))
    with serve_in_thread(job_settings(store, store.root.parent / "var")) as (url, _):
        yield url


@pytest.fixture(scope="module")
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key="not-checked", max_retries=0)


@pytest.fixture(scope="module")
def training_file(client: openai.OpenAI, tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("data") / "train.jsonl"
    path.write_bytes(training_jsonl())
    with path.open("rb") as fh:
        uploaded = client.files.create(file=fh, purpose="fine-tune")
    assert (uploaded.object, uploaded.purpose, uploaded.status) == (
        "file",
        "fine-tune",
        "processed",
    )
    assert (uploaded.filename, uploaded.bytes) == ("train.jsonl", len(training_jsonl()))
    assert uploaded.created_at > 0
    # The columns come from the JSON keys, with no hint given.
    extra = uploaded.model_extra or {}
    assert (extra["text_column"], extra["label_column"]) == ("text", "label")
    assert extra["label_counts"] == {"positive": 20, "negative": 20}
    assert client.files.retrieve(uploaded.id).id == uploaded.id
    return uploaded.id


def wait_until_finished(
    client: openai.OpenAI, job_id: str, timeout_s: float = 300
) -> FineTuningJob:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        if time.monotonic() > deadline:
            events = [e.message for e in client.fine_tuning.jobs.list_events(job_id)]
            raise AssertionError(f"job {job_id} stuck in {job.status}: {events}")
        time.sleep(0.3)


def test_a_fine_tune_runs_and_publishes_a_model_to_call(
    client: openai.OpenAI, server: str, training_file: str
) -> None:
    job = client.fine_tuning.jobs.create(
        training_file=training_file,
        model="sentiment",
        suffix="reviews",
        seed=3,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 16}},
        },
        extra_body=SHORT_TEXTS,
    )
    assert (job.object, job.model, job.status) == (
        "fine_tuning.job",
        "sentiment",
        "validating_files",
    )
    assert (job.training_file, job.validation_file, job.seed) == (training_file, None, 3)
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size) == (1, 16)
    assert job.hyperparameters.learning_rate_multiplier == 1.0
    assert job.method is not None and job.method.type == "supervised"
    assert job.fine_tuned_model is None and job.finished_at is None

    done = wait_until_finished(client, job.id)
    assert done.status == "succeeded", done.error
    assert done.error is None
    # The tiny model was version 1: the fine-tune is version 2, callable by this name.
    assert done.fine_tuned_model == "sentiment@2"
    assert done.finished_at is not None and done.finished_at >= done.created_at
    assert (done.model_extra or {})["textserve"]["hyperparameters"]["max_length"] == 32
    r = httpx.post(f"{server}/classify", json={"model": done.fine_tuned_model, "text": "loved it"})
    assert r.status_code == 200, r.text
    assert (r.json()["model"], r.json()["version"]) == ("sentiment", 2)

    listed = client.fine_tuning.jobs.list(limit=10)
    assert job.id in [j.id for j in listed.data]
    assert all(j.object == "fine_tuning.job" for j in listed.data)

    # Events, oldest first, one page at a time as the client pages through them.
    page = client.fine_tuning.jobs.list_events(job.id, limit=2)
    assert len(page.data) == 2 and page.has_more
    assert page.data[0].message == "job created; validating files"
    every = list(client.fine_tuning.jobs.list_events(job.id, limit=5))  # follows `after`
    assert len({e.id for e in every}) == len(every) > 5
    assert every[:2] == page.data
    assert {e.object for e in every} == {"fine_tuning.job.event"}
    assert {e.type for e in every} == {"message", "metrics"}
    assert every[-1].message.startswith("published sentiment@2")
    progress = [e.data for e in every if isinstance(e.data, dict) and e.type == "metrics"]
    steps = [d["step"] for d in progress if d["textserve_type"] == "progress"]
    assert steps and steps[-1] == 3
    rest = client.fine_tuning.jobs.list_events(job.id, after=every[-2].id)
    assert [e.id for e in rest.data] == [every[-1].id] and not rest.has_more

    # The published version is the job's one checkpoint.
    (checkpoint,) = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoint.fine_tuned_model_checkpoint == "sentiment@2"
    assert checkpoint.fine_tuning_job_id == job.id
    assert checkpoint.step_number == 3  # 40 rows less the held-out 10 %, 16 a step
    assert checkpoint.metrics.train_loss is not None


def test_a_job_is_cancelled_once(client: openai.OpenAI, training_file: str) -> None:
    job = client.fine_tuning.jobs.create(
        training_file=training_file,
        model="cancelled-model",
        hyperparameters={"n_epochs": 1, "batch_size": 16},
        extra_body=SHORT_TEXTS,
    )
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert (cancelled.id, cancelled.status) == (job.id, "cancelled")
    assert cancelled.fine_tuned_model is None and cancelled.finished_at is not None
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    with pytest.raises(openai.ConflictError) as again:
        client.fine_tuning.jobs.cancel(job.id)
    assert again.value.code == "conflict"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"method": {"type": "dpo"}}, "method.type"),
        ({"hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs"),
        ({"hyperparameters": {"n_epochs": "2"}}, "hyperparameters.n_epochs"),
        (
            {
                "method": {
                    "type": "supervised",
                    "supervised": {"hyperparameters": {"batch_size": 0}},
                }
            },
            "method.supervised.hyperparameters.batch_size",
        ),
        (
            {"hyperparameters": {"learning_rate_multiplier": 1e9}},
            "hyperparameters.learning_rate_multiplier",
        ),
        ({"seed": -1}, "seed"),
        ({"integrations": [{"type": "wandb", "wandb": {"project": "p"}}]}, "integrations"),
        ({"suffix": "x" * 65}, "suffix"),
    ],
)
def test_bad_requests_name_the_field(
    client: openai.OpenAI, training_file: str, fields: dict[str, object], param: str
) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        client.fine_tuning.jobs.create(
            training_file=training_file, model="sentiment", extra_body=fields
        )
    assert (refused.value.code, refused.value.param) == ("invalid_request", param)


def test_unknown_ids_are_404s(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.fine_tuning.jobs.retrieve("ftjob-nope")
    assert (missing.value.code, missing.value.param) == ("job_not_found", "job_id")
    with pytest.raises(openai.NotFoundError) as no_file:
        client.fine_tuning.jobs.create(training_file="file-nope", model="sentiment")
    assert (no_file.value.code, no_file.value.param) == ("file_not_found", "training_file")
    with pytest.raises(openai.NotFoundError) as cursor:
        client.fine_tuning.jobs.list(after="ftjob-nope")
    assert cursor.value.param == "after"
    with pytest.raises(openai.UnprocessableEntityError) as bad_cursor:
        client.fine_tuning.jobs.list_events("ftjob-nope", after="ftevent-" + "9" * 40)
    assert bad_cursor.value.param == "after"

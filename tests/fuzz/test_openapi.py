"""A bounded schemathesis run over every route of the OpenAPI spec, in process via ASGI.

The app runs open (no keys) so generated requests reach the handlers, with the job worker
off so that a generated fine-tune is stored but never trained. A file and a job exist
before the run, and their ids are the ones the id-bearing routes are called with, so those
routes are exercised past their 404. The checks and phases are those of
tests/support/fuzzing.py (every check but ``ignored_auth`` and ``positive_data_acceptance``;
examples, coverage, fuzzing and stateful); tests/e2e/test_schemathesis.py runs the same
against a real server process with free-form ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.core.result import Err

from app.jobs.records import FileRecord, JobRecord
from app.main import create_app
from app.store.versions import ModelStore
from app.training.finetune import Hyperparameters
from tests.integration.conftest import settings_for
from tests.support.finetune import sentiment_csv
from tests.support.fuzzing import config, failures
from tests.support.tiny_embedding import publish_tiny_embedding
from tests.support.tiny_model import publish_tiny_classifier

# Per operation and phase (and steps per stateful scenario): the bound on the run, which
# takes ~35 s of CPU here (about a minute on 2 cores shared with other work).
MAX_EXAMPLES = 6
STATEFUL_STEPS = 6


@pytest.fixture(scope="module")
def app_under_test(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[FastAPI, FileRecord, JobRecord]]:
    store = ModelStore(tmp_path_factory.mktemp("fuzz") / "models")
    publish_tiny_classifier(store, "sentiment")
    publish_tiny_classifier(store, "topic")
    publish_tiny_embedding(store)  # /v1/embeddings, /v1/rerank, /v1/recommend answer 200s too
    app = create_app(settings_for(store, job_worker=False, watch_interval_s=0))
    services = app.state.services
    # Without the lifespan: schemathesis calls the app once per example, not in one session.
    services.start()
    services.wait_loaded(60)
    file = services.jobs.files.add(
        sentiment_csv(5), filename="reviews.csv", purpose="fine-tune", text_column=None,
        label_column=None,
    )  # fmt: skip
    job = services.jobs.create(
        model="reviews",
        task=None,
        training_file=file.id,
        validation_file=None,
        base_model="packaged",
        hyperparameters=Hyperparameters(epochs=1),
        promote="never",
    )
    yield app, file, job
    services.stop()


def test_no_check_fails_in_any_phase(app_under_test: tuple[FastAPI, FileRecord, JobRecord]) -> None:
    app, file, job = app_under_test
    ids: dict[str, Any] = {"path.file_id": file.id, "path.job_id": job.id, "path.name": "sentiment"}
    run = config(MAX_EXAMPLES, STATEFUL_STEPS, ids)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=run)
    operations = list(schema.get_all_operations())
    broken = [r.err() for r in operations if isinstance(r, Err)]
    assert not broken, f"operations schemathesis cannot read: {broken}"
    assert len(operations) >= 15  # every route, not a silently empty spec
    found = failures(schema)
    assert not found, "\n\n".join(found)

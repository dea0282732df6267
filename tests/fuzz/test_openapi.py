"""A bounded schemathesis run over every route of the OpenAPI spec, in process via ASGI.

The app runs open (no keys) so generated requests reach the handlers, with the job worker
off so that a generated fine-tune is stored but never trained. Checks: no 5xx, and every
response matches its documented schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, Case
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from app.main import create_app
from app.store.versions import ModelStore
from tests.integration.conftest import settings_for
from tests.support.tiny_model import publish_tiny_classifier

EXAMPLES = 8
# What the service promises: no 5xx, and answers shaped as documented. Not the stricter
# "every schema-valid request is accepted": limits live in settings, not in the schema.
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
]


@pytest.fixture(scope="module")
def app_under_test(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    store = ModelStore(tmp_path_factory.mktemp("fuzz") / "models")
    publish_tiny_classifier(store, "sentiment")
    publish_tiny_classifier(store, "topic")
    app = create_app(settings_for(store, job_worker=False, watch_interval_s=0))
    services = app.state.services
    # Without the lifespan: schemathesis calls the app once per example, not in one session.
    services.start()
    services.wait_loaded(60)
    yield app
    services.stop()


def fuzz(operation: APIOperation[Any, Any, Any, Any]) -> None:
    """A few examples of one operation, each called and validated."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: Case[Any]) -> None:
        case.call_and_validate(checks=CHECKS)

    check()


def test_no_server_errors_and_responses_match_the_schema(app_under_test: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app_under_test)
    results = list(schema.get_all_operations())
    broken = [r.err() for r in results if isinstance(r, Err)]
    assert not broken, f"operations schemathesis cannot read: {broken}"
    operations = [r.ok() for r in results if not isinstance(r, Err)]
    assert len(operations) >= 15  # every route, not a silently empty spec
    failures = {}
    for operation in operations:
        try:
            fuzz(operation)
        # Gathered so that one run reports every route; a FailureGroup is a BaseExceptionGroup.
        except (Exception, FailureGroup) as exc:
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:2000]
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())

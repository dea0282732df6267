"""One schemathesis run, configured as the API promises it: used in process (tests/fuzz) and
against a real server (tests/e2e).

Every check but two: ``ignored_auth`` (the server under test runs open, as by default) and
``positive_data_acceptance`` (some limits live in settings, not in the schema: a
schema-valid text longer than ``max_text_chars`` is rightly refused). Every phase:
the schema's examples, coverage (boundary values, unexpected methods), fuzzing and stateful
(links between operations, e.g. an uploaded file's id read back). Bounded by examples per
operation and steps per stateful scenario, not by time: ``max-time`` makes schemathesis fuzz
until it is spent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, from_schema
from schemathesis.engine import events as ev
from schemathesis.schemas import BaseSchema

SKIPPED_CHECKS = ("ignored_auth", "positive_data_acceptance")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "use_after_free",
    "ensure_resource_availability",
    "missing_required_header",
    "object_level_authorization",
    "unsupported_method",
    "allow_header_conformance",
)


def config(
    max_examples: int, stateful_steps: int, parameters: dict[str, Any] | None = None
) -> SchemathesisConfig:
    """The run's configuration, as a ``schemathesis.toml`` would hold it."""
    checks: dict[str, Any] = {name: {"enabled": True} for name in CHECKS}
    checks.update({name: {"enabled": False} for name in SKIPPED_CHECKS})
    return SchemathesisConfig.from_dict(
        {
            "seed": 20261204,
            # Each run from scratch: nothing learnt by an earlier run (or written to the tree).
            "cache": {"enabled": False},
            "workers": 1,
            "suppress-health-check": ["all"],
            "checks": checks,
            "generation": {"max-examples": max_examples, "database": "none"},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True, "max-steps": stateful_steps},
            },
            "parameters": parameters or {},
        }
    )


def failures(
    schema: BaseSchema, on_event: Callable[[ev.EngineEvent], None] | None = None
) -> list[str]:
    """Run every phase over ``schema``; one line per failed check or engine error."""
    found: list[str] = []
    for event in from_schema(schema).execute():
        if on_event is not None:
            on_event(event)
        if isinstance(event, ev.ScenarioFinished | ev.FuzzScenarioFinished):
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.status == Status.FAILURE:
                        found.append(_describe(event, case_id, check))
        elif isinstance(event, ev.NonFatalError):
            found.append(f"{event.label}: error {event.value!r}")
        elif isinstance(event, ev.FatalError):
            found.append(f"fatal: {event.exception!r}")
        elif isinstance(event, ev.EngineFinished):
            found.extend(f"after run: {f.title}: {f.message}" for f in event.failures)
    return found


def _describe(
    event: ev.ScenarioFinished | ev.FuzzScenarioFinished, case_id: str, check: Any
) -> str:
    info = check.failure_info
    if info is None:
        return f"{event.recorder.label} [{check.name}]"
    failure = info.failure
    text = f"{event.recorder.label} [{check.name}] {failure.title}: {failure.message}"
    return f"{text}\n    {info.code_sample}"[:1500]

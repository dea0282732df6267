"""Schemathesis against a real ``textserve serve`` process, as a new user would run it.

The same checks and phases as the in-process fuzz test (tests/support/fuzzing.py), over a
real socket: uvicorn's HTTP handling (chunked streams, 405s, malformed bodies) included.
Ids are left to schemathesis: the stateful phase follows what the API's own answers link
(an uploaded file's id, a created job's id). The job worker is off so a generated fine-tune
is stored, never trained; the server is open (no keys), as by default.
"""

from __future__ import annotations

from pathlib import Path

import schemathesis

from app.store.versions import ModelStore
from tests.support.fuzzing import config, failures
from tests.support.server import textserve_process
from tests.support.tiny_model import publish_tiny_classifier

# Per operation and phase (and steps per stateful scenario): the bound on the run.
MAX_EXAMPLES = 5
STATEFUL_STEPS = 5


def test_schemathesis_finds_nothing_against_a_running_server(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    publish_tiny_classifier(store, "sentiment")
    publish_tiny_classifier(store, "topic")
    env = {"TEXTSERVE_DATA_DIR": str(tmp_path / "var"), "TEXTSERVE_JOB_WORKER": "false"}
    with textserve_process(store.root, tmp_path, env) as server:
        run = config(MAX_EXAMPLES, STATEFUL_STEPS)
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=run)
        found = failures(schema)
        assert server.process.poll() is None, "the server died under the run"
    assert not found, "\n\n".join(found)

"""The ``textserve`` script's bootstrap command, run as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TEXTSERVE = Path(sys.executable).with_name("textserve")


def _run(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TEXTSERVE_MODEL_STORE": str(store), "COLUMNS": "200"}
    return subprocess.run(
        [str(TEXTSERVE), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_importing_the_cli_and_training_entry_points_does_not_load_torch() -> None:
    code = (
        "import sys, app.cli, app.training.bootstrap, app.training.classification.pipeline\n"
        "print([m for m in ('torch', 'transformers', 'onnx') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_bootstrap_with_nothing_to_build(tmp_path: Path) -> None:
    recipe = tmp_path / "_recipes" / "summary"
    recipe.mkdir(parents=True)
    (recipe / "recipe.json").write_text(json.dumps({"name": "summary", "task": "summarization"}))

    done = _run("bootstrap", store=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "summary: skipped" in done.stderr
    assert "nothing to build" in done.stderr


def test_bootstrap_fails_cleanly_on_an_unknown_model(tmp_path: Path) -> None:
    (tmp_path / "recipes").mkdir()

    done = _run("bootstrap", "--recipes", str(tmp_path / "recipes"), "-m", "nope", store=tmp_path)

    assert done.returncode == 1
    assert "bootstrap failed" in done.stderr
    assert "Traceback" not in done.stderr

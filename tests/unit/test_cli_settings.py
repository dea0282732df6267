"""`textserve serve` with settings it cannot use: one line naming the variable, not a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from app.cli import cli


@pytest.fixture(autouse=True)
def never_serve(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the server must not start with these settings")

    monkeypatch.setattr(uvicorn, "run", refuse)
    monkeypatch.setenv("TEXTSERVE_MODEL_STORE", str(tmp_path / "models"))
    monkeypatch.setenv("TEXTSERVE_DATA_DIR", str(tmp_path / "var"))


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TEXTSERVE_LOG_LEVEL": "loud"}, "TEXTSERVE_LOG_LEVEL='loud'"),
        ({"TEXTSERVE_MAX_BATCH_SIZE": "0"}, "TEXTSERVE_MAX_BATCH_SIZE='0'"),
        ({"TEXTSERVE_RATE_LIMIT_REQUESTS": "notjson"}, "TEXTSERVE_RATE_LIMIT_REQUESTS: not valid"),
        (
            {"TEXTSERVE_DEFAULT_TIMEOUT_MS": "90000", "TEXTSERVE_MAX_TIMEOUT_MS": "60000"},
            "TEXTSERVE_DEFAULT_TIMEOUT_MS (90000) is above TEXTSERVE_MAX_TIMEOUT_MS (60000)",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("textserve: invalid setting: ")
    assert named in lines[0]


def test_a_data_folder_that_cannot_be_made_stops_the_start_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEXTSERVE_DATA_DIR", "/dev/null/var")
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 1, result.output
    assert "textserve: cannot start: " in result.output
    assert "/dev/null/var" in result.output
    assert "Traceback" not in result.output


def test_log_level_is_read_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.config import Settings

    monkeypatch.setenv("TEXTSERVE_LOG_LEVEL", "WARNING")
    assert Settings().log_level == "warning"

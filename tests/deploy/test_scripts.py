"""Shell scripts: parsed by bash and linted by shellcheck."""

from __future__ import annotations

import pytest

from tests.deploy.conftest import ROOT, run_tool, tool

SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))


def test_there_are_scripts() -> None:
    names = {p.name for p in SCRIPTS}
    assert {"gpu-check.sh", "install-deploy-tools.sh"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses_and_passes_shellcheck(script: object) -> None:
    proc = run_tool("bash", "-n", str(script))
    assert proc.returncode == 0, proc.stderr
    proc = run_tool(tool("shellcheck"), "--severity=style", str(script))
    assert proc.returncode == 0, proc.stdout

"""Shared helpers of the deployment checks: the real tools, rendered manifests, exported metrics.

A tool that is missing fails the test in CI (``CI`` set) and skips it elsewhere, with the
command that installs it: ``bash scripts/install-deploy-tools.sh``.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
K8S = ROOT / "k8s"
OVERLAYS = ("cpu", "gpu")
INSTALL_HINT = "run `bash scripts/install-deploy-tools.sh` (make check-deploy does)"


def tool(name: str) -> str:
    """Path of a tool: the venv's bin first (wheels), then PATH (Debian packages)."""
    venv_bin = Path(sys.executable).parent / name
    found = str(venv_bin) if venv_bin.is_file() else shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed: {INSTALL_HINT}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def need_module(name: str) -> ModuleType:
    """Import a checker package from scripts/deploy-tools.txt: fail in CI, skip elsewhere."""
    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"python package {name} is not installed: {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def run_tool(*args: str, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


@cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    """``kubectl kustomize k8s/overlays/<overlay>``, parsed."""
    proc = run_tool(tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay))
    assert proc.returncode == 0, proc.stderr
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d)


def find(docs: tuple[dict[str, Any], ...], kind: str, name: str | None = None) -> dict[str, Any]:
    hits = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return hits[0]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@cache
def exported_metric_names() -> frozenset[str]:
    """Every series name the service can export: the registry of a started app, each family
    expanded to its sample names (``_total``, ``_bucket``/``_sum``/``_count``, ``_info``), plus
    the GPU families, which register only where NVML sees a GPU."""
    from app.gpu import gpu_metric_families
    from app.store.versions import ModelStore
    from tests.integration.conftest import running, settings_for
    from tests.support.tiny_model import publish_tiny_classifier

    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("", "_sum", "_count"),
        "info": ("_info",),
    }
    names: set[str] = set()

    async def collect() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            store = ModelStore(Path(tmp) / "models")
            publish_tiny_classifier(store, "sentiment")
            settings = settings_for(store, data_dir=Path(tmp) / "data", warmup=False)
            async with running(settings) as (_, app):
                families = list(app.state.services.metrics.registry.collect())
        families += list(gpu_metric_families().values())
        for family in families:
            for suffix in suffixes.get(family.type, ("",)):
                names.add(family.name + suffix)

    asyncio.run(collect())
    return frozenset(names)


@cache
def recorded_names() -> frozenset[str]:
    """Series that the recording rules of docker/prometheus/alerts.yml create."""
    groups = load_yaml(DOCKER / "prometheus" / "alerts.yml")["groups"]
    return frozenset(r["record"] for g in groups for r in g["rules"] if "record" in r)

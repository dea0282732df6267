"""A real Prometheus scrapes a real ``textserve serve`` on loopback; PromQL over its HTTP API
returns the requests this test sent. The dashboard's queries and the alert rules run there too.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.store.versions import ModelStore
from tests.deploy.conftest import DOCKER, tool
from tests.deploy.promql import grafana_to_promql
from tests.support.tiny_model import publish_tiny_classifier

REQUESTS = 17
SCRAPE_S = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args!r} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} not ready in {timeout_s} s:\n{log.read_text()[-3000:]}")


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def textserve(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``textserve serve`` as its own process over a store with one tiny real model."""
    store = ModelStore(tmp_path / "models")
    publish_tiny_classifier(store, "sentiment")
    port = free_port()
    env = {
        **os.environ,
        "TEXTSERVE_MODEL_STORE": str(store.root),
        "TEXTSERVE_DATA_DIR": str(tmp_path / "data"),
        "TEXTSERVE_PROVIDERS": "CPUExecutionProvider",
        "TEXTSERVE_LOG_FORMAT": "json",
        "TEXTSERVE_INTRA_OP_THREADS": "1",
    }
    log = tmp_path / "textserve.log"
    exe = str(Path(sys.executable).with_name("textserve"))
    proc = start([exe, "serve", "--host", "127.0.0.1", "--port", str(port)], log, env)
    try:
        wait_for(f"http://127.0.0.1:{port}/readyz", proc, log, 60)
        yield f"127.0.0.1:{port}", log
    finally:
        stop(proc)


@pytest.fixture
def prometheus(tmp_path: Path, textserve: tuple[str, Path]) -> Iterator[str]:
    """Debian's Prometheus server, scraping textserve every second, with our alert rules."""
    binary = tool("prometheus")
    target, _ = textserve
    rules = tmp_path / "alerts.yml"
    rules.write_text((DOCKER / "prometheus" / "alerts.yml").read_text())
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": f"{SCRAPE_S}s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "scrape_configs": [
                    {"job_name": "textserve", "static_configs": [{"targets": [target]}]}
                ],
            }
        )
    )
    port = free_port()
    log = tmp_path / "prometheus.log"
    proc = start(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        log,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/-/ready", proc, log, 30)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def query(prom: str, promql: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{prom}/api/v1/query", params={"query": promql}, timeout=5)
    body = r.json()
    assert body["status"] == "success", (promql, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_prometheus_counts_the_requests_we_sent(
    textserve: tuple[str, Path], prometheus: str
) -> None:
    target, server_log = textserve
    with httpx.Client(base_url=f"http://{target}", timeout=10) as client:
        for i in range(REQUESTS):
            r = client.post(
                "/classify",
                json={"task": "sentiment", "text": "great" if i % 3 else "awful"},
                headers={"X-Request-ID": f"e2e-{i}"},
            )
            assert r.status_code == 200, r.text

    promql = 'sum(textserve_http_requests_total{job="textserve",route="/classify",status="200"})'
    deadline = time.monotonic() + 20
    got: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        got = query(prometheus, promql)
        if got and float(got[0]["value"][1]) == REQUESTS:
            break
        time.sleep(0.5)
    assert got, f"no {promql} in Prometheus"
    assert float(got[0]["value"][1]) == REQUESTS

    up = query(prometheus, 'up{job="textserve"}')
    assert [float(s["value"][1]) for s in up] == [1.0]
    labels = query(prometheus, 'sum by (label) (textserve_predictions_total{model="sentiment"})')
    assert {s["metric"]["label"]: float(s["value"][1]) for s in labels} == {
        "negative": 6.0, "positive": 11.0
    }  # fmt: skip

    # The dashboard's queries run on the real server; the core panels have data once a rate
    # has two samples of the new series to work with.
    samples = 'count_over_time(textserve_http_requests_total{route="/classify"}[1m])'
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (
        (got := query(prometheus, samples)) and float(got[0]["value"][1]) >= 3
    ):
        time.sleep(0.5)
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "textserve.json").read_text())
    with_data = set()
    for panel in dashboard["panels"]:
        for target_ in panel.get("targets", []):
            expr = grafana_to_promql(target_["expr"]).replace("[1m]", "[30s]")
            if query(prometheus, expr):
                with_data.add(panel["title"])
    assert {
        "Requests / s", "Request rate by route and status", "HTTP latency p50 / p95 / p99 by route",
        "Model latency p50 / p95 / p99 by model version",
        "Queue wait vs tokenization vs inference (p95)", "Batch size (texts per model run)",
        "Active version and execution provider", "Predictions by label", "Ready replicas",
    } <= with_data  # fmt: skip

    # Prometheus loaded our rules, and evaluates them without errors.
    groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert {g["name"] for g in groups} == {
        "textserve.recording", "textserve.alerts", "textserve.opinion"
    }  # fmt: skip
    time.sleep(1.5)  # one evaluation round
    groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert all(r["health"] != "err" for g in groups for r in g["rules"]), groups

    # The server wrote one JSON access-log line per request, with the id we sent.
    access = [
        json.loads(line)
        for line in server_log.read_text().splitlines()
        if line.startswith("{") and '"logger":"textserve.access"' in line
    ]
    classify = {a["request_id"]: a for a in access if a["route"] == "/classify"}
    assert set(classify) == {f"e2e-{i}" for i in range(REQUESTS)}
    line = classify["e2e-0"]
    assert (line["status"], line["model"], line["version"]) == (200, "sentiment", 1)
    assert line["inference_ms"] >= 0

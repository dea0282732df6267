"""Alerts delivered for real: textserve -> Prometheus -> Alertmanager -> a webhook.

A real ``textserve serve`` with tiny topic and sentiment models, Debian's Prometheus (scraping
and evaluating every second, the opinion rules of docker/prometheus/alerts.yml with their
windows shortened: 15 s against a 60 s baseline, ``for: 2s``) and Debian's Alertmanager
(grouping by stream and topic, no waits) run on loopback. Two streams get calm traffic; then
``textserve replay`` sends a surge of billing complaints into one of them. The webhook must
receive TextserveTopicNegativeSurge for that stream and topic, and nothing for the other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.store.versions import ModelStore
from tests.deploy.conftest import DOCKER, tool
from tests.deploy.test_prometheus_e2e import free_port, start, stop, wait_for
from tests.support.server import textserve_process

WINDOW, BASELINE = "15s", "60s"
CALM = ["the parcel arrived great", "how do i change my password", "great the invoice is good"]
COMPLAINT = "awful invoice charge terrible"
TEXTSERVE = Path(sys.executable).with_name("textserve")


def short_rules() -> dict[str, Any]:
    """The opinion group of alerts.yml with test-sized windows; the rule itself unchanged."""
    groups = yaml.safe_load((DOCKER / "prometheus" / "alerts.yml").read_text())["groups"]
    (group,) = [g for g in groups if g["name"] == "textserve.opinion"]
    for rule in group["rules"]:
        expr = rule["expr"].replace("[6h]", f"[{BASELINE}]").replace("[5m]", f"[{WINDOW}]")
        rule["expr"] = expr.replace("offset 5m", f"offset {WINDOW}")
        if "for" in rule:
            rule["for"] = "2s"
    group["interval"] = "1s"
    return {"groups": [group]}


class Webhook:
    """Alertmanager's webhook receiver: keeps every alert it is sent."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        received = self.alerts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                received.extend(json.loads(body)["alerts"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def firing(self, name: str) -> list[dict[str, str]]:
        return [
            a["labels"]
            for a in list(self.alerts)
            if a["labels"].get("alertname") == name and a["status"] == "firing"
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()


@pytest.fixture
def alertmanager(tmp_path: Path, webhook: Webhook) -> Iterator[str]:
    binary = tool("prometheus-alertmanager")
    config = tmp_path / "alertmanager.yml"
    route = yaml.safe_load((DOCKER / "alertmanager" / "alertmanager.yml").read_text())["route"]
    config.write_text(
        yaml.safe_dump(
            {
                "route": {
                    "receiver": "test",
                    "group_by": route["group_by"],  # the compose stack's grouping
                    "group_wait": "0s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [{"name": "test", "webhook_configs": [{"url": webhook.url}]}],
            }
        )
    )
    port = free_port()
    log = tmp_path / "alertmanager.log"
    proc = start(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # one instance: no gossip port
            "--log.level=warn",
        ],
        log,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/-/ready", proc, log, 30)
        yield f"127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture
def server(tiny_store: ModelStore, tmp_path: Path) -> Iterator[str]:
    env = {
        "TEXTSERVE_DATA_DIR": str(tmp_path / "data"),
        "TEXTSERVE_PROVIDERS": "CPUExecutionProvider",
        "TEXTSERVE_INTRA_OP_THREADS": "1",
        "TEXTSERVE_LOG_LEVEL": "warning",
    }
    with textserve_process(tiny_store.root, tmp_path, env) as proc:
        yield proc.url


@pytest.fixture
def prometheus(tmp_path: Path, server: str, alertmanager: str) -> Iterator[str]:
    binary = tool("prometheus")
    rules = tmp_path / "opinion_rules.yml"
    rules.write_text(yaml.safe_dump(short_rules()))
    config = tmp_path / "prometheus.yml"
    target = server.removeprefix("http://")
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
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


def calm_traffic(url: str, stream: str, stop_event: threading.Event) -> None:
    """Three calm texts every half second, none negative, until told to stop."""
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop_event.wait(0.5):
            body = {"tasks": ["topic", "sentiment"], "texts": CALM, "stream": stream}
            r = client.post("/classify", json=body)
            assert r.status_code == 200, r.text


def surge_file(path: Path, seconds: int) -> Path:
    """JSON lines, four a second with timestamps: a billing complaint, then a calm text."""
    start = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    with path.open("w") as out:
        for i in range(seconds * 4):
            text = COMPLAINT if i % 2 == 0 else CALM[0]
            at = (start + timedelta(milliseconds=250 * i)).isoformat()
            out.write(json.dumps({"text": text, "timestamp": at}) + "\n")
    return path


@pytest.mark.timeout(240)
def test_a_surge_in_one_stream_reaches_the_webhook_and_the_other_stays_silent(
    server: str, prometheus: str, webhook: Webhook, tmp_path: Path
) -> None:
    stop_calm = threading.Event()
    threads = [
        threading.Thread(target=calm_traffic, args=(server, stream, stop_calm), daemon=True)
        for stream in ("news", "social")
    ]
    for thread in threads:
        thread.start()
    replay = None
    try:
        time.sleep(20)  # the calm phase: every topic's baseline is 0 % negative
        assert webhook.firing("TextserveTopicNegativeSurge") == []
        env = {**os.environ, "TEXTSERVE_URL": server}
        surge = surge_file(tmp_path / "surge.jsonl", 60)
        replay_log = tmp_path / "replay.log"
        with replay_log.open("wb") as out:
            replay = subprocess.Popen(
                [str(TEXTSERVE), "replay", str(surge), "--stream", "news", "--speed", "1"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not webhook.firing("TextserveTopicNegativeSurge"):
            assert replay.poll() is None, replay_log.read_text()
            time.sleep(0.5)
        time.sleep(3)  # a moment for any other alert to arrive too
        fired = webhook.firing("TextserveTopicNegativeSurge")
        assert fired, "no TextserveTopicNegativeSurge reached the webhook within 60 s"
        assert {(a["stream"], a["topic"]) for a in fired} == {("news", "billing")}

        # The replica's own view agrees, with the same rule over the same short windows.
        r = httpx.get(
            f"{server}/v1/monitor",
            params={"stream": "news", "window": WINDOW, "baseline": BASELINE},
            timeout=5,
        )
        topics = {t["topic"]: t for t in r.json()["topics"]}
        assert topics["billing"]["alerting"] is True
        assert not any(t["alerting"] for name, t in topics.items() if name != "billing")
        r = httpx.get(f"{server}/v1/monitor", params={"stream": "social"}, timeout=5)
        assert not any(t["alerting"] for t in r.json()["topics"])
        # Prometheus has the counts by stream, topic and sentiment.
        r = httpx.get(
            f"{prometheus}/api/v1/query",
            params={"query": "sum by (stream) (textserve_opinion_total)"},
            timeout=5,
        )
        assert {s["metric"]["stream"] for s in r.json()["data"]["result"]} == {"news", "social"}
    finally:
        stop_calm.set()
        for thread in threads:
            thread.join(10)
        if replay is not None:
            replay.terminate()
            replay.wait(10)

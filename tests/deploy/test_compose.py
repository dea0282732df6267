"""docker/compose.yaml: parsed by a validating Compose parser, and wired to what it names."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DOCKER, ROOT, load_yaml, need_module

COMPOSE = DOCKER / "compose.yaml"
_VAR = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def compose() -> dict[str, Any]:
    """The file as `docker compose config` sees it: variables at their defaults, anchors merged."""
    data: dict[str, Any] = yaml.safe_load(_VAR.sub(lambda m: m.group(2) or "", COMPOSE.read_text()))
    return data


def test_compose_spec_accepts_the_file() -> None:
    compose_spec = need_module("compose_spec")
    parsed = compose_spec.PyCompose.from_json(json.dumps(compose()))
    assert set(parsed.service_names()) == {
        "textserve", "textserve-cpu", "bootstrap", "lb", "redis", "postgres",
        "prometheus", "alertmanager", "grafana",
    }  # fmt: skip


def test_gpu_service_reserves_a_gpu_and_cpu_profile_needs_none() -> None:
    services = compose()["services"]
    gpu, cpu = services["textserve"], services["textserve-cpu"]
    assert gpu["profiles"] == ["gpu"]
    assert cpu["profiles"] == ["cpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "resources" not in cpu["deploy"]  # replicas only: no GPU reservation
    assert gpu["environment"]["TEXTSERVE_PROVIDERS"].startswith("CUDAExecutionProvider")
    assert cpu["environment"]["TEXTSERVE_PROVIDERS"] == "CPUExecutionProvider"
    # Prometheus scrapes `textserve:8000` whichever of the two runs.
    assert cpu["networks"]["default"]["aliases"] == ["textserve"]
    assert (DOCKER / ".env").read_text().count("COMPOSE_PROFILES=gpu") == 1


def test_services_are_wired_to_files_targets_and_each_other() -> None:
    data = compose()
    services = data["services"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    for name, svc in services.items():
        for dep in svc.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown {dep}"
        if "build" in svc:
            target = svc["build"]["target"]
            assert re.search(rf"^FROM \S+ AS {target}$", dockerfile, re.M), target
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name}: {source} missing"
            else:
                assert source in data["volumes"], f"{name}: volume {source} not declared"
    for name in ("textserve", "textserve-cpu"):
        svc = services[name]
        assert svc["read_only"] is True
        assert svc["tmpfs"] == ["/tmp"]
        grace = int(svc["stop_grace_period"].rstrip("s"))
        assert grace > float(svc["environment"]["TEXTSERVE_DRAIN_TIMEOUT_S"]) + 5
        assert "models:/models" in svc["volumes"]
        assert svc["depends_on"]["bootstrap"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("service", ["prometheus", "alertmanager", "grafana"])
def test_monitoring_ports_stay_on_loopback(service: str) -> None:
    ports = compose()["services"][service]["ports"]
    assert all(p.startswith("127.0.0.1:") for p in ports)


def test_two_replicas_share_redis_and_postgres_behind_the_load_balancer() -> None:
    data = compose()
    services = data["services"]
    for name in ("textserve", "textserve-cpu"):
        svc = services[name]
        assert svc["deploy"]["replicas"] == 2
        assert "ports" not in svc  # reached only through `lb`
        env = svc["environment"]
        assert env["TEXTSERVE_REDIS_URL"] == "redis://redis:6379/0"
        assert env["TEXTSERVE_JOBS_DB_URL"].startswith("postgresql+psycopg://textserve:")
        assert env["TEXTSERVE_JOBS_DB_URL"].endswith("@postgres:5432/textserve")
        for dep in ("redis", "postgres"):
            assert svc["depends_on"][dep]["condition"] == "service_healthy"
            assert "healthcheck" in services[dep]
        assert "ports" not in services["redis"] and "ports" not in services["postgres"]
    assert services["textserve-cpu"]["networks"]["default"]["aliases"] == ["textserve"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert "postgres" in data["volumes"]
    lb = services["lb"]
    assert lb["image"].startswith("nginx:")
    assert lb["ports"] == ["8000:8080"]  # as compose() renders it: TEXTSERVE_PORT unset
    conf = (DOCKER / "nginx" / "nginx.conf").read_text()
    assert "listen 8080;" in conf
    assert "http://textserve:8000" in conf
    assert "proxy_buffering off;" in conf  # server-sent events pass through unbuffered


def test_prometheus_scrapes_the_service_and_grafana_reads_prometheus() -> None:
    prom = load_yaml(DOCKER / "prometheus" / "prometheus.yml")
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "textserve")
    assert job["metrics_path"] == "/metrics"
    # Every replica is its own target (Docker's DNS lists one address per replica).
    (sd,) = job["dns_sd_configs"]
    assert (sd["names"], sd["type"], sd["port"]) == (["textserve"], "A", 8000)
    ds = load_yaml(DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yaml")
    (source,) = ds["datasources"]
    assert (source["type"], source["uid"], source["url"]) == (
        "prometheus", "prometheus", "http://prometheus:9090"
    )  # fmt: skip
    provider = load_yaml(DOCKER / "grafana" / "provisioning" / "dashboards" / "textserve.yaml")
    path = provider["providers"][0]["options"]["path"]
    grafana = compose()["services"]["grafana"]
    assert f"./grafana/dashboards:{path}:ro" in grafana["volumes"]


def test_prometheus_sends_alerts_to_alertmanager_grouped_by_stream_and_topic() -> None:
    prom = load_yaml(DOCKER / "prometheus" / "prometheus.yml")
    (target,) = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert target == "alertmanager:9093"
    alertmanager = compose()["services"]["alertmanager"]
    assert (
        "./alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro"
        in (alertmanager["volumes"])
    )
    assert "alertmanager" in compose()["services"]["prometheus"]["depends_on"]
    route = load_yaml(DOCKER / "alertmanager" / "alertmanager.yml")["route"]
    assert {"stream", "topic"} <= set(route["group_by"])

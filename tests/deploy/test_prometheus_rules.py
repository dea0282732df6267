"""Prometheus config and rules: promtool checks and unit tests, and only real metric names."""

from __future__ import annotations

from tests.deploy.conftest import (
    DOCKER,
    K8S,
    exported_metric_names,
    load_yaml,
    recorded_names,
    run_tool,
    tool,
)
from tests.deploy.promql import metric_names

PROM = DOCKER / "prometheus"


def test_promtool_checks_config_and_rules() -> None:
    promtool = tool("promtool")
    proc = run_tool(promtool, "check", "config", str(PROM / "prometheus.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_tool(promtool, "check", "rules", str(PROM / "alerts.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_amtool_checks_the_alertmanager_config() -> None:
    config = DOCKER / "alertmanager" / "alertmanager.yml"
    proc = run_tool(tool("amtool"), "check-config", str(config))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    proc = run_tool(tool("promtool"), "test", "rules", "alerts_test.yml", cwd=PROM)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_alerts_the_issue_asks_for_exist() -> None:
    groups = load_yaml(PROM / "alerts.yml")["groups"]
    alerts = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
    assert {
        "TextserveHighP99Latency",
        "TextserveHighRejectionRate",
        "TextserveNotReady",
        "TextserveFineTuneJobsFailing",
        "TextserveNegativeSentimentSurge",
        "TextserveTopicNegativeSurge",
    } <= set(alerts)
    # One alert per stream and topic: the series it compares carry both labels, and only them.
    surge = alerts["TextserveTopicNegativeSurge"]
    assert "textserve:opinion_negative_share:rate5m" in surge["expr"]
    groups_by_name = {g["name"]: g for g in groups}
    for rule in groups_by_name["textserve.opinion"]["rules"]:
        if "record" in rule:
            assert "sum by (stream, topic)" in rule["expr"], rule["record"]
    assert "textserve_ready" in alerts["TextserveNotReady"]["expr"]
    for rule in alerts.values():
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"]


def test_rules_name_only_metrics_the_service_exports() -> None:
    known = exported_metric_names() | recorded_names() | {"up"}
    for group in load_yaml(PROM / "alerts.yml")["groups"]:
        for rule in group["rules"]:
            unknown = metric_names(rule["expr"]) - known
            assert not unknown, f"{rule.get('alert') or rule.get('record')}: {unknown}"


def test_kubernetes_prometheusrule_carries_the_same_rules() -> None:
    compose_groups = load_yaml(PROM / "alerts.yml")["groups"]
    k8s_rule = load_yaml(K8S / "base" / "prometheusrule.yaml")
    assert k8s_rule["spec"]["groups"] == compose_groups

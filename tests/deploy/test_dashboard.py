"""The Grafana dashboard: well formed, the panels the issue lists, and every query valid PromQL
(promtool) over metrics the service really exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DOCKER, exported_metric_names, recorded_names, run_tool, tool
from tests.deploy.promql import grafana_to_promql, metric_names

DASHBOARD = DOCKER / "grafana" / "dashboards" / "textserve.json"
PANEL_TYPES = {"row", "timeseries", "stat", "table", "gauge", "bargauge", "piechart"}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def targets() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{p['title']} [{t['refId']}]", t) for p in panels() for t in p["targets"]]


def test_dashboard_is_well_formed() -> None:
    d = dashboard()
    assert d["uid"] == "textserve"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: set[tuple[int, int]] = set()
    for p in d["panels"]:
        assert p["type"] in PANEL_TYPES, p["title"]
        g = p["gridPos"]
        assert g["x"] >= 0, p["title"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
    for p in panels():
        assert p["targets"], p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), p["title"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    # The provisioned data source is the default pick of the variable.
    provisioned = yaml.safe_load(
        (DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    assert variables["datasource"]["current"]["value"] == provisioned["datasources"][0]["uid"]


def test_dashboard_has_the_panels_the_issue_lists() -> None:
    exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in panels()}
    everything = " ".join(exprs.values())
    for needle in (
        "textserve_http_requests_total",  # request rate
        "histogram_quantile(0.5,",  # p50 / p95 / p99 latency
        "histogram_quantile(0.95,",
        "histogram_quantile(0.99,",
        "textserve_queue_wait_seconds_bucket",  # queue wait vs inference time
        "textserve_inference_seconds_bucket",
        "textserve_batch_size_texts",  # batch size
        "textserve_queue_depth_texts",  # queue depth and rejections
        "textserve_rejections_total",
        "textserve_model_info",  # execution provider
        "textserve_gpu_utilization_ratio",  # GPU utilisation and memory
        "textserve_gpu_memory_used_bytes",
        "textserve_finetune_jobs",  # fine-tune jobs by state and training loss
        "textserve_training_loss",
        "textserve_predictions_total",  # what the models say
        "textserve_opinion_total",  # opinion per stream and topic, against its baseline
        "textserve:opinion_negative_share:rate5m",
        "textserve:opinion_negative_share:baseline6h",
    ):
        assert needle in everything, needle
    latency = exprs["Model latency p50 / p95 / p99 by model version"]
    assert "by (le, model, version)" in latency
    assert "by (model, label)" in exprs["Predictions by label"]
    assert "by (stream, topic, sentiment)" in exprs["Opinion volume by topic and sentiment"]


@pytest.mark.parametrize(("where", "target"), targets(), ids=[w for w, _ in targets()])
def test_every_query_names_exported_metrics(where: str, target: dict[str, Any]) -> None:
    names = metric_names(grafana_to_promql(target["expr"]))
    assert names, f"{where}: no metric in {target['expr']}"
    unknown = names - exported_metric_names() - recorded_names()
    assert not unknown, f"{where}: {sorted(unknown)} are not exported by textserve"


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query, as a recording rule of a throwaway rules file."""
    rules = [
        {"record": f"dashboard:panel_{i}", "expr": grafana_to_promql(t["expr"])}
        for i, (_, t) in enumerate(targets())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = run_tool(tool("promtool"), "check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr

"""Kubernetes: each overlay rendered by kustomize, every object validated against the Kubernetes
schemas (custom resources against ours), and the pieces checked to fit together."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import Settings
from tests.deploy.conftest import (
    K8S,
    OVERLAYS,
    ROOT,
    exported_metric_names,
    find,
    load_yaml,
    need_module,
    render,
    run_tool,
    tool,
)
from tests.deploy.promql import metric_names

# The oldest Kubernetes we claim and the newest the schemas know.
K8S_VERSIONS = ("1.30.0", "1.37.0")
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule", "RayCluster"}
ADAPTER_VALUES = K8S / "addons" / "prometheus-adapter" / "values.yaml"
# Settings that another part of the service is adding; listed here until app/config.py has them.
PENDING_SETTINGS: set[str] = set()


@cache
def crd_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = load_yaml(Path(__file__).with_name("crd_schemas.yaml"))
    return schemas


def crd_validate(kind: str, doc: Any) -> None:
    jsonschema = need_module("jsonschema")
    all_schemas = crd_schemas()
    jsonschema.validate(doc, {"$defs": all_schemas["$defs"], **all_schemas[kind]})


def k8s_validate(doc: dict[str, Any]) -> None:
    kv = need_module("kubernetes_validate")
    for version in K8S_VERSIONS:
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(
                f"{doc['kind']}/{doc['metadata']['name']} @ {version}: {where}: {exc.message}"
            )


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(c)


def config(docs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    data: dict[str, str] = find(docs, "ConfigMap")["data"]
    return data


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates(overlay: str) -> None:
    docs = render(overlay)
    kinds = {d["kind"] for d in docs}
    assert {
        "Namespace", "ServiceAccount", "ConfigMap", "Service", "PersistentVolumeClaim",
        "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor",
        "PrometheusRule",
    } <= kinds  # fmt: skip
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            crd_validate(doc["kind"], doc)
        else:
            k8s_validate(doc)
        if doc["kind"] == "RayCluster":
            # The pod templates inside are plain Kubernetes: validate them as such.
            spec = doc["spec"]
            templates = [spec["headGroupSpec"]["template"]] + [
                g["template"] for g in spec["workerGroupSpecs"]
            ]
            for i, template in enumerate(templates):
                k8s_validate(
                    {
                        "apiVersion": "v1",
                        "kind": "PodTemplate",
                        "metadata": {"name": f"raycluster-template-{i}"},
                        "template": template,
                    }
                )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployment_probes_drain_and_security(overlay: str, tmp_path: Path) -> None:
    docs = render(overlay)
    deployment = find(docs, "Deployment", "textserve")
    pod = deployment["spec"]["template"]["spec"]
    c = container(deployment)
    port = {p["name"]: p["containerPort"] for p in c["ports"]}["http"]
    assert str(port) == config(docs)["TEXTSERVE_PORT"]
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    # The probes hit routes the app has.
    from app.main import create_app

    app = create_app(Settings(model_store=tmp_path / "models", data_dir=tmp_path / "data"))
    assert {"/healthz", "/readyz", "/metrics"} <= set(app.openapi()["paths"])
    # preStop sleep, then SIGTERM and the drain: all inside the grace period.
    sleep = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
    drain = float(config(docs)["TEXTSERVE_DRAIN_TIMEOUT_S"])
    assert pod["terminationGracePeriodSeconds"] >= sleep + drain + 5
    # Non-root, read-only root filesystem with a writable /tmp.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert mounts[config(docs)["TEXTSERVE_MODEL_STORE"]] == "models"
    assert mounts[config(docs)["TEXTSERVE_DATA_DIR"]] == "data"
    claims = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PersistentVolumeClaim"}
    store = claims[volumes["models"]["persistentVolumeClaim"]["claimName"]]
    assert store["spec"]["accessModes"] == ["ReadWriteMany"]
    # API keys come from a Secret that is referenced, never shipped.
    assert not any(d["kind"] == "Secret" for d in docs)
    keys_file = {e["name"]: e.get("value") for e in c["env"]}["TEXTSERVE_API_KEYS_FILE"]
    secret_mount = next(m for m in c["volumeMounts"] if keys_file.startswith(m["mountPath"]))
    assert volumes[secret_mount["name"]]["secret"]["secretName"] == "textserve-api-keys"
    assert c["resources"]["requests"]
    assert c["resources"]["limits"]
    # envFrom names the generated (hash-suffixed) ConfigMap.
    assert c["envFrom"] == [{"configMapRef": {"name": find(docs, "ConfigMap")["metadata"]["name"]}}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_are_real_textserve_settings(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(overlay)
    known = {f"TEXTSERVE_{name.upper()}" for name in Settings.model_fields} | PENDING_SETTINGS
    env = {e["name"] for e in container(find(docs, "Deployment")).get("env", [])}
    unknown = (set(config(docs)) | env) - known
    assert not unknown, f"not Settings fields: {unknown}"
    # And they parse, read from the environment as the pod's process reads them.
    for key, value in config(docs).items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.providers == tuple(config(docs)["TEXTSERVE_PROVIDERS"].split(","))


def test_gpu_overlay_gets_a_gpu_cuda_first_and_a_ray_cluster() -> None:
    docs = render("gpu")
    c = container(find(docs, "Deployment"))
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert c["image"] == "textserve:gpu"
    cfg = config(docs)
    assert cfg["TEXTSERVE_PROVIDERS"].split(",")[0] == "CUDAExecutionProvider"
    ray = find(docs, "RayCluster")
    assert cfg["TEXTSERVE_RAY_ADDRESS"] == f"ray://{ray['metadata']['name']}-head-svc:10001"
    ports = {p["name"]: p["containerPort"] for p in ray_containers(ray)[0]["ports"]}
    assert ports["client"] == 10001
    (workers,) = ray["spec"]["workerGroupSpecs"]
    (worker,) = workers["template"]["spec"]["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert ray["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    for rc in ray_containers(ray):
        assert rc["image"] == "textserve:train"
        assert {"name": "models", "mountPath": "/models"} in rc["volumeMounts"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"ARG RAY_VERSION={ray['spec']['rayVersion']}" in dockerfile


def ray_containers(ray: dict[str, Any]) -> list[dict[str, Any]]:
    spec = ray["spec"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def test_cpu_overlay_needs_no_gpu() -> None:
    docs = render("cpu")
    assert "nvidia.com/gpu" not in yaml.safe_dump(list(docs))
    assert not any(d["kind"] == "RayCluster" for d in docs)
    assert config(docs)["TEXTSERVE_PROVIDERS"] == "CPUExecutionProvider"
    assert container(find(docs, "Deployment"))["image"] == "textserve:cpu"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_and_ports_line_up(overlay: str) -> None:
    docs = render(overlay)
    deployment = find(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = find(docs, "Service", "textserve")

    def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    assert selects(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    assert selects(service["spec"]["selector"], pod_labels)
    assert selects(find(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], pod_labels)
    monitor = find(docs, "ServiceMonitor")
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= service_ports
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    hpa = find(docs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert "replicas" not in deployment["spec"]  # the HPA owns it


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_replicas_share_redis_and_postgres_never_sqlite_on_the_shared_volume(overlay: str) -> None:
    docs = render(overlay)
    hpa = find(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] > 1
    c = container(find(docs, "Deployment", "textserve"))
    env = {e["name"]: e for e in c["env"]}
    # The jobs database: PostgreSQL's URL from a referenced Secret, so never the SQLite
    # default in the shared data volume.
    ref = env["TEXTSERVE_JOBS_DB_URL"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == ("textserve-postgres", "url")
    assert "TEXTSERVE_JOBS_DB_URL" not in config(docs)
    postgres = find(docs, "StatefulSet", "textserve-postgres")
    pg = postgres["spec"]["template"]["spec"]["containers"][0]
    password = {e["name"]: e for e in pg["env"]}["POSTGRES_PASSWORD"]["valueFrom"]
    assert password["secretKeyRef"]["name"] == "textserve-postgres"
    (claim,) = postgres["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    # Redis: the ConfigMap's URL names the Service in front of the StatefulSet.
    redis = find(docs, "StatefulSet", "textserve-redis")
    redis_service = find(docs, "Service", "textserve-redis")
    assert config(docs)["TEXTSERVE_REDIS_URL"] == "redis://textserve-redis:6379/0"
    for stateful, service in (
        (redis, redis_service),
        (postgres, find(docs, "Service", "textserve-postgres")),
    ):
        labels = stateful["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
        assert stateful["spec"]["serviceName"] == service["metadata"]["name"]
        # Neither is picked up by textserve's Service, PDB or ServiceMonitor.
        assert labels["app.kubernetes.io/name"] != "textserve"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_hpa_custom_metric_is_served_by_the_prometheus_adapter(overlay: str) -> None:
    hpa = find(render(overlay), "HorizontalPodAutoscaler")
    kinds = {m["type"] for m in hpa["spec"]["metrics"]}
    assert {"Resource", "Pods"} <= kinds
    values = load_yaml(ADAPTER_VALUES)
    crd_validate("PrometheusAdapterValues", values)
    served = {r["name"].get("as") for r in values["rules"]["custom"]}
    for metric in hpa["spec"]["metrics"]:
        if metric["type"] == "Pods":
            assert metric["pods"]["metric"]["name"] in served


def test_adapter_rules_query_exported_metrics_in_valid_promql(tmp_path: Path) -> None:
    rules = load_yaml(ADAPTER_VALUES)["rules"]["custom"]
    exprs = []
    for rule in rules:
        series = metric_names(rule["seriesQuery"])
        assert series, rule["seriesQuery"]
        assert series <= exported_metric_names(), series
        assert re.fullmatch(rule["name"]["matches"], next(iter(series)))
        # The adapter's template, filled in the way it fills it for one pod.
        exprs.append(
            rule["metricsQuery"]
            .replace("<<.Series>>", next(iter(series)))
            .replace("<<.LabelMatchers>>", 'namespace="textserve",pod=~"textserve-.*"')
            .replace("<<.GroupBy>>", "pod")
        )
    path = tmp_path / "adapter_rules.yml"
    records = [{"record": f"adapter:rule_{i}", "expr": e} for i, e in enumerate(exprs)]
    path.write_text(yaml.safe_dump({"groups": [{"name": "adapter", "rules": records}]}))
    proc = run_tool(tool("promtool"), "check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr

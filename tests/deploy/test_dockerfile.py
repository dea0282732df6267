"""The Dockerfile: hadolint, and the properties the issue asks of each image target."""

from __future__ import annotations

import re

from tests.deploy.conftest import ROOT, run_tool, tool

DOCKERFILE = ROOT / "Dockerfile"


def stages() -> dict[str, list[str]]:
    """Instructions of each build stage, by stage name (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, re.IGNORECASE)
        if m:
            current = out.setdefault(m.group(2), [f"FROM {m.group(1)}"])
        elif current is not None:
            current.append(line)
    return out


def test_hadolint_passes() -> None:
    proc = run_tool(tool("hadolint"), "--config", "docker/hadolint.yaml", "Dockerfile")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_serve_image_is_cuda_onnxruntime_gpu_without_torch() -> None:
    s = stages()
    assert {"cuda-base", "wheel", "serve-deps", "serve", "train", "cpu"} <= set(s)
    default_cuda = re.search(r"ARG CUDA_IMAGE=(\S+)", DOCKERFILE.read_text())
    assert default_cuda
    assert re.fullmatch(r"nvidia/cuda:12\.\d+\.\d+-cudnn-runtime-ubuntu2[24]\.04", default_cuda[1])
    assert s["cuda-base"][0] == "FROM ${CUDA_IMAGE}"
    serve_deps = " ".join(s["serve-deps"])
    assert "onnxruntime-gpu" in serve_deps
    assert "ARG SERVE_EXTRAS=gpu" in serve_deps
    serve = " ".join(s["serve"] + s["serve-deps"] + s["cuda-base"])
    assert "torch" not in serve


def test_dependencies_are_installed_before_the_source_is_copied() -> None:
    s = stages()
    # Only the wheel stage sees app/; dependency stages copy pyproject.toml alone.
    for name in ("serve-deps", "train", "cpu"):
        copies = [i for i in s[name] if i.startswith("COPY") and "--from" not in i]
        assert copies, name
        assert all("app" not in c.split()[1:-1] for c in copies), name
    for name in ("serve", "train", "cpu"):
        steps = s[name]
        install_deps = [i for i, line in enumerate(steps) if "requirements.txt" in line]
        install_app = [i for i, line in enumerate(steps) if "from=wheel" in line]
        assert install_app, name
        assert all(d < install_app[0] for d in install_deps), name


def test_images_run_unprivileged_with_a_readiness_healthcheck_and_a_model_volume() -> None:
    s = stages()
    for name in ("serve", "cpu"):
        steps = s[name]
        user = [line for line in steps if line.startswith("USER")]
        assert user == ["USER 10001:10001"], name
        health = [line for line in steps if line.startswith("HEALTHCHECK")]
        assert len(health) == 1, name
        assert "/readyz" in health[0], name
        joined = " ".join(steps)
        assert 'VOLUME ["/models"]' in joined, name
        assert "TEXTSERVE_MODEL_STORE=/models" in joined, name
        assert "TEXTSERVE_HOST=0.0.0.0" in joined, name
        assert steps[-2:] == ['ENTRYPOINT ["/usr/bin/tini", "--", "textserve"]', 'CMD ["serve"]']
    assert "USER 10001:10001" in s["train"]
    # The CUDA build of torch comes first, from its own index; the `train` extra then sees it.
    train = " ".join(s["train"])
    assert train.index('--index-url "${TORCH_INDEX}"') < train.index("gpu,train,ray")
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cu" in train


def test_build_context_holds_no_models_venv_or_secrets() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # an allow-list: everything else stays out
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "app", "docker/pyproject_requirements.py"}

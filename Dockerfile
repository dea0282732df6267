# syntax=docker/dockerfile:1.7
# textserve images. Targets:
#   serve (default)  CUDA runtime + onnxruntime-gpu, no torch: the serving replicas
#   train            serve + the CUDA build of torch + Ray: fine-tune workers, KubeRay pods
#   cpu              python slim + onnxruntime (CPU): hosts without a GPU (compose `cpu` profile)
#
#   docker build -t textserve:gpu .                       # = --target serve
#   docker build -t textserve:train --target train .
#   docker build -t textserve:cpu --target cpu .
#
# CUDA line: onnxruntime-gpu <1.27 and the cu128 torch wheels are CUDA 12 builds (driver >= 570);
# onnxruntime-gpu >= 1.28 and PyPI's default torch 2.13 wheels are CUDA 13 builds.
# For CUDA 13 (driver >= 580): --build-arg CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04
#   --build-arg ORT_GPU='onnxruntime-gpu>=1.28' --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu130
# No secrets and no models are baked in: the store is the volume at /models.

ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ARG CPU_IMAGE=python:3.12-slim-bookworm

# ---------------------------------------------------------------------------------------------
# CUDA runtime + the distribution's Python 3.12 + an unprivileged user.
FROM ${CUDA_IMAGE} AS cuda-base
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 textserve \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin textserve \
    && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# ---------------------------------------------------------------------------------------------
# The project as a (pure Python) wheel. Only this stage sees the source, so the dependency
# layers below are reused until pyproject.toml changes. Built on the small image, so the `cpu`
# target never pulls the CUDA one.
FROM ${CPU_IMAGE} AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------
# Serving dependencies only: pyproject's base list + the `gpu` extra (onnxruntime-gpu, NVML).
# SERVE_EXTRAS=gpu,ray adds the Ray client, for fine-tunes on a KubeRay cluster.
FROM cuda-base AS serve-deps
ARG SERVE_EXTRAS=gpu
ARG ORT_GPU="onnxruntime-gpu>=1.24,<1.27"
ARG RAY_VERSION=2.60.0
COPY pyproject.toml docker/pyproject_requirements.py /tmp/build/
RUN python3 /tmp/build/pyproject_requirements.py /tmp/build/pyproject.toml "${SERVE_EXTRAS}" \
        > /tmp/build/requirements.txt \
    && printf '%s\n' "${ORT_GPU}" "ray==${RAY_VERSION}" > /tmp/build/constraints.txt \
    && pip install -r /tmp/build/requirements.txt -c /tmp/build/constraints.txt \
    && rm -rf /tmp/build

# ---------------------------------------------------------------------------------------------
FROM cuda-base AS serve
COPY --from=serve-deps /opt/venv /opt/venv
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-deps /wheels/*.whl \
    && mkdir -p /models /var/lib/textserve \
    && chown textserve:textserve /models /var/lib/textserve
ENV TEXTSERVE_HOST=0.0.0.0 \
    TEXTSERVE_PORT=8000 \
    TEXTSERVE_MODEL_STORE=/models \
    TEXTSERVE_DATA_DIR=/var/lib/textserve \
    TEXTSERVE_PROVIDERS=CUDAExecutionProvider,CPUExecutionProvider \
    TEXTSERVE_LOG_FORMAT=json
WORKDIR /var/lib/textserve
VOLUME ["/models"]
USER 10001:10001
EXPOSE 8000
# Ready, not merely alive: 200 only once every active model is loaded and warmed.
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request as u; u.urlopen(f\"http://127.0.0.1:{os.environ.get('TEXTSERVE_PORT', '8000')}/readyz\", timeout=2)"]
# tini: PID 1 that forwards SIGTERM (graceful drain) and reaps fine-tune worker processes.
ENTRYPOINT ["/usr/bin/tini", "--", "textserve"]
CMD ["serve"]

# ---------------------------------------------------------------------------------------------
# Fine-tunes: torch from the CUDA wheel index first (pyproject pins torch==2.13.0, which the
# default index serves as a CPU build on some mirrors), then the `train` extra around it.
FROM cuda-base AS train
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ARG TORCH_VERSION=2.13.0
ARG ORT_GPU="onnxruntime-gpu>=1.24,<1.27"
# = spec.rayVersion of the RayCluster (k8s/overlays/gpu/raycluster.yaml) and of the serve image.
ARG RAY_VERSION=2.60.0
# KubeRay's probes call wget.
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml docker/pyproject_requirements.py /tmp/build/
RUN pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}" \
    && python3 /tmp/build/pyproject_requirements.py /tmp/build/pyproject.toml gpu,train,ray \
        > /tmp/build/requirements.txt \
    && printf '%s\n' "${ORT_GPU}" "torch==${TORCH_VERSION}" "ray==${RAY_VERSION}" \
        > /tmp/build/constraints.txt \
    && pip install -r /tmp/build/requirements.txt -c /tmp/build/constraints.txt \
    && rm -rf /tmp/build
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-deps /wheels/*.whl \
    && mkdir -p /models /var/lib/textserve \
    && chown textserve:textserve /models /var/lib/textserve
ENV TEXTSERVE_MODEL_STORE=/models \
    TEXTSERVE_DATA_DIR=/var/lib/textserve \
    TEXTSERVE_LOG_FORMAT=json
WORKDIR /var/lib/textserve
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["textserve", "--help"]

# ---------------------------------------------------------------------------------------------
# CPU-only serving image for hosts without a GPU (compose `cpu` profile, k8s overlays/cpu).
FROM ${CPU_IMAGE} AS cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 textserve \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin textserve \
    && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml docker/pyproject_requirements.py /tmp/build/
RUN python3 /tmp/build/pyproject_requirements.py /tmp/build/pyproject.toml cpu \
        > /tmp/build/requirements.txt \
    && pip install -r /tmp/build/requirements.txt \
    && rm -rf /tmp/build
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-deps /wheels/*.whl \
    && mkdir -p /models /var/lib/textserve \
    && chown textserve:textserve /models /var/lib/textserve
ENV TEXTSERVE_HOST=0.0.0.0 \
    TEXTSERVE_PORT=8000 \
    TEXTSERVE_MODEL_STORE=/models \
    TEXTSERVE_DATA_DIR=/var/lib/textserve \
    TEXTSERVE_PROVIDERS=CPUExecutionProvider \
    TEXTSERVE_LOG_FORMAT=json
WORKDIR /var/lib/textserve
VOLUME ["/models"]
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request as u; u.urlopen(f\"http://127.0.0.1:{os.environ.get('TEXTSERVE_PORT', '8000')}/readyz\", timeout=2)"]
ENTRYPOINT ["/usr/bin/tini", "--", "textserve"]
CMD ["serve"]

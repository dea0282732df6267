#!/usr/bin/env bash
# GPU proof, on a machine with an NVIDIA GPU: install the `gpu` extra, build the default models,
# serve them with CUDAExecutionProvider, check that CUDA really runs them (and that /metrics
# carries the GPU series), then run bench/classify.py in fp32 and fp16 and print the figures.
# Everything it prints is also saved to bench/results/gpu-check-<date>.txt.
#
#   bash scripts/gpu-check.sh
#   MODEL_STORE=dir bash scripts/gpu-check.sh --rehearse
#
# --rehearse runs every step that does not need the driver on the CPU provider, with the
# Python already here (PYTHON, default .venv/bin/python, else python3) and no install: the
# route matrix (bench/gpu_check.py: /classify, /reply, /v1/embeddings where served; fp32 vs
# fp16; IO binding on/off) with a short load. It needs MODEL_STORE and takes about 2-5
# minutes, so that the device run is known to work before it costs device time.
#
# Environment (all optional):
#   WHEELHOUSE=dir    install from the wheels in dir only (an offline machine)
#   MODEL_STORE=dir   a store with active sentiment/topic models: skip the bootstrap (and torch)
#   DATA=file         benchmark texts (default ../shared/data/sst2/dev.tsv, else the recipe's)
#   DURATION=seconds  load per concurrency level in the benchmark (default 8)
#   GPU_VENV=dir      the virtual environment (default ~/.cache/textserve-gpu-venv, outside
#                     the work tree so that nothing large lands next to the sources)
set -euo pipefail
cd "$(dirname "$0")/.."

rehearse=0
if [[ ${1:-} == --rehearse ]]; then
    rehearse=1
fi

log() { printf '\n== %s\n' "$*"; }
die() {
    printf 'gpu-check: %s\n' "$*" >&2
    exit 1
}

if ((rehearse)); then
    [[ -n ${MODEL_STORE:-} ]] || die "--rehearse needs MODEL_STORE (a store with active models)"
    python=${PYTHON:-}
    [[ -n $python ]] || { [[ -x .venv/bin/python ]] && python=.venv/bin/python || python=python3; }
    textserve=$(dirname "$python")/textserve
    [[ -x $textserve ]] || die "no textserve next to $python"
    mkdir -p bench/results
    report="bench/results/gpu-check-rehearsal-$(date -u +%Y-%m-%d).txt"
    exec > >(tee "$report") 2>&1
    log "$(date -u '+%Y-%m-%d %H:%M UTC') rehearsal on the CPU provider, store $MODEL_STORE"
    export TEXTSERVE_PROVIDERS=CPUExecutionProvider TEXTSERVE_LOG_FORMAT=text
    started=$SECONDS
    log "route matrix: fp32 vs fp16, IO binding on/off (bench/gpu_check.py)"
    "$python" bench/gpu_check.py --store "$MODEL_STORE" --textserve "$textserve" \
        --clients 1 32 --requests "${REQUESTS:-64}" --out bench/results/gpu-check-rehearsal.json
    log "rehearsal passed in $((SECONDS - started)) s; saved to $report"
    exit 0
fi

command -v nvidia-smi >/dev/null 2>&1 || die "nvidia-smi not found: no NVIDIA driver here"
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1)
driver_major=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n 1 | cut -d. -f1)

mkdir -p bench/results
report="bench/results/gpu-check-$(date -u +%Y-%m-%d).txt"
exec > >(tee "$report") 2>&1
log "$(date -u '+%Y-%m-%d %H:%M UTC') on ${gpu}"

# onnxruntime-gpu >= 1.28 is built for CUDA 13 (driver >= 580); older drivers need the CUDA 12
# line. The [cuda,cudnn] extras bring the CUDA libraries as wheels: no toolkit needed.
if ((driver_major >= 580)); then
    ort='onnxruntime-gpu[cuda,cudnn]>=1.28'
else
    ort='onnxruntime-gpu[cuda,cudnn]>=1.24,<1.27'
fi

venv=${GPU_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/textserve-gpu-venv}
pip_args=(--quiet --disable-pip-version-check)
torch_args=(--index-url https://download.pytorch.org/whl/cpu)
if [[ -n ${WHEELHOUSE:-} ]]; then
    pip_args+=(--no-index --find-links "$WHEELHOUSE")
    torch_args=()
fi

started=$SECONDS
log "install: $venv, the gpu extra, $ort"
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
pip=("$venv/bin/pip" install "${pip_args[@]}")
if [[ -z ${MODEL_STORE:-} ]]; then
    # Bootstrap trains small models: the CPU build of torch does it and installs in seconds.
    "${pip[@]}" "${torch_args[@]}" torch==2.13.0
    "${pip[@]}" -e '.[gpu,train]' "$ort"
else
    "${pip[@]}" -e '.[gpu]' "$ort"
fi
# One onnxruntime only: a CPU build pulled in by another package would shadow the GPU one.
if "$venv/bin/pip" show onnxruntime >/dev/null 2>&1; then
    "$venv/bin/pip" uninstall --quiet -y onnxruntime
    "${pip[@]}" --force-reinstall --no-deps "${ort/\[cuda,cudnn\]/}"
fi
# The CUDA and cuDNN libraries of the nvidia-* wheels, for ONNX Runtime's loader.
nvidia_libs=$("$venv/bin/python" - <<'PY'
import glob, os, site
dirs = {
    os.path.dirname(lib)
    for base in site.getsitepackages()
    for lib in glob.glob(os.path.join(base, "nvidia", "**", "lib", "*.so*"), recursive=True)
}
print(":".join(sorted(dirs)))
PY
)
export LD_LIBRARY_PATH="${nvidia_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$venv/bin/python" -c '
import onnxruntime as ort
providers = ort.get_available_providers()
print("onnxruntime", ort.__version__, providers)
assert "CUDAExecutionProvider" in providers, "this onnxruntime has no CUDA provider"
'
log "installed in $((SECONDS - started)) s"

work=$(mktemp -d)
server=""
cleanup() {
    if [[ -n $server ]]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

store=${MODEL_STORE:-$work/models}
if [[ -z ${MODEL_STORE:-} ]]; then
    started=$SECONDS
    log "bootstrap: the default models into $store"
    TEXTSERVE_MODEL_STORE=$store "$venv/bin/textserve" bootstrap --recipes models/_recipes
    log "bootstrapped in $((SECONDS - started)) s"
fi

export TEXTSERVE_PROVIDERS=CUDAExecutionProvider,CPUExecutionProvider
export TEXTSERVE_DATA_DIR=$work/data
export TEXTSERVE_LOG_FORMAT=text

log "serve on CUDAExecutionProvider and check the provider in use"
port=18765
TEXTSERVE_MODEL_STORE=$store "$venv/bin/textserve" serve --host 127.0.0.1 --port "$port" \
    >"$work/serve.log" 2>&1 &
server=$!
"$venv/bin/python" - "$port" <<'PY' || { tail -n 40 "$work/serve.log"; die "CUDA check failed"; }
import json, sys, time, urllib.error, urllib.request

base = f"http://127.0.0.1:{sys.argv[1]}"
deadline = time.monotonic() + 180
while True:
    try:
        urllib.request.urlopen(f"{base}/readyz", timeout=2)
        break
    except (urllib.error.URLError, ConnectionError):
        if time.monotonic() > deadline:
            raise SystemExit("not ready after 180 s")
        time.sleep(1)
cards = json.load(urllib.request.urlopen(f"{base}/v1/models"))["data"]
for card in cards:
    print(f"  {card['id']}@{card['loaded_version']}: {card['provider']}")
    assert card["provider"] == "CUDAExecutionProvider", card
body = json.dumps({"task": "sentiment", "text": "the parcel arrived late and broken"}).encode()
req = urllib.request.Request(f"{base}/classify", body, {"content-type": "application/json"})
print("  classify:", json.load(urllib.request.urlopen(req))["label"])
metrics = urllib.request.urlopen(f"{base}/metrics").read().decode()
gpu_lines = [l for l in metrics.splitlines() if l.startswith("textserve_gpu_")]
print("\n".join(f"  {l}" for l in gpu_lines))
assert gpu_lines, "no textserve_gpu_* series on /metrics"
PY
kill "$server"
wait "$server" 2>/dev/null || true
server=""

log "route matrix: /classify, /reply, /v1/embeddings; fp32 vs fp16; IO binding on/off"
"$venv/bin/python" bench/gpu_check.py --store "$store" --textserve "$venv/bin/textserve" \
    --clients 1 32 256 --requests "${REQUESTS:-4000}" --out bench/results/gpu-check-routes.json

data=${DATA:-../shared/data/sst2/dev.tsv}
[[ -f $data ]] || data=models/_recipes/sentiment/data.jsonl
duration=${DURATION:-8}

log "bench/gpu.py: raw texts/s by batch (32, 256) x tokens (32, 128), fp32 and fp16, GPU busy under load"
"$venv/bin/python" bench/gpu.py --store "$store" --model sentiment --data "$data" \
    --out bench/results/gpu-check-shapes.json

# Versions built by this project carry model.fp16.onnx (app/training/optimize.py: fused, fp16);
# the setting picks it, and `auto` does so on CUDA where it scored as well as fp32.
for precision in fp32 fp16; do
    log "bench/classify.py, $precision, $data"
    TEXTSERVE_MODEL_VARIANT=$precision "$venv/bin/python" bench/classify.py --data "$data" \
        --store "$store" --model sentiment --duration "$duration" --no-baseline \
        --out "bench/results/gpu-check-$precision.json"
done

log "done: $gpu; figures above, saved to $report and bench/results/gpu-check-*.json"

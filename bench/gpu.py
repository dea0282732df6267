"""Raw throughput by shape and precision, and how busy the GPU is under HTTP load.

(a) For each variant (fp32, fp16 on a GPU; fp32, int8 on a CPU) the engine runs batches of
    32 and 256 texts of exactly 32 and 128 tokens, through the serving path (IO binding on
    CUDA), and reports texts/s; (b) the server under single-text load at 64 clients while
    NVML samples the GPU's utilisation every 100 ms: the share of time a kernel was running.
    On a machine without a GPU, (a) runs on the CPU and (b) is skipped.

    python bench/gpu.py --store models --model sentiment --data ../shared/data/sst2/dev.tsv
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from app.config import Settings
from app.metrics import Metrics
from app.runtime.engine import InferenceEngine
from app.service import engine_config
from app.store.versions import ModelStore
from bench.classify import _level
from bench.common import ROOT, load_texts, machine_info, round_floats, write_json
from bench.loadgen import choose_client
from bench.server import ServerProcess, store_env

SHAPES = [(32, 32), (32, 128), (256, 32), (256, 128)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--store", type=Path, default=Path("models"))
    p.add_argument("--model", default="sentiment")
    p.add_argument("--data", type=Path, help="texts for the HTTP part (b)")
    p.add_argument("--variants", help="comma list (default: fp32,fp16 on a GPU, fp32,int8 else)")
    p.add_argument("--seconds", type=float, default=3.0, help="per shape and variant")
    p.add_argument("--duration", type=float, default=15.0, help="seconds of HTTP load")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu.json")
    return p.parse_args(argv)


def raw_shapes(settings: Settings, model: str, variant: str, seconds: float) -> dict[str, Any]:
    store = ModelStore(settings.model_store)
    version = store.active_version(model)
    if version is None:
        raise SystemExit(f"{model!r} has no active version in {settings.model_store}")
    manifest = store.verify(model, version)
    config = engine_config(settings.model_copy(update={"model_variant": variant}))
    engine = InferenceEngine(store.version_dir(model, version), manifest, config, Metrics())
    rows: dict[str, Any] = {"variant": engine.variant, "provider": engine.provider}
    try:
        for batch, length in SHAPES:
            # Token ids of one ordinary word, [CLS] ... [SEP] aside: the shape is what counts.
            text = " ".join(["service"] * max(1, length - 2))
            row = engine._tokenizer.encode([text])[0].ids[:length]
            ids = [row] * batch
            engine._run(ids)  # first run of a shape: allocations, kernel selection
            runs, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                engine._run(ids)
                runs += 1
            elapsed = time.perf_counter() - t0
            rows[f"b{batch}_s{len(row)}"] = runs * batch / elapsed
    finally:
        engine.close(1.0)
    return rows


class GpuSampler:
    """NVML utilisation of device 0, sampled every ``interval_s`` on a thread."""

    def __init__(self, interval_s: float = 0.1) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        self._interval = interval_s
        self._samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._samples.append(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        s = self._samples
        return {"samples": len(s), "mean_busy_pct": sum(s) / len(s) if s else float("nan")}


def gpu_present() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        return int(pynvml.nvmlDeviceGetCount()) > 0
    except Exception:  # no library, no driver: a CPU machine
        return False


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    console = Console(width=140)
    os.environ.update(store_env(args.store, args.model))
    settings = Settings()
    gpu = gpu_present()
    variants = (
        args.variants.split(",")
        if args.variants
        else (["fp32", "fp16"] if gpu else ["fp32", "int8"])
    )
    report: dict[str, Any] = {"machine": machine_info(), "gpu": gpu, "raw": [], "http": None}
    for variant in variants:
        console.print(f"raw runs, {variant}...")
        report["raw"].append(raw_shapes(settings, args.model, variant, args.seconds))
    t = Table(title="raw texts/s by batch x tokens (serving path: IO binding on CUDA)")
    # Lengths as run: a model with a shorter max_seq_length truncates the longer shape.
    shapes = [k for k in report["raw"][0] if k.startswith("b")]
    for col in ("variant", "provider", *(k[1:].replace("_s", " x ") for k in shapes)):
        t.add_column(col, justify="right")
    for row in report["raw"]:
        cells = [f"{v:.0f}" for k, v in row.items() if k.startswith("b")]
        t.add_row(row["variant"], row["provider"], *cells)
    console.print(t)
    if gpu and args.data:
        texts = load_texts(args.data)
        bodies = [json.dumps({"model": args.model, "text": x}).encode() for x in texts]
        with ServerProcess(store_env(args.store, args.model)) as server, GpuSampler() as sampler:
            level = _level(server, choose_client("auto"), bodies, 64, 1, args)
        level.pop("latencies_ms")
        report["http"] = {**level, "gpu": sampler.summary()}
        busy = sampler.summary()["mean_busy_pct"]
        console.print(
            f"HTTP, 64 clients: {level['texts_per_s']:.0f} texts/s, p50 "
            f"{level['latency_ms']['p50']:.1f} ms, GPU busy {busy:.0f}%"
        )
    elif not gpu:
        console.print("no GPU here: the HTTP part (GPU busy under load) is skipped")
    write_json(args.out, round_floats(report))
    console.print(f"saved {args.out}")


if __name__ == "__main__":
    main()

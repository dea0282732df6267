"""Render the Grafana dashboard's panels to a PNG from real data, without Grafana.

Starts ``textserve serve`` over a model store (tiny real models by default) and a real
Prometheus (Debian's ``prometheus``) scraping it every second with the alert rules loaded,
sends a minute of mixed traffic (sentiment and topic requests, a rising share of negative
texts, bursts past the queue limit, some invalid requests), then runs every panel's query over
Prometheus's ``query_range`` API and draws the panels where the dashboard JSON places them.

    python docker/render_dashboard.py --out docs/dashboard.png --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "textserve.json"
RULES = ROOT / "docker" / "prometheus" / "alerts.yml"
BG, PANEL_BG, FG, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
COLORS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a"]
POSITIVE = ["great service thanks", "excellent and fast delivery", "i love this app", "good price"]
NEGATIVE = ["awful the parcel arrived broken", "terrible login error again", "bad refund"]
NEUTRAL = ["how do i change my password", "what size is available", "when will the invoice come"]
TOPIC = ["my invoice shows a wrong charge", "the parcel never arrived", "login password reset",
         "the app shows an error and crash", "is this colour available in my size"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} not ready after {timeout_s} s")


def tiny_store(root: Path) -> Path:
    from app.store.versions import ModelStore
    from tests.support.tiny_model import publish_tiny_classifier

    store = ModelStore(root)
    publish_tiny_classifier(store, "sentiment")
    publish_tiny_classifier(
        store,
        "topic",
        ("billing", "delivery", "account", "technical_problem", "product_question", "other"),
        {"invoice": "billing", "charge": "billing", "parcel": "delivery", "delivery": "delivery",
         "password": "account", "login": "account", "crash": "technical_problem",
         "error": "technical_problem", "size": "product_question", "colour": "product_question",
         "thanks": "other"},
    )  # fmt: skip
    return root


async def load(base: str, duration_s: float, seed: int = 0) -> int:
    """Closed-loop traffic with a rising negative share, bursts and a few bad requests."""
    rng = random.Random(seed)
    started = time.monotonic()
    sent = 0

    async def one(client: httpx.AsyncClient, burst: bool = False) -> None:
        nonlocal sent
        progress = (time.monotonic() - started) / duration_s
        roll = rng.random()
        if burst:  # many texts at once: more than the queue holds, so some get 429
            body: dict[str, Any] = {"task": "topic", "texts": rng.choices(TOPIC, k=24)}
        elif roll < 0.02:
            body = {"task": "sentiment", "text": ""}  # 422
        elif roll < 0.35:
            body = {"task": "topic", "texts": rng.sample(TOPIC, rng.randint(1, 4))}
        else:
            negative = 0.15 + 0.45 * progress  # the share of complaints rises over the run
            pool = NEGATIVE if rng.random() < negative else rng.choice([POSITIVE, NEUTRAL])
            body = {"task": "sentiment", "text": rng.choice(pool)}
        with contextlib.suppress(httpx.TransportError):
            await client.post("/classify", json=body)
        sent += 1

    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        while (elapsed := time.monotonic() - started) < duration_s:
            # Mostly a handful of callers; every 15 s a burst of 64 x 24 texts.
            burst = int(elapsed) % 15 == 7
            concurrency = 64 if burst else rng.randint(2, 12)
            await asyncio.gather(*(one(client, burst) for _ in range(concurrency)))
            await asyncio.sleep(0.05 if not burst else 1.0)
    return sent


def query_range(prom: str, expr: str, start: float, end: float, step: float) -> list[Any]:
    r = httpx.get(
        f"{prom}/api/v1/query_range",
        params={"query": expr, "start": start, "end": end, "step": step},
        timeout=10,
    )
    body = r.json()
    if body.get("status") != "success":
        return []
    result: list[Any] = body["data"]["result"]
    return result


def promql(expr: str, rate_window: str) -> str:
    expr = expr.replace("$__rate_interval", rate_window).replace("[1h]", "[5m]")
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def legend(fmt: str, labels: dict[str, str]) -> str:
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt)
    return text.strip() or ",".join(f"{k}={v}" for k, v in labels.items()) or "value"


def fmt_value(value: float, unit: str | None) -> str:
    if value != value:  # NaN
        return "NaN"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "percentunit":
        return f"{value * 100:.1f} %"
    if unit == "reqps":
        return f"{value:.1f} req/s"
    if unit == "bytes":
        return f"{value / 2**30:.1f} GiB"
    return f"{value:.3g}"


def render(dashboard: dict[str, Any], prom: str, start: float, end: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    panels = dashboard["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    unit_px = 34
    fig = plt.figure(figsize=(24 * 80 / 100, rows * unit_px / 100), dpi=100, facecolor=BG)
    step = max(1.0, (end - start) / 120)

    def axes_for(p: dict[str, Any], pad: float = 0.004) -> Any:
        g = p["gridPos"]
        left, width = g["x"] / 24 + pad, g["w"] / 24 - 2 * pad
        height = g["h"] / rows - 2 * pad
        bottom = 1 - (g["y"] + g["h"]) / rows + pad
        return fig.add_axes((left, bottom, width, height))

    for p in panels:
        if p["type"] == "row":
            ax = axes_for(p, pad=0.001)
            ax.set_axis_off()
            ax.text(0.002, 0.5, p["title"], color=FG, fontsize=12, weight="bold", va="center")
            continue
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
        frame = axes_for(p)
        frame.set_facecolor(PANEL_BG)
        frame.set_xticks([])
        frame.set_yticks([])
        for spine in frame.spines.values():
            spine.set_color(GRID)
        frame.set_title(p["title"], color=FG, fontsize=9, loc="left", pad=3)
        series = []
        for target in p["targets"]:
            for s in query_range(prom, promql(target["expr"], "10s"), start, end, step):
                xs = [float(t) - start for t, _ in s["values"]]
                ys = [float(v) for _, v in s["values"]]
                series.append((legend(target.get("legendFormat", ""), s["metric"]), xs, ys))
        if not series:
            frame.text(0.5, 0.45, "No data", color="#8e8e8e", ha="center", fontsize=11,
                       transform=frame.transAxes)  # fmt: skip
            continue
        if p["type"] == "stat":
            frame.text(0.5, 0.4, fmt_value(series[0][2][-1], unit), color=COLORS[0],
                       ha="center", va="center", fontsize=22, weight="bold",
                       transform=frame.transAxes)  # fmt: skip
            continue
        if p["type"] == "table":
            lines = [name for name, _, _ in series][:6]
            for i, line in enumerate(lines):
                frame.text(0.03, 0.8 - i * 0.14, line, color=FG, fontsize=9, family="monospace",
                           transform=frame.transAxes)  # fmt: skip
            continue
        ax = frame.inset_axes((0.07, 0.25, 0.91, 0.64))
        ax.set_facecolor(PANEL_BG)
        stacked = p["fieldConfig"]["defaults"].get("custom", {}).get("stacking", {})
        if stacked.get("mode") == "normal":
            grid = sorted({x for _, xs, _ in series for x in xs})
            values = [
                [dict(zip(xs, ys, strict=True)).get(x, 0.0) for x in grid] for _, xs, ys in series
            ]
            ax.stackplot(grid, values, colors=COLORS, alpha=0.75,
                         labels=[n for n, _, _ in series])  # fmt: skip
        else:
            for i, (name, xs, ys) in enumerate(series):
                ax.plot(xs, ys, color=COLORS[i % len(COLORS)], lw=1.2, label=name)
        ax.tick_params(colors="#8e8e8e", labelsize=7)
        ax.grid(color=GRID, lw=0.5)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _, unit=unit: fmt_value(v, unit)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0f}s"))
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.12), ncol=3, fontsize=6.5,
                  frameon=False, labelcolor=FG)  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, facecolor=BG)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of traffic")
    p.add_argument("--store", type=Path, help="model store (default: tiny real models)")
    p.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        store = args.store or tiny_store(tmp / "models")
        port, prom_port = free_port(), free_port()
        env = {
            **os.environ,
            "TEXTSERVE_MODEL_STORE": str(store),
            "TEXTSERVE_DATA_DIR": str(tmp / "data"),
            "TEXTSERVE_PROVIDERS": os.environ.get("TEXTSERVE_PROVIDERS", "CPUExecutionProvider"),
            "TEXTSERVE_MAX_QUEUE_TEXTS": "64",
            "TEXTSERVE_LOG_LEVEL": "warning",
        }
        exe = str(Path(sys.executable).with_name("textserve"))
        server = subprocess.Popen(
            [exe, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        config = tmp / "prometheus.yml"
        shutil.copy(RULES, tmp / "alerts.yml")
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": ["alerts.yml"],
                    "scrape_configs": [
                        {
                            "job_name": "textserve",
                            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                        }
                    ],
                }
            )
        )
        prom = subprocess.Popen(
            [args.prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_ready(f"http://127.0.0.1:{port}/readyz", server)
            prom_url = f"http://127.0.0.1:{prom_port}"
            wait_ready(f"{prom_url}/-/ready", prom)
            start = time.time()
            sent = asyncio.run(load(f"http://127.0.0.1:{port}", args.duration))
            end = time.time()
            time.sleep(3)  # the last scrapes
            print(f"sent {sent} requests in {end - start:.0f} s; rendering {args.out}")
            render(json.loads(DASHBOARD.read_text()), prom_url, start, end, args.out)
        finally:
            for proc in (server, prom):
                proc.terminate()
                proc.wait(15)


if __name__ == "__main__":
    main()

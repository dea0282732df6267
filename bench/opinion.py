"""What topic and sentiment together cost: one two-task /classify call against two single calls.

The server (started here as a subprocess over a model store holding `topic` and `sentiment`)
is loaded by closed-loop clients, each repeating one unit of work on one text:

- ``two-task``: ``{"tasks": ["topic", "sentiment"], "text": ...}``, one request;
- ``two-calls``: ``{"task": "topic"}`` and ``{"task": "sentiment"}`` for the same text, sent
  at once, the unit done when both answered (what a client without the two-task call does).

Prints units per second and latency percentiles of a unit per mode and writes them to JSON
(docs/monitoring.md records a run). A benchmark, not a test: nothing is asserted.

    python bench/opinion.py --store models --concurrency 32 --duration 30
    python bench/opinion.py --tiny --concurrency 4 --duration 2     # a smoke run, tiny models
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import orjson
from rich.table import Table

from bench.common import (
    ROOT,
    latency_summary,
    load_texts,
    machine_info,
    report_console,
    round_floats,
    write_json,
)
from bench.server import ServerProcess

# Used when no --data is given: the kinds of text the opinion monitor sees.
TEXTS = [
    "My invoice shows a charge I never made and support will not answer.",
    "The parcel arrived two days early, very happy with the delivery.",
    "I cannot log in since the last update, the password reset fails.",
    "Is this jacket available in a larger size?",
    "The app crashes every time I open my order history.",
    "Thanks for the quick refund, great service.",
]
MODES = ("two-task", "two-calls")


def unit_bodies(mode: str, text: str) -> list[bytes]:
    if mode == "two-task":
        return [orjson.dumps({"tasks": ["topic", "sentiment"], "text": text})]
    return [orjson.dumps({"task": task, "text": text}) for task in ("topic", "sentiment")]


async def run_mode(
    url: str, mode: str, texts: list[str], concurrency: int, duration_s: float
) -> dict[str, Any]:
    """Closed loop: ``concurrency`` clients repeat units of ``mode`` for ``duration_s``."""
    units = [unit_bodies(mode, t) for t in texts]
    cursor = itertools.count()
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    limits = httpx.Limits(
        max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2
    )
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0) as client:
        start = time.perf_counter()
        end = start + duration_s

        async def post(body: bytes) -> int:
            try:
                return (await client.post("/classify", content=body, headers=headers)).status_code
            except httpx.HTTPError:
                return 0

        async def worker() -> None:
            while time.perf_counter() < end:
                bodies = units[next(cursor) % len(units)]
                t0 = time.perf_counter()
                codes = await asyncio.gather(*(post(b) for b in bodies))
                worst = max(codes, key=lambda c: c != 200)
                statuses[str(worst)] += 1
                if worst == 200:
                    latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    ok = statuses.pop("200", 0)
    return {
        "mode": mode,
        "concurrency": concurrency,
        "units_per_s": ok / elapsed,
        "texts_classified_per_s": 2 * ok / elapsed,  # two answers (topic, sentiment) a unit
        "latency_ms": latency_summary(latencies),
        "errors": dict(statuses),
    }


def tiny_store(root: Path) -> Path:
    """Tiny real topic and sentiment models (the tests' builder), for a quick smoke run."""
    from app.store.versions import ModelStore
    from tests.support.tiny_model import publish_tiny_classifier

    store = ModelStore(root)
    publish_tiny_classifier(store, "sentiment")
    publish_tiny_classifier(store, "topic", ("billing", "delivery", "account", "other"))
    return root


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--store", type=Path, default=ROOT / "models", help="Model store to serve.")
    p.add_argument("--tiny", action="store_true", help="Serve tiny test models instead.")
    p.add_argument("--data", type=Path, help="Texts to send (a CSV/TSV/JSONL file).")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--duration", type=float, default=30.0, help="Seconds per mode.")
    p.add_argument("--warmup", type=float, default=3.0, help="Seconds of load before measuring.")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "opinion.json")
    args = p.parse_args(argv)

    texts = load_texts(args.data)[:2000] if args.data else TEXTS
    console = report_console()
    with tempfile.TemporaryDirectory() as tmp:
        store = tiny_store(Path(tmp) / "models") if args.tiny else args.store
        env = {
            "TEXTSERVE_MODEL_STORE": str(Path(store).resolve()),
            "TEXTSERVE_LOG_LEVEL": "warning",
        }
        # A bench client may send more than an API key's default texts per second.
        env["TEXTSERVE_RATE_LIMIT_TEXTS"] = "{}"
        env["TEXTSERVE_RATE_LIMIT_REQUESTS"] = "{}"
        results = []
        with ServerProcess(env) as server:
            for mode in MODES:
                if args.warmup > 0:
                    asyncio.run(run_mode(server.url, mode, texts, args.concurrency, args.warmup))
                results.append(
                    asyncio.run(run_mode(server.url, mode, texts, args.concurrency, args.duration))
                )
    table = Table(title=f"topic + sentiment per text, {args.concurrency} clients")
    for column in ("mode", "units/s", "p50 ms", "p99 ms", "errors"):
        table.add_column(column)
    for r in results:
        lat = r["latency_ms"]
        table.add_row(
            r["mode"],
            f"{r['units_per_s']:.1f}",
            f"{lat.get('p50', float('nan')):.1f}",
            f"{lat.get('p99', float('nan')):.1f}",
            str(r["errors"] or "-"),
        )
    console.print(table)
    payload = {"machine": machine_info(), "args": vars(args), "results": results}
    write_json(args.out, round_floats(payload))
    console.print(f"written to {args.out}")


if __name__ == "__main__":
    main()

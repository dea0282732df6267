"""Processes x ORT threads: which split of the cores serves the most, at what latency.

Starts the server once per layout, ``WORKERSxSTREAMSxTHREADS`` (``TEXTSERVE_WORKERS``,
``TEXTSERVE_BATCH_STREAMS``: model runs in flight per process, ``TEXTSERVE_INTRA_OP_THREADS``),
drives single-text /classify at one concurrency with wrk, and reports texts/s, latency, CPU
per text and memory. Prints a table and saves JSON. Nothing is asserted.

    python bench/cores.py --data ../shared/data/sst2/dev.tsv --layouts 1x1x2,1x2x1,2x1x1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from bench.classify import _level
from bench.common import (
    ROOT,
    add_served_texts_args,
    load_texts,
    machine_info,
    round_floats,
    tree_rss_mb,
    write_json,
)
from bench.loadgen import choose_client
from bench.server import ServerProcess, store_env


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_served_texts_args(p)
    p.add_argument(
        "--layouts", default="1x1x2,1x2x1,2x1x1", help="WORKERSxSTREAMSxTHREADS, comma-separated"
    )
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--duration", type=float, default=12.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cores.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    console = Console(width=140)
    texts = load_texts(args.data, args.text_column)
    bodies = [json.dumps({"model": args.model, "text": t}).encode() for t in texts]
    client = choose_client(args.client)
    rows: list[dict[str, Any]] = []
    for layout in args.layouts.split(","):
        workers, streams, threads = (int(x) for x in layout.lower().split("x"))
        env = {
            **store_env(args.store, args.model),
            "TEXTSERVE_WORKERS": str(workers),
            "TEXTSERVE_BATCH_STREAMS": str(streams),
            "TEXTSERVE_INTRA_OP_THREADS": str(threads),
            "TEXTSERVE_LOG_LEVEL": "warning",
        }
        with ServerProcess(env) as server:
            level = _level(server, client, bodies, args.concurrency, 1, args)
            memory = tree_rss_mb(server.pid)
            cold = server.ready_s
        level.pop("latencies_ms")
        rows.append(
            {
                "workers": workers,
                "streams": streams,
                "threads": threads,
                "cold_start_s": cold,
                **memory,
                **level,
            }
        )
        print(f"  {layout}: {level['texts_per_s']:.1f} texts/s", file=sys.stderr)
    best = max(r["texts_per_s"] for r in rows)
    t = Table(title=f"layouts at {args.concurrency} clients, single-text /classify ({client})")
    for col in (
        "processes x runs x threads",
        "texts/s",
        "x best",
        "p50 ms",
        "p99 ms",
        "cpu ms/text",
    ):
        t.add_column(col, justify="right")
    t.add_column("RSS MiB", justify="right")
    for r in rows:
        t.add_row(
            f"{r['workers']} x {r['streams']} x {r['threads']}",
            f"{r['texts_per_s']:.1f}",
            f"{r['texts_per_s'] / best:.2f}",
            f"{r['latency_ms']['p50']:.1f}",
            f"{r['latency_ms']['p99']:.1f}",
            f"{r['server_cpu_ms_per_text']:.2f}",
            f"{r['rss_mb']:.0f}",
        )
    console.print(t)
    write_json(args.out, round_floats({"machine": machine_info(), "layouts": rows}))
    console.print(f"saved {args.out}")


if __name__ == "__main__":
    main()

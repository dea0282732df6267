"""Fairness under a flood: how much one API key flooding ``/classify`` slows another key.

The service is started here with two API keys, A and B, and the same per-key rate limit.
Key B sends single-text requests at a low steady rate (open loop: each leaves on schedule,
whatever happened to the others) for ``--duration`` seconds, first alone, then while key A
floods from ``--flood-connections`` connections as fast as the server answers (wrk, closed
loop). Most of A's requests are refused with 429: what is measured is what answering them
costs B. Prints a table and writes JSON; a benchmark, it asserts nothing.

    python bench/fairness.py                       # store ./models, serves only `sentiment`
    python bench/fairness.py --duration 20 --flood-connections 64 --rate-limit 50
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from rich.console import Console
from rich.table import Table

from bench.common import (
    ROOT,
    background_cores,
    latency_summary,
    machine_cpu,
    machine_info,
    report_console,
    round_floats,
    tree_cpu_s,
    write_json,
)
from bench.server import ServerProcess, store_env

FLOOD_SCRIPT = Path(__file__).with_name("wrk_flood.lua")
# Short customer messages, cycled through by key B so that its requests differ.
TEXTS = (
    "the parcel never arrived and support ignores me",
    "great service, thanks!",
    "I was charged twice for the same order",
    "the app crashes every time I open my invoices",
    "delivery was quick and the colour is exactly as pictured",
    "how do I reset my password?",
    "worst purchase I have made this year",
    "fine, nothing special",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--store", type=Path, default=ROOT / "models", help="Model store.")
    p.add_argument("--model", default="sentiment", help="The only model served.")
    p.add_argument("--task", default="sentiment", help="The /classify task to call.")
    p.add_argument("--duration", type=float, default=20.0, help="Seconds of each phase.")
    p.add_argument("--warmup", type=float, default=3.0, help="Unrecorded probe seconds first.")
    p.add_argument("--probe-rps", type=float, default=20.0, help="Key B's requests a second.")
    p.add_argument("--flood-connections", type=int, default=64, help="Key A's connections.")
    p.add_argument(
        "--rate-limit", type=float, default=50.0, help="Requests a second allowed per key."
    )
    p.add_argument("--burst-s", type=float, default=2.0, help="TEXTSERVE_RATE_LIMIT_BURST_S.")
    p.add_argument("--timeout", type=float, default=30.0, help="Key B's per-request timeout.")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fairness.json")
    args = p.parse_args(argv)
    if args.probe_rps > args.rate_limit:
        p.error("--probe-rps above --rate-limit: key B would be refused by its own limit")
    return args


@dataclass
class Probe:
    """Key B's requests: statuses, and latencies of the 200s from their scheduled start."""

    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    latencies_s: list[float] = field(default_factory=list)
    # How late each request left against its schedule: the client's own lag, which the
    # latencies include (honest for an open loop, and the probe's share of the noise).
    send_lag_s: list[float] = field(default_factory=list)
    cpu_s: float = 0.0


async def probe(url: str, key: str, task: str, rate: float, duration_s: float) -> Probe:
    """Key B's open loop: request ``n`` leaves at ``n / rate`` whatever happened before."""
    bodies = [json.dumps({"task": task, "text": t}).encode() for t in TEXTS]
    headers = {"X-API-Key": key, "content-type": "application/json"}
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    result = Probe()
    cpu0 = time.process_time()
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=60.0
    ) as client:
        # One request first, so the first measured one does not pay for the connection.
        await client.post("/classify", content=bodies[0])

        async def one(body: bytes, scheduled: float) -> None:
            sent = time.perf_counter()
            try:
                r = await client.post("/classify", content=body)
            except httpx.HTTPError as exc:
                result.statuses[type(exc).__name__] += 1
                return
            done = time.perf_counter()
            result.statuses[str(r.status_code)] += 1
            if r.status_code == 200:
                result.latencies_s.append(done - scheduled)
                result.send_lag_s.append(sent - scheduled)

        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        for n in range(int(rate * duration_s)):
            scheduled = start + n / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(bodies[n % len(bodies)], scheduled)))
        await asyncio.gather(*tasks)
    result.cpu_s = time.process_time() - cpu0
    return result


class Flood:
    """Key A's flood: wrk in its own process for ``duration_s``, started and collected."""

    def __init__(self, url: str, key: str, task: str, connections: int, duration_s: int):
        if shutil.which("wrk") is None:
            raise SystemExit("wrk is not on PATH (Debian/Ubuntu: apt-get install -y wrk)")
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-flood-")
        body_path = Path(self._tmp.name) / "body.json"
        body_path.write_text(json.dumps({"task": task, "text": TEXTS[0]}))
        self._out = Path(self._tmp.name) / "out.json"
        self.connections = connections
        self.command = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration_s}s",
            "--timeout",
            "30s",
            "-s",
            str(FLOOD_SCRIPT),
            url,
            "--",
            str(body_path),
            key,
            str(self._out),
        ]
        self._proc: subprocess.Popen[str] | None = None
        self._cpu0 = 0.0

    def start(self) -> None:
        self._cpu0 = _children_cpu_s()
        self._proc = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def collect(self) -> dict[str, Any]:
        assert self._proc is not None
        stdout, stderr = self._proc.communicate()
        # Children's CPU is counted once they are waited for, which communicate() did.
        cpu = _children_cpu_s() - self._cpu0
        try:
            if self._proc.returncode != 0 or not self._out.is_file():
                raise RuntimeError(f"wrk failed ({self._proc.returncode}):\n{stdout}\n{stderr}")
            report = json.loads(self._out.read_text())
        finally:
            self._tmp.cleanup()
        elapsed = report["duration_us"] / 1e6
        statuses = {k: int(v) for k, v in report["statuses"].items()}
        return {
            "connections": self.connections,
            "elapsed_s": elapsed,
            "requests": report["requests"],
            "requests_per_s": report["requests"] / elapsed,
            "statuses": statuses,
            "refused_share": statuses.get("429", 0) / max(1, report["requests"]),
            "socket_errors": {k: v for k, v in report["errors"].items() if v},
            "client_cpu_s": cpu,
        }


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def phase_report(
    result: Probe, elapsed_s: float, server_cpu_s: float, machine_busy_s: float
) -> dict[str, Any]:
    return {
        "elapsed_s": elapsed_s,
        "statuses": dict(result.statuses),
        "latency_ms": latency_summary(result.latencies_s),
        "send_lag_ms": latency_summary(result.send_lag_s),
        "cpu_cores": {
            "server": server_cpu_s / elapsed_s,
            "probe": result.cpu_s / elapsed_s,
            # Everything the machine did: server, probe, flood client, and anyone else.
            "machine": machine_busy_s / elapsed_s,
        },
    }


async def measure(
    args: argparse.Namespace, server: ServerProcess, keys: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    url = server.url
    print(f"warm-up: key B at {args.probe_rps:g} req/s for {args.warmup:g} s", file=sys.stderr)
    await probe(url, keys["b"], args.task, args.probe_rps, args.warmup)

    async def phase(flood: Flood | None) -> dict[str, Any]:
        if flood is not None:
            flood.start()
            await asyncio.sleep(1.0)  # the flood at full speed before B's first request
        cpu0, busy0, t0 = tree_cpu_s(server.pid), machine_cpu()[0], time.perf_counter()
        result = await probe(url, keys["b"], args.task, args.probe_rps, args.duration)
        elapsed = time.perf_counter() - t0
        report = phase_report(
            result, elapsed, tree_cpu_s(server.pid) - cpu0, machine_cpu()[0] - busy0
        )
        if flood is not None:
            report["flood"] = await asyncio.to_thread(flood.collect)
        return report

    print(f"alone: key B for {args.duration:g} s", file=sys.stderr)
    alone = await phase(None)
    print(
        f"flood: key B for {args.duration:g} s while key A floods "
        f"from {args.flood_connections} connections",
        file=sys.stderr,
    )
    # The flood outlasts the probe by a second at each end: B never sees its ramp or its end.
    flood_s = int(args.duration + 2.999)
    flood = Flood(url, keys["a"], args.task, args.flood_connections, flood_s)
    flooded = await phase(flood)
    return alone, flooded


def ratios(alone: dict[str, Any], flooded: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for q in ("p50", "p90", "p99", "mean"):
        base, under = alone["latency_ms"].get(q), flooded["latency_ms"].get(q)
        out[q] = under / base if base and under is not None else None
    return out


def render(report: dict[str, Any], console: Console) -> None:
    m, s = report["machine"], report["settings"]
    console.print(
        f"[bold]textserve fairness under a flood[/]  {m['usable_cores']} cores "
        f"({m['cpu_model']}); per-key limit {s['rate_limit_rps']:g} req/s "
        f"(burst {s['burst_s']:g} s); key B at {s['probe_rps']:g} req/s open loop, "
        f"single texts, {s['duration_s']:g} s a phase"
    )
    t = Table(title="key B's latency (ms, from each request's scheduled start)")
    for col in (
        "phase",
        "B requests",
        "B non-200",
        "p50",
        "p90",
        "p99",
        "max",
        "B send lag p99",
        "server cores",
        "machine cores",
    ):
        t.add_column(col, justify="right")
    rows = (("B alone", report["alone"]), ("B + A flooding", report["flooded"]))
    for name, ph in rows:
        lat, lag = ph["latency_ms"], ph["send_lag_ms"]
        non_ok = sum(v for k, v in ph["statuses"].items() if k != "200")
        t.add_row(
            name,
            str(sum(ph["statuses"].values())),
            str(non_ok),
            f"{lat.get('p50', float('nan')):.1f}",
            f"{lat.get('p90', float('nan')):.1f}",
            f"{lat.get('p99', float('nan')):.1f}",
            f"{lat.get('max', float('nan')):.1f}",
            f"{lag.get('p99', float('nan')):.1f}",
            f"{ph['cpu_cores']['server']:.2f}",
            f"{ph['cpu_cores']['machine']:.2f}",
        )
    r = report["ratio_flooded_over_alone"]
    t.add_row(
        "ratio",
        "",
        "",
        *(f"{r[q]:.2f}x" if r[q] is not None else "-" for q in ("p50", "p90", "p99")),
        "",
        "",
        "",
        "",
    )
    console.print(t)
    f = report["flooded"]["flood"]
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(f["statuses"].items()))
    console.print(
        f"key A (wrk, {f['connections']} connections, {f['elapsed_s']:.1f} s): "
        f"{f['requests']} requests, {f['requests_per_s']:.0f} req/s; statuses {statuses} "
        f"({f['refused_share']:.1%} refused with 429); socket errors "
        f"{f['socket_errors'] or 'none'}; wrk used {f['client_cpu_s'] / f['elapsed_s']:.2f} cores"
    )
    console.print(
        "send lag: how late B's requests left against their schedule (the client's own "
        "delay, included in its latency). machine cores: CPU busy on the whole machine, "
        "server, B's client, wrk and anyone else together."
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    console = report_console(140)
    keys = {name: secrets.token_hex(16) for name in ("a", "b")}
    env = {
        **store_env(args.store, args.model),
        "TEXTSERVE_API_KEYS": ";".join(f"{name}:infer:{key}" for name, key in keys.items()),
        "TEXTSERVE_RATE_LIMIT_REQUESTS": json.dumps({"infer": args.rate_limit}),
        "TEXTSERVE_RATE_LIMIT_BURST_S": str(args.burst_s),
    }
    background = background_cores()
    if background > 0.2:
        console.print(
            f"[yellow]warning[/]: {background:.2f} cores busy before the run started; "
            "the figures will be noisy"
        )
    with ServerProcess(env) as server:
        alone, flooded = asyncio.run(measure(args, server, keys))
    report: dict[str, Any] = {
        "machine": {**machine_info(), "background_cores_at_start": background},
        "settings": {
            "model": args.model,
            "rate_limit_rps": args.rate_limit,
            "burst_s": args.burst_s,
            "probe_rps": args.probe_rps,
            "flood_connections": args.flood_connections,
            "duration_s": args.duration,
            # The secrets are random per run and not worth keeping.
            "env": {k: v for k, v in env.items() if k != "TEXTSERVE_API_KEYS"},
        },
        "alone": alone,
        "flooded": flooded,
        "ratio_flooded_over_alone": ratios(alone, flooded),
    }
    render(report, console)
    write_json(args.out, round_floats(report))
    console.print(f"saved {args.out}")


if __name__ == "__main__":
    main()

"""Overload soak: drive ``--factor`` times the saturation rate at /classify for a while.

First a closed loop of ``--concurrency`` clients measures the rate the server sustains
(saturation); then an open loop sends requests at ``factor`` times that rate, on schedule
whether or not earlier ones were answered, as real overload arrives. It reports the status
counts (only 200, 429 and 503 are expected), latency of accepted requests, and the
server's resident memory sampled every second (flat, or growing?). It asserts nothing.

The load comes from ``wrk`` when it is on PATH (``--client auto``): a C client that leaves the
server's cores nearly alone, driven as an open loop by ``wrk_open.lua`` (request n due at
n / rate; latency counted from when it was due). Otherwise, or with ``--client httpx``, an
asyncio + httpx loop in this process, which on a small machine takes cores from the server and
adds its own lag to the latencies it measures. Either way the client's CPU is reported.

    python -m bench.soak --store models --model sentiment --duration 60
    python -m bench.soak --url http://127.0.0.1:8000 --pid 1234   # a server already running
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import resource
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import ROOT, latency_summary, machine_info, round_floats, write_json
from bench.loadgen import choose_client
from bench.server import ServerProcess, store_env

OPEN_LOOP_SCRIPT = Path(__file__).with_name("wrk_open.lua")
# A request leaving this much after it was due means every connection was busy (or wrk lagged).
LATE_US = 10_000.0

TEXTS = ["the parcel never arrived and support ignores me", "great service, thanks!"] * 4


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MiB, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


class Tally:
    """Outcomes of the requests sent: status counts and latencies of the accepted ones."""

    def __init__(self) -> None:
        self.statuses: collections.Counter[str] = collections.Counter()
        self.accepted_s: list[float] = []

    async def send(self, client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        started = time.perf_counter()
        try:
            r = await client.post("/classify", json=body)
        except httpx.TransportError as exc:
            self.statuses[type(exc).__name__] += 1
            return
        self.statuses[str(r.status_code)] += 1
        if r.status_code == 200:
            self.accepted_s.append(time.perf_counter() - started)


async def server_p99_ms(client: httpx.AsyncClient) -> float | None:
    """p99 of /classify 200s as the server saw them (its histogram), upper bucket bound.

    The client's own figures include its queueing on a machine it shares with the server;
    this one is the time from request received to response sent.
    """
    from prometheus_client.parser import text_string_to_metric_families

    text = (await client.get("/metrics")).text
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "textserve_http_request_duration_seconds_bucket"
                and labels.get("route") == "/classify"
                and labels.get("status") == "200"
            ):
                buckets[float(labels["le"])] = sample.value
    if not buckets:
        return None
    total = buckets[max(buckets)]
    bound = next(le for le in sorted(buckets) if buckets[le] >= 0.99 * total)
    return bound * 1000.0


def server_errors(statuses: collections.Counter[str]) -> int:
    """5xx answers other than 503 (a retryable refusal): none is the goal under overload."""
    return sum(v for k, v in statuses.items() if k.startswith("5") and k != "503")


async def saturation_rps(
    client: httpx.AsyncClient, body: dict[str, Any], concurrency: int, seconds: float
) -> float:
    """Requests per second answered 200 by a closed loop of ``concurrency`` clients."""
    tally = Tally()
    stop = time.monotonic() + seconds

    async def loop() -> None:
        while time.monotonic() < stop:
            await tally.send(client, body)

    started = time.monotonic()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return len(tally.accepted_s) / (time.monotonic() - started)


async def soak(args: argparse.Namespace, url: str, pid: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"task": args.task, "texts": TEXTS[: args.texts]}
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    limits = httpx.Limits(max_connections=args.max_inflight, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=url, timeout=args.timeout, limits=limits, headers=headers
    ) as client:
        saturation = await saturation_rps(client, body, args.concurrency, args.calibrate)
        rate = saturation * args.factor
        print(f"saturation {saturation:.1f} req/s; soaking at {rate:.1f} req/s")
        tally, memory = Tally(), []
        tasks: set[asyncio.Task[None]] = set()
        skipped = 0
        started = time.monotonic()
        cpu0 = time.process_time()
        next_sample = started
        for n in range(int(rate * args.duration)):
            # Open loop: request n leaves at n / rate whatever happened to the others.
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if pid is not None and time.monotonic() >= next_sample:
                memory.append((round(time.monotonic() - started, 1), round(rss_mb(pid), 1)))
                next_sample += 1.0
            if len(tasks) >= args.max_inflight:
                skipped += 1  # the client's own cap; counted so the report is honest
                continue
            task = asyncio.create_task(tally.send(client, body))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
        # All of this process's CPU is the client's: cores it took from the server.
        client_cpu_cores = (time.process_time() - cpu0) / elapsed
        # Includes the calibration phase's requests: an upper bound on the soak's own p99.
        server_p99 = await server_p99_ms(client)
    return {
        "client": "httpx",
        "client_cpu_cores": client_cpu_cores,
        "saturation_rps": saturation,
        "offered_rps": rate,
        "duration_s": elapsed,
        "statuses": dict(tally.statuses),
        "client_skipped": skipped,
        "server_errors": server_errors(tally.statuses),
        "accepted_rps": len(tally.accepted_s) / elapsed,
        "accepted_latency_ms": latency_summary(tally.accepted_s),
        "server_p99_ms_bucket_bound": server_p99,
        **memory_summary(memory, args.duration),
    }


def memory_summary(memory: list[tuple[float, float]], duration_s: float) -> dict[str, Any]:
    """The RSS samples, and their range: first, last, max; and over the second half."""
    half = [mb for t, mb in memory if t >= duration_s / 2]
    return {
        "rss_mb": memory,
        "rss_first_last_max_mb": [memory[0][1], memory[-1][1], max(m for _, m in memory)]
        if memory
        else None,
        "rss_second_half_range_mb": [min(half), max(half)] if half else None,
    }


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class OpenWrk:
    """wrk driving ``wrk_open.lua``: an open loop at ``rate`` (0: closed loop), in its own
    process, so that this one can sample the server's memory meanwhile."""

    def __init__(
        self,
        url: str,
        body: dict[str, Any],
        rate: float,
        connections: int,
        duration_s: float,
        api_key: str | None,
        timeout_s: float,
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-soak-")
        body_path = Path(self._tmp.name) / "body.json"
        body_path.write_text(json.dumps(body))
        self._out = Path(self._tmp.name) / "out.json"
        self.command = [
            "wrk",
            "-t1",  # the rate is per wrk thread; one C thread is plenty at these rates
            f"-c{connections}",
            f"-d{max(1, round(duration_s))}s",
            "--timeout",
            f"{max(1, round(timeout_s))}s",
            "-s",
            str(OPEN_LOOP_SCRIPT),
            url,
            "--",
            str(body_path),
            str(self._out),
            f"{rate:.6f}",
            api_key or "",
        ]
        self.proc: subprocess.Popen[str] | None = None
        self._cpu0 = 0.0

    def start(self) -> None:
        self._cpu0 = _children_cpu_s()
        self.proc = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def collect(self) -> dict[str, Any]:
        """Wait for wrk; its statuses, latencies (of 200s, from due) and send lags, in s."""
        assert self.proc is not None
        stdout, stderr = self.proc.communicate()
        cpu_s = _children_cpu_s() - self._cpu0  # counted once waited for, as now
        try:
            if self.proc.returncode != 0 or not self._out.is_file():
                raise RuntimeError(f"wrk failed ({self.proc.returncode}):\n{stdout}\n{stderr}")
            report = json.loads(self._out.read_text())
        finally:
            self._tmp.cleanup()
        statuses: collections.Counter[str] = collections.Counter()
        latencies: list[float] = []
        lags: list[float] = []
        for thread in report["threads"]:
            statuses.update({k: int(v) for k, v in thread["statuses"].items()})
            latencies.extend(v / 1e6 for v in thread["latencies_us"])
            lags.extend(v / 1e6 for v in thread["send_lags_us"])
        # Sockets that failed or timed out: the client's view of errors, beside the statuses.
        statuses.update({f"socket_{k}": int(v) for k, v in report["errors"].items() if v})
        elapsed = report["duration_us"] / 1e6
        return {
            "elapsed_s": elapsed,
            "statuses": statuses,
            "latencies_s": latencies,
            "send_lags_s": lags,
            "cpu_cores": cpu_s / elapsed,
        }


async def soak_wrk(args: argparse.Namespace, url: str, pid: int | None) -> dict[str, Any]:
    """The same soak with wrk as the client: a closed loop to calibrate, then the open loop."""
    body: dict[str, Any] = {"task": args.task, "texts": TEXTS[: args.texts]}
    calibration = OpenWrk(
        url, body, 0.0, args.concurrency, args.calibrate, args.api_key, args.timeout
    )
    calibration.start()
    calibrated = await asyncio.to_thread(calibration.collect)
    saturation = calibrated["statuses"].get("200", 0) / calibrated["elapsed_s"]
    if saturation <= 0:
        raise SystemExit(f"no request succeeded while calibrating: {calibrated['statuses']}")
    rate = saturation * args.factor
    print(f"saturation {saturation:.1f} req/s; soaking at {rate:.1f} req/s (wrk open loop)")
    flood = OpenWrk(url, body, rate, args.max_inflight, args.duration, args.api_key, args.timeout)
    memory: list[tuple[float, float]] = []
    started = time.monotonic()
    flood.start()
    while flood.running():
        if pid is not None:
            memory.append((round(time.monotonic() - started, 1), round(rss_mb(pid), 1)))
        await asyncio.sleep(1.0)
    result = await asyncio.to_thread(flood.collect)
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    async with httpx.AsyncClient(base_url=url, timeout=args.timeout, headers=headers) as client:
        # Includes the calibration phase's requests: an upper bound on the soak's own p99.
        server_p99 = await server_p99_ms(client)
    statuses = result["statuses"]
    lags = result["send_lags_s"]
    return {
        "client": "wrk",
        "client_cpu_cores": result["cpu_cores"],
        "saturation_rps": saturation,
        "offered_rps": rate,
        "duration_s": result["elapsed_s"],
        "statuses": dict(statuses),
        # wrk never skips: a request due while every connection is busy leaves late instead,
        # timed from when it was due. How many, and how late, says how open the loop was.
        "client_skipped": None,
        "late_sends": sum(1 for lag in lags if lag * 1e6 > LATE_US),
        "send_lag_ms": latency_summary(lags),
        "server_errors": server_errors(statuses),
        "accepted_rps": statuses.get("200", 0) / result["elapsed_s"],
        "accepted_latency_ms": latency_summary(result["latencies_s"]),
        "server_p99_ms_bucket_bound": server_p99,
        **memory_summary(memory, args.duration),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="Drive this running server instead of starting one.")
    parser.add_argument("--pid", type=int, help="The running server's pid, for its memory.")
    parser.add_argument("--store", type=Path, default=ROOT / "models", help="Model store.")
    parser.add_argument("--model", default="sentiment", help="Model to serve when starting one.")
    parser.add_argument("--task", default="sentiment", help="The /classify task to call.")
    parser.add_argument("--texts", type=int, default=8, help="Texts per request (1-8).")
    parser.add_argument("--duration", type=float, default=60.0, help="Soak seconds.")
    parser.add_argument("--factor", type=float, default=2.0, help="Times the saturation rate.")
    parser.add_argument("--calibrate", type=float, default=10.0, help="Saturation seconds.")
    parser.add_argument("--concurrency", type=int, default=32, help="Clients when calibrating.")
    parser.add_argument(
        "--max-inflight",
        type=int,
        default=1000,
        help="Client's own cap on requests in flight (wrk: its connections).",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="Per-request timeout.")
    parser.add_argument("--api-key", help="Sent as X-API-Key.")
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "httpx"),
        default="auto",
        help="Load generator: wrk (open loop via wrk_open.lua) when on PATH, else httpx.",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    args = parser.parse_args()
    args.client = choose_client(args.client)
    run = soak_wrk if args.client == "wrk" else soak
    if args.url:
        result = asyncio.run(run(args, args.url, args.pid))
    else:
        with ServerProcess(store_env(args.store, args.model)) as server:
            result = asyncio.run(run(args, server.url, server.pid))
    payload = {"machine": machine_info(), "args": vars(args), **result}
    write_json(args.out, round_floats(payload, 2))
    summary = {k: v for k, v in payload.items() if k not in ("machine", "args", "rss_mb")}
    print(round_floats(summary, 2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()

"""Closed-loop load against POST /classify: a fixed number of concurrent connections, each
sending its next request as soon as the last one is answered, for a fixed duration.

``wrk`` (C, one thread) is preferred when it is on PATH because it leaves the server's cores
nearly alone; an asyncio + httpx client is the fallback. Both report the same fields.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import resource
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

WRK_SCRIPT = Path(__file__).with_name("wrk_classify.lua")
TIMING_HEADERS = {
    "total": "x-total-time",
    "queue": "x-queue-time",
    "tokenize": "x-tokenization-time",
    "inference": "x-inference-time",
}


# Answers after the first needed before the steady-state rate is taken (LoadResult).
MIN_STEADY_ANSWERS = 10


@dataclass
class LoadResult:
    """What one load run measured; latencies are of successful (200) requests only."""

    client: str
    concurrency: int
    elapsed_s: float
    ok: int
    latencies_s: list[float]
    errors: dict[str, int]
    client_cpu_s: float
    # Means of the service's own timing headers over successful requests, in ms.
    served_ms: dict[str, float] = field(default_factory=dict)
    # Successful answers after the first one, and the seconds from the first to the last.
    steady_ok: int = 0
    steady_s: float = 0.0

    @property
    def steady_rate(self) -> float:
        """Successful requests per second between the first answer and the last.

        ``ok / elapsed_s`` undercounts a closed loop cut off after a fixed time: the requests
        in flight at the end are dropped half done (on average half a request per connection),
        and no answer comes before the pipeline has filled. A 2-second segment of 240 ms
        answers (bench/classify.py, 32-text requests) read 18 % low that way. Between the
        first and the last answer the loop is in its steady state; the rate there is the
        throughput.
        """
        if self.steady_ok >= MIN_STEADY_ANSWERS and self.steady_s > 0:
            return self.steady_ok / self.steady_s
        # A handful of answers (a server queueing seconds deep) spans too little to say.
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def choose_client(wanted: str) -> str:
    if wanted == "auto":
        return "wrk" if wrk_available() else "httpx"
    if wanted == "wrk" and not wrk_available():
        raise SystemExit("wrk is not on PATH (Debian/Ubuntu: apt-get install -y wrk)")
    return wanted


def run_load(
    client: str, url: str, bodies: list[bytes], concurrency: int, duration_s: float
) -> LoadResult:
    if client == "wrk":
        return run_wrk(url, bodies, concurrency, duration_s)
    return run_httpx(url, bodies, concurrency, duration_s)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    url: str, bodies: list[bytes], concurrency: int, duration_s: float, threads: int = 1
) -> LoadResult:
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        bodies_path = Path(tmp) / "bodies.jsonl"
        bodies_path.write_bytes(b"\n".join(bodies) + b"\n")
        out_path = Path(tmp) / "out.json"
        command = [
            "wrk",
            f"-t{min(threads, concurrency)}",
            f"-c{concurrency}",
            f"-d{max(1, round(duration_s))}s",
            "--timeout",
            "60s",
            "-s",
            str(WRK_SCRIPT),
            url,
            "--",
            str(bodies_path),
            str(out_path),
        ]
        cpu0 = _children_cpu_s()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        cpu = _children_cpu_s() - cpu0
        if done.returncode != 0 or not out_path.is_file():
            raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        report = json.loads(out_path.read_text())
    return wrk_result(report, concurrency, cpu)


def wrk_result(report: dict[str, Any], concurrency: int, client_cpu_s: float) -> LoadResult:
    """A LoadResult from the JSON report bench/wrk_classify.lua writes."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    served: Counter[str] = Counter()
    firsts, lasts = [], []
    for thread in report["threads"]:
        latencies.extend(v / 1e6 for v in thread["latencies_us"])
        statuses.update({k: int(v) for k, v in thread["statuses"].items()})
        served.update(thread["served_ms"])
        if thread.get("answered_us", {}).get("first"):
            firsts.append(thread["answered_us"]["first"])
            lasts.append(thread["answered_us"]["last"])
    errors = {k: int(v) for k, v in statuses.items() if k != "200"}
    errors.update({k: int(v) for k, v in report["errors"].items() if v})
    n = served.pop("n", 0)
    return LoadResult(
        client="wrk",
        concurrency=concurrency,
        elapsed_s=report["duration_us"] / 1e6,
        ok=statuses.get("200", 0),
        latencies_s=latencies,
        errors=errors,
        client_cpu_s=client_cpu_s,
        served_ms={k: v / n for k, v in served.items()} if n else {},
        steady_ok=max(0, statuses.get("200", 0) - 1),
        steady_s=(max(lasts) - min(firsts)) / 1e6 if firsts else 0.0,
    )


def run_httpx(url: str, bodies: list[bytes], concurrency: int, duration_s: float) -> LoadResult:
    cpu0 = time.process_time()
    try:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result = runner.run(_httpx_load(url, bodies, concurrency, duration_s))
    except ImportError:
        result = asyncio.run(_httpx_load(url, bodies, concurrency, duration_s))
    result.client_cpu_s = time.process_time() - cpu0
    return result


async def _httpx_load(
    url: str, bodies: list[bytes], concurrency: int, duration_s: float
) -> LoadResult:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    served: dict[str, float] = dict.fromkeys(TIMING_HEADERS, 0.0)
    cursor = itertools.count()
    answered = {"first": float("inf"), "last": float("-inf")}  # successful answers' times
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0) as client:
        start = time.perf_counter()
        end = start + duration_s

        async def worker() -> None:
            while time.perf_counter() < end:
                body = bodies[next(cursor) % len(bodies)]
                t0 = time.perf_counter()
                try:
                    response = await client.post("/classify", content=body, headers=headers)
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                    continue
                t1 = time.perf_counter()
                statuses[str(response.status_code)] += 1
                if response.status_code == 200:
                    latencies.append(t1 - t0)
                    answered["first"] = min(answered["first"], t1)
                    answered["last"] = max(answered["last"], t1)
                    for key, name in TIMING_HEADERS.items():
                        served[key] += float(response.headers.get(name, 0.0))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    ok = statuses.pop("200", 0)
    return LoadResult(
        client="httpx",
        concurrency=concurrency,
        elapsed_s=elapsed,
        ok=ok,
        latencies_s=latencies,
        errors=dict(statuses),
        client_cpu_s=0.0,
        served_ms={k: v / ok for k, v in served.items()} if ok else {},
        steady_ok=max(0, ok - 1),
        steady_s=max(0.0, answered["last"] - answered["first"]),
    )

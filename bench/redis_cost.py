"""The cost of shared state on the hot path: /classify and /reply with and without Redis.

One run starts the service twice from the same store, first with the embedded defaults
(in-process rate limits and conversations), then with ``TEXTSERVE_REDIS_URL`` pointing at a
redis-server on loopback, and drives each endpoint with 1 and 64 closed-loop clients.
Every request carries an API key, so the rate limiter is charged (limits set too high to
refuse anything); every /reply names its client's conversation, so its kept turns are read
and written. The difference between the two columns is what Redis costs per request
(docs/scale-out.md; the target: under 0.3 ms for rate limiting).

    python bench/redis_cost.py --store models                  # the default models
    python bench/redis_cost.py --tiny --duration 1 --clients 1,4  # a quick check of the bench
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
from rich.console import Console
from rich.table import Table

from bench.common import ROOT, latency_summary, machine_info, round_floats, write_json
from bench.server import ServerProcess

KEY = "bench-key-0123456789abcdef"
UNLIMITED = '{"infer": 1000000000}'
TEXTS = [
    "where is my parcel?",
    "I want to return and send back my shoes",
    "and how long will that take?",
    "the app crashes when I log in",
    "thanks, that was helpful",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--store", type=Path, default=ROOT / "models", help="model store to serve")
    p.add_argument("--classifier", default="sentiment", help="model for /classify")
    p.add_argument("--reply-model", default="reply", help="model for /reply")
    p.add_argument("--tiny", action="store_true", help="serve tiny test models from a temp store")
    p.add_argument("--clients", default="1,64", help="concurrencies, comma-separated")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each")
    p.add_argument("--redis-url", help="an existing Redis (default: start a redis-server)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "redis_cost.json")
    return p.parse_args(argv)


def tiny_store(folder: Path) -> Path:
    """Tiny real models (tests/support) for checking the bench itself in seconds."""
    from app.store.versions import ModelStore
    from tests.support.tiny_model import publish_tiny_classifier
    from tests.support.tiny_reply_model import publish_tiny_reply_model

    store = ModelStore(folder / "models")
    publish_tiny_classifier(store, "sentiment")
    publish_tiny_reply_model(store, "reply")
    return store.root


def bodies(endpoint: str, args: argparse.Namespace, client: int) -> list[dict[str, Any]]:
    if endpoint == "/classify":
        return [{"model": args.classifier, "text": t} for t in TEXTS]
    # Each client holds one conversation: its turns are read before and written after.
    cid = f"bench-{client}"
    return [{"model": args.reply_model, "message": t, "conversation_id": cid} for t in TEXTS]


async def closed_loop(
    url: str, endpoint: str, args: argparse.Namespace, clients: int, duration_s: float
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    headers = {"X-API-Key": KEY}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0) as http:
        end = time.perf_counter() + duration_s

        async def client(i: int) -> None:
            for body in itertools.cycle(bodies(endpoint, args, i)):
                if time.perf_counter() >= end:
                    return
                t0 = time.perf_counter()
                try:
                    r = await http.post(endpoint, json=body, headers=headers)
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                    continue
                statuses[str(r.status_code)] += 1
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    ok = statuses.pop("200", 0)
    return {
        "requests_per_s": ok / elapsed if elapsed > 0 else 0.0,
        "latency_ms": latency_summary(latencies),
        "errors": dict(statuses),
    }


def measure(env: dict[str, str], args: argparse.Namespace, concurrencies: list[int]) -> list[Any]:
    rows = []
    with ServerProcess(env) as server:
        for endpoint in ("/classify", "/reply"):
            for clients in concurrencies:
                asyncio.run(closed_loop(server.url, endpoint, args, clients, args.warmup))
                result = asyncio.run(
                    closed_loop(server.url, endpoint, args, clients, args.duration)
                )
                rows.append({"endpoint": endpoint, "clients": clients, **result})
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    concurrencies = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        store = tiny_store(Path(tmp)) if args.tiny else args.store.resolve()
        base = {
            "TEXTSERVE_MODEL_STORE": str(store),
            "TEXTSERVE_MODELS": f"{args.classifier},{args.reply_model}",
            "TEXTSERVE_API_KEYS": f"bench:infer:{KEY}",
            "TEXTSERVE_RATE_LIMIT_REQUESTS": UNLIMITED,
            "TEXTSERVE_RATE_LIMIT_TEXTS": UNLIMITED,
            "TEXTSERVE_DATA_DIR": str(Path(tmp) / "var"),
            "TEXTSERVE_JOB_WORKER": "false",
            "TEXTSERVE_LOG_LEVEL": "warning",
        }
        redis = None
        if args.redis_url is None:
            from tests.support.redis_server import RedisServer

            redis = RedisServer(Path(tmp) / "redis").start()
        url = args.redis_url or (redis.url if redis else "")
        try:
            embedded = measure(base, args, concurrencies)
            shared = measure({**base, "TEXTSERVE_REDIS_URL": url}, args, concurrencies)
        finally:
            if redis is not None:
                redis.stop()
    return {
        "machine": machine_info(),
        "settings": {"duration_s": args.duration, "tiny": args.tiny, "store": str(args.store)},
        "embedded": embedded,
        "redis": shared,
    }


def render(report: dict[str, Any], console: Console) -> None:
    table = Table(title="Redis on the hot path: embedded vs TEXTSERVE_REDIS_URL")
    for column in ("endpoint", "clients", "embedded req/s", "p50 ms", "p99 ms", "redis req/s",
                   "p50 ms", "p99 ms", "Δ p50 ms", "errors"):  # fmt: skip
        table.add_column(column, justify="right")
    for local, shared in zip(report["embedded"], report["redis"], strict=True):
        lo, sh = local["latency_ms"], shared["latency_ms"]
        errors = {**local["errors"], **{f"redis {k}": v for k, v in shared["errors"].items()}}
        table.add_row(
            local["endpoint"],
            str(local["clients"]),
            f"{local['requests_per_s']:.0f}",
            f"{lo.get('p50', float('nan')):.2f}",
            f"{lo.get('p99', float('nan')):.2f}",
            f"{shared['requests_per_s']:.0f}",
            f"{sh.get('p50', float('nan')):.2f}",
            f"{sh.get('p99', float('nan')):.2f}",
            f"{sh.get('p50', float('nan')) - lo.get('p50', float('nan')):+.2f}",
            str(errors or ""),
        )
    console.print(table)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = round_floats(run(args))
    render(report, Console(width=160))
    write_json(args.out, report)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()

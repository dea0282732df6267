"""Where a single-text request's CPU goes, layer by layer (performance target 5).

The same texts at the same concurrency go through four layers, each the one before plus what a
real request adds; the CPU per text of each is measured in one run, so the differences between
adjacent layers say what each addition costs:

  limit    ``run_direct`` on length-sorted batches of 32 (as in bench/classify.py): the model's
           own CPU per text, tokenization and padding included
  batcher  ``engine.infer`` from ``--concurrency`` asyncio tasks, one text each: + the queue,
           scheduling, thread hand-offs, scatter, and runs smaller and less well sorted than
           the limit's
  app      the ASGI app called directly (every middleware, the lean endpoint, validation, the
           answer and its JSON) from as many tasks, one body each: + the ASGI layers
  server   the service on a loopback port under the same concurrency from wrk (or httpx): +
           HTTP parsing, the transport and the socket system calls

The app layer's own parts are also timed alone on the same bodies (pydantic validation, the
answer's JSON encoding), so the rest of it is what the middleware and the routing cost.

    python bench/http_path.py --data ../shared/data/sst2/dev.tsv --store var/bench-store \
        --model sst2
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from app.api.middleware import Message
from app.api.schemas import CLASSIFY_RESPONSE, ClassifyRequest, ClassifyResponse, ClassifyResult
from app.config import Settings
from app.main import create_app
from app.runtime.engine import InferenceEngine
from app.service import Services, engine_layout
from bench.classify import BATCH, time_batches, token_lengths
from bench.common import (
    ROOT,
    add_served_texts_args,
    load_texts,
    machine_info,
    report_console,
    round_floats,
    thread_cpu_by_role,
    thread_cpu_s,
    tree_cpu_s,
    write_json,
)
from bench.loadgen import choose_client, run_load
from bench.server import ServerProcess, store_env, wait_idle


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_served_texts_args(p)
    p.add_argument("--concurrency", type=int, default=64, help="requests in flight at once")
    p.add_argument("--requests", type=int, default=3000, help="requests per in-process layer")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load on the server")
    p.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto")
    p.add_argument("--skip-server", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "http_path.json")
    return p.parse_args(argv)


def _cpu_run(n: int, fn: Callable[[], object]) -> float:
    """CPU of this process (all its threads) per call, in ms, over ``n`` calls."""
    fn()  # the first call pays for lazy set-up
    t0 = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t0) * 1000 / n


async def _closed_loop(
    n: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> dict[str, float]:
    """``n`` calls of ``one(i)`` from ``concurrency`` tasks; CPU and wall per call."""
    counter = itertools.count()

    async def worker() -> None:
        while (i := next(counter)) < n:
            await one(i)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, 16))))  # warm
    counter = itertools.count()
    cpu0, loop0, t0 = time.process_time(), time.thread_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    return {
        "cpu_ms_per_text": (time.process_time() - cpu0) * 1000 / n,
        # This thread is the event loop: what the ASGI layers cost it, per request.
        "loop_cpu_ms_per_text": (time.thread_time() - loop0) * 1000 / n,
        "texts_per_s": n / wall,
    }


def _scope(body: bytes) -> dict[str, Any]:
    """An HTTP scope as uvicorn builds it for ``POST /classify``."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/classify",
        "raw_path": b"/classify",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _in_process(args: argparse.Namespace, texts: list[str]) -> dict[str, Any]:
    settings = Settings()
    app = create_app(settings)
    services: Services = app.state.services
    bodies = [json.dumps({"model": args.model, "text": t}).encode() for t in texts]
    layers: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        await asyncio.get_running_loop().run_in_executor(None, services.wait_loaded, 60.0)
        engine: InferenceEngine = services.registry.get(args.model)
        streams = engine_layout(settings).streams  # the server's own layout

        # limit: the model alone, on length-sorted batches of 32.
        lengths = token_lengths(engine, texts)
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        batches = [[texts[i] for i in order[j : j + BATCH]] for j in range(0, len(order), BATCH)]
        limit = time_batches(engine, batches, 60.0, streams)
        layers["limit"] = {
            "cpu_ms_per_text": limit["cpu_ms_per_text"],
            "texts_per_s": limit["texts_per_s"],
        }

        async def via_batcher(i: int) -> None:
            await engine.infer([texts[i % len(texts)]], 30.0)

        layers["batcher"] = await _closed_loop(args.requests, args.concurrency, via_batcher)

        failures: list[int] = []

        async def via_app(i: int) -> None:
            body = bodies[i % len(bodies)]
            sent = False

            async def receive() -> Message:
                nonlocal sent
                if sent:  # the answer is written; a real server would now see a disconnect
                    await asyncio.Event().wait()
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: Message) -> None:
                if message["type"] == "http.response.start" and message["status"] != 200:
                    failures.append(message["status"])

            await app(_scope(body), receive, send)

        layers["app"] = await _closed_loop(args.requests, args.concurrency, via_app)
        if failures:
            raise SystemExit(f"the app answered {failures[0]} ({len(failures)} failures)")

        # The app layer's own parts, alone, on the same bodies.
        sample = bodies[: min(len(bodies), 500)]
        it = itertools.cycle(sample)
        validate = _cpu_run(len(sample) * 4, lambda: ClassifyRequest.model_validate_json(next(it)))
        label, score = engine.manifest.labels[0], 0.9876543
        item = ClassifyResult(label=label, score=score, truncated=False)
        payload = ClassifyResponse(
            model=args.model,
            version=engine.version,
            label=label,
            score=score,
            truncated=False,
            results=[item],
        )
        # The serializer both /classify paths answer with (app/api/schemas.py).
        encode = _cpu_run(4000, lambda: CLASSIFY_RESPONSE.dump_json(payload))
        layers["parts"] = {"validate_ms": validate, "encode_answer_ms": encode}
    return layers


def _server(args: argparse.Namespace, env: dict[str, str], texts: list[str]) -> dict[str, Any]:
    client = choose_client(args.client)
    bodies = [json.dumps({"model": args.model, "text": t}).encode() for t in texts]
    with ServerProcess(env) as server:
        run_load(client, server.url, bodies, args.concurrency, 2.0)
        wait_idle(server.url)
        cpu0, loop0 = tree_cpu_s(server.pid), thread_cpu_s(server.pid, server.pid)
        roles0 = thread_cpu_by_role(server.pid)
        result = run_load(client, server.url, bodies, args.concurrency, args.duration)
        cpu = tree_cpu_s(server.pid) - cpu0
        loop = thread_cpu_s(server.pid, server.pid) - loop0
        roles = thread_cpu_by_role(server.pid)
    ok = max(1, result.ok)
    return {
        "client": client,
        "cpu_ms_per_text": cpu * 1000 / ok,
        "loop_cpu_ms_per_text": loop * 1000 / ok,
        # Where the server's CPU went, by thread: the runs, the scheduler, the event loop...
        "threads_ms_per_text": {
            role: (seconds - roles0.get(role, 0.0)) * 1000 / ok for role, seconds in roles.items()
        },
        "texts_per_s": result.steady_rate,
        "errors": result.errors,
    }


WHAT = {
    "limit": "the model: tokenize, pad, run (sorted batches of 32)",
    "batcher": "queue, scheduling, thread hand-offs, scatter; smaller, less sorted runs",
    "app": "ASGI middleware, routing, validation, answer, JSON",
    "server": "uvicorn: HTTP parsing, transport, socket system calls",
}


THREADS = {
    "ts-run": "model runs of the streams (one thread each, ORT inside)",
    "ts-ort": "ONNX Runtime's own pool threads (the all-cores solo session)",
    "ts-scheduler": "the batcher: tokenizer calls, batch shaping, scatter",
    "ts-tokenize": "the tokenizer's worker pool (Rust)",
    "event loop": "uvicorn, middleware, validation, answers; lone requests run inline here",
    "ts-log-flush": "writing the buffered log lines",
}


def render(report: dict[str, Any], console: Console) -> None:
    layers = report["layers"]
    t = Table(title=f"CPU per single-text request at {report['concurrency']} in flight")
    cols = ("layer", "texts/s", "CPU ms/text", "event loop ms", "loop added", "the addition")
    for col in cols:
        t.add_column(col, justify="left" if col in ("layer", "the addition") else "right")
    below = None
    for name in ("limit", "batcher", "app", "server"):
        if name not in layers:
            continue
        layer = layers[name]
        loop = layer.get("loop_cpu_ms_per_text")
        added = "" if below is None or loop is None else f"{loop - below:+.3f}"
        t.add_row(
            name,
            f"{layer['texts_per_s']:.1f}",
            f"{layer['cpu_ms_per_text']:.3f}",
            "" if loop is None else f"{loop:.3f}",
            added,
            WHAT[name],
        )
        below = loop
    console.print(t)
    console.print(
        "CPU ms/text counts every thread, so it moves with how well each layer's runs were "
        "batched; the event loop's CPU is the request path alone."
    )
    parts = layers["parts"]
    app_added = layers["app"]["loop_cpu_ms_per_text"] - layers["batcher"]["loop_cpu_ms_per_text"]
    rest = app_added - parts["validate_ms"] - parts["encode_answer_ms"]
    console.print(
        f"app layer on the loop: validation {parts['validate_ms']:.3f} ms, answer JSON "
        f"{parts['encode_answer_ms']:.3f} ms, the rest (middleware, routing, the answer's "
        f"dicts and headers, metrics) {rest:.3f} ms"
    )
    if "server" in layers:
        by_thread = layers["server"]["threads_ms_per_text"]
        t = Table(title="the server's CPU per text, by thread")
        for col in ("thread", "ms/text", "what runs there"):
            t.add_column(col, justify="right" if col == "ms/text" else "left")
        for role, ms in sorted(by_thread.items(), key=lambda kv: -kv[1]):
            if ms >= 0.001:
                t.add_row(role, f"{ms:.3f}", THREADS.get(role, "other (job dispatcher, watcher)"))
        console.print(t)
        total = layers["server"]["cpu_ms_per_text"] - layers["limit"]["cpu_ms_per_text"]
        console.print(f"server over the model's own CPU (target 5, goal <= 1.5 ms): {total:.3f} ms")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    console = report_console()
    env = store_env(args.store, args.model)
    os.environ.update(env)
    unique = load_texts(args.data, args.text_column)
    if not unique:
        raise SystemExit(f"no texts in {args.data}")
    texts = list(itertools.islice(itertools.cycle(unique), max(args.requests, BATCH)))
    layers = asyncio.run(_in_process(args, texts))
    if not args.skip_server:
        layers["server"] = _server(args, env, unique)
    report = {
        "machine": machine_info(),
        "data": {"path": str(args.data), "unique_texts": len(unique)},
        "model": args.model,
        "concurrency": args.concurrency,
        "layers": layers,
    }
    render(report, console)
    write_json(args.out, round_floats(report))
    console.print(f"saved {args.out}")


if __name__ == "__main__":
    main()

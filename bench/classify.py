"""Throughput and latency of ``POST /classify`` against the in-process ONNX Runtime limit.

One run, same texts, same thread settings:

(a) the limit: ``InferenceEngine.run_direct`` (tokenization included) on batches of 32
    length-sorted texts; for reference also batches in arrival order and one text at a time;
(b) the server, started here as a subprocess, under closed-loop load of single-text requests
    at each concurrency (wrk when on PATH, else asyncio + httpx);
(c) the server with client-batched requests (``texts`` of 32).

Prints a table and writes every figure to JSON. A benchmark, not a test: nothing is asserted
about timings.

    python bench/classify.py --data ../shared/data/sst2/dev.tsv
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from rich.console import Console
from rich.table import Table

from app.config import Settings
from app.metrics import Metrics
from app.runtime.engine import InferenceEngine
from app.runtime.tokenizer import TextTokenizer
from app.service import engine_config, engine_layout
from app.store.versions import ModelStore
from bench.charts import write_charts
from bench.common import (
    ROOT,
    add_served_texts_args,
    background_cores,
    latency_summary,
    load_texts,
    machine_cpu,
    machine_info,
    report_console,
    round_floats,
    thread_cpu_s,
    tree_cpu_s,
    tree_rss_mb,
    write_json,
)
from bench.loadgen import LoadResult, choose_client, run_load
from bench.server import ServerProcess, store_env, wait_idle, wait_quiet
from bench.targets import ratio_to_limit, render_targets, targets

BATCH = 32


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_served_texts_args(p)
    p.add_argument("--n", type=int, default=2000, help="texts for the in-process runs (cycled)")
    p.add_argument(
        "--single-n", type=int, default=0, help="texts for the one-at-a-time run (0: all)"
    )
    p.add_argument(
        "--direct-max-s", type=float, default=20.0, help="time cap of each in-process run"
    )
    p.add_argument("--duration", type=float, default=12.0, help="seconds of load per level")
    p.add_argument("--warmup", type=float, default=2.0, help="unrecorded load before each level")
    p.add_argument("--concurrency", default="1,8,32,64", help="single-text request concurrencies")
    p.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the naive FastAPI + transformers server (bench/naive_server.py)",
    )
    p.add_argument("--baseline-concurrency", default="1,64")
    p.add_argument(
        "--batch-concurrency", default="4", help="concurrencies of 32-text requests ('' skips)"
    )
    p.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto")
    p.add_argument("--server-cmd", choices=("auto", "cli", "uvicorn"), default="auto")
    p.add_argument("--intra-op-threads", type=int, help="TEXTSERVE_INTRA_OP_THREADS")
    p.add_argument("--max-batch-size", type=int, help="TEXTSERVE_MAX_BATCH_SIZE")
    p.add_argument("--max-wait-ms", type=float, help="TEXTSERVE_MAX_WAIT_MS")
    p.add_argument(
        "--paired-s",
        type=float,
        default=2.0,
        help="seconds of in-process limit measured again before each server level (0: none)",
    )
    p.add_argument(
        "--segments",
        type=int,
        default=6,
        help="with --paired-s: each level's duration in this many parts, a probe before each",
    )
    p.add_argument("--skip-direct", action="store_true")
    p.add_argument("--skip-server", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "classify.json")
    return p.parse_args(argv)


def _ints(csv: str) -> list[int]:
    return [int(x) for x in csv.split(",") if x.strip()]


def settings_env(args: argparse.Namespace) -> dict[str, str]:
    """The ``TEXTSERVE_*`` variables that both the in-process engine and the server read."""
    env = store_env(args.store, args.model)
    for flag, var in (
        ("intra_op_threads", "TEXTSERVE_INTRA_OP_THREADS"),
        ("max_batch_size", "TEXTSERVE_MAX_BATCH_SIZE"),
        ("max_wait_ms", "TEXTSERVE_MAX_WAIT_MS"),
    ):
        if getattr(args, flag) is not None:
            env[var] = str(getattr(args, flag))
    return env


# -- (a) in-process limit ----------------------------------------------------------------
def time_batches(
    engine: InferenceEngine, batches: list[list[str]], max_s: float, streams: int = 1
) -> dict[str, Any]:
    # One run at a time goes to the all-cores session where there is one, as a lone
    # request does in the server; several at a time share the cores as the server's do.
    solo = streams == 1
    engine.run_direct(batches[0], solo)  # this shape's first run is not timed
    per_run: list[float] = []
    sizes: list[int] = []
    work = iter(batches)
    lock = threading.Lock()
    busy0, _ = machine_cpu()
    cpu0 = time.process_time()
    t0 = time.perf_counter()

    def stream() -> None:
        # As many of these run at once as the server keeps runs in flight (streams), on the
        # same session with the same thread settings: the limit of that layout.
        while time.perf_counter() - t0 <= max_s:
            with lock:
                batch = next(work, None)
            if batch is None:
                return
            t = time.perf_counter()
            engine.run_direct(batch, solo)
            with lock:
                per_run.append(time.perf_counter() - t)
                sizes.append(len(batch))

    threads = [threading.Thread(target=stream) for _ in range(max(1, streams))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    texts, runs = sum(sizes), len(sizes)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    busy = machine_cpu()[0] - busy0
    return {
        "texts": texts,
        "batches": runs,
        "seconds": seconds,
        "texts_per_s": texts / seconds,
        "ms_per_batch": seconds * 1000 / runs,
        "cores": cpu / seconds,
        "cpu_ms_per_text": cpu * 1000 / texts,
        "other_cores": max(0.0, (busy - cpu) / seconds),
        # Per call: for one text at a time, the raw latency the server's p50 is compared with.
        "latency_ms": latency_summary(per_run),
    }


def _padding(batches: list[list[int]]) -> dict[str, float]:
    real = sum(sum(b) for b in batches)
    padded = sum(len(b) * max(b) for b in batches)
    return {"real_tokens": real, "padded_tokens": padded, "pad_efficiency": real / padded}


class Limit:
    """The in-process runs, on one engine kept loaded for the whole benchmark.

    Besides the full runs (``runs``), ``paired`` measures the limit again for a few seconds
    right before each server level: on a shared VM the speed of the same run drifts by tens
    of percent over minutes, so each level is compared with the limit measured beside it.
    """

    def __init__(
        self, settings: Settings, model: str, texts: list[str], args: argparse.Namespace
    ) -> None:
        store = ModelStore(settings.model_store)
        version = store.active_version(model)
        if version is None:
            raise SystemExit(f"{model!r} has no active version in {settings.model_store}")
        manifest = store.verify(model, version)
        folder = store.version_dir(model, version)
        config = engine_config(settings)
        self.streams = config.streams
        self.engine = InferenceEngine(folder, manifest, config, Metrics())
        self.engine.warmup()
        self.model = {
            "name": model,
            "version": version,
            "labels": manifest.labels,
            "inputs": manifest.inputs,
            "max_seq_length": manifest.max_seq_length,
            "provider": self.engine.provider,
            "variant": self.engine.variant,
            "folder": str(folder),
        }
        self.lengths = token_lengths(self.engine, texts)
        order = sorted(range(len(texts)), key=self.lengths.__getitem__)
        sorted_idx = [order[i : i + BATCH] for i in range(0, len(order), BATCH)]
        # Batches are formed in length order but run in random order, so a run cut short by
        # its time cap still samples every length.
        random.Random(args.seed).shuffle(sorted_idx)
        arrival_idx = [
            list(range(i, min(i + BATCH, len(texts)))) for i in range(0, len(texts), BATCH)
        ]
        # Every distinct text once: the texts the server's concurrency-1 run cycles through.
        unique = len(dict.fromkeys(texts))
        single_idx = [[i] for i in range(min(args.single_n or unique, unique))]
        self.shapes = {"sorted_32": sorted_idx, "arrival_32": arrival_idx, "single": single_idx}
        self.texts = texts

    def _run(self, name: str, max_s: float) -> dict[str, Any]:
        idx = self.shapes[name]
        batches = [[self.texts[i] for i in b] for b in idx]
        # One text at a time means one run at a time: the latency a lone caller sees.
        streams = 1 if name == "single" else self.streams
        run = time_batches(self.engine, batches, max_s, streams)
        run.update(_padding([[self.lengths[i] for i in b] for b in idx[: int(run["batches"])]]))
        return run

    def runs(self, max_s: float) -> dict[str, Any]:
        return {
            "model": self.model,
            "mean_tokens": sum(self.lengths) / len(self.lengths),
            "runs": {name: self._run(name, max_s) for name in self.shapes},
        }

    def paired(self, seconds: float, single: bool) -> dict[str, float]:
        """The limit (and, for a lone-client level, the raw call's p50) measured just now."""
        run = self._run("sorted_32", seconds)
        out = {
            "texts": run["texts"],
            "seconds": run["seconds"],
            "texts_per_s": run["texts_per_s"],
            "cpu_ms_per_text": run["cpu_ms_per_text"],
        }
        if single:
            out["single_p50_ms"] = self._run("single", seconds)["latency_ms"]["p50"]
        return out

    def close(self) -> None:
        self.engine.close(1.0)


def token_lengths(engine: InferenceEngine, texts: list[str]) -> list[int]:
    manifest = engine.manifest
    tokenizer = TextTokenizer(
        engine.folder / manifest.tokenizer_file, manifest.max_seq_length, manifest.pad_token_id
    )
    return [len(e.ids) for e in tokenizer.encode(texts)]


# -- (b), (c) the server ---------------------------------------------------------------------
def scrape_metrics(client: httpx.Client, url: str) -> dict[str, float]:
    """Every sample of /metrics, summed over label sets, by sample name."""
    totals: dict[str, float] = defaultdict(float)
    for line in client.get(f"{url}/metrics").text.splitlines():
        if line and not line.startswith("#"):
            name_labels, _, value = line.rpartition(" ")
            totals[name_labels.split("{", 1)[0]] += float(value)
    return totals


def _batcher_stats(
    before: dict[str, float], after: dict[str, float], elapsed: float
) -> dict[str, float]:
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    runs = delta("textserve_batch_size_texts_count")
    queued = delta("textserve_queue_wait_seconds_count")
    return {
        "model_runs": runs,
        "mean_batch_texts": delta("textserve_batch_size_texts_sum") / runs if runs else 0.0,
        "mean_batch_padded_tokens": delta("textserve_batch_size_tokens_sum") / runs
        if runs
        else 0.0,
        "mean_run_ms": delta("textserve_inference_seconds_sum") * 1000 / runs if runs else 0.0,
        "mean_queue_wait_ms": delta("textserve_queue_wait_seconds_sum") * 1000 / queued
        if queued
        else 0.0,
        # Share of wall time ONNX Runtime was running: below 1, the model waited on the rest.
        "model_busy": delta("textserve_inference_seconds_sum") / elapsed,
        "rejections": delta("textserve_rejections_total"),
    }


def check_answers(client: httpx.Client, url: str, model: str, labels: list[str]) -> None:
    """Refuse to time a server that answers wrongly (an error path is fast, not a result)."""
    for body, n in (({"text": "a fine film"}, 1), ({"texts": ["good", "bad"] * 16}, 32)):
        r = client.post(f"{url}/classify", json={"model": model, **body})
        if r.status_code != 200:
            raise SystemExit(f"/classify answered {r.status_code}: {r.text[:500]}")
        results = r.json()["results"]
        if len(results) != n or any(x["label"] not in labels for x in results):
            raise SystemExit(f"/classify answered an unexpected body: {r.text[:500]}")


def _level(
    server: ServerProcess,
    client: str,
    bodies: list[bytes],
    concurrency: int,
    texts_per_request: int,
    args: argparse.Namespace,
    textserve: bool = True,
    limit: Limit | None = None,
) -> dict[str, Any]:
    """One closed-loop load level. ``textserve=False``: a server without our /metrics.

    With ``limit``, the level's ``--duration`` is cut into ``--segments`` and the in-process
    limit is measured again (``--paired-s``) before each: on a shared VM the speed of the same
    run drifts by tens of percent within a minute, and interleaving puts the same drift on
    both sides of the ratio."""
    _settle(server, textserve)  # what the last level left queued must not run into this one
    pairing = limit is not None and args.paired_s > 0
    segments = max(1, args.segments) if pairing else 1
    results: list[LoadResult] = []
    probes: list[dict[str, float]] = []
    acc: dict[str, float] = defaultdict(float)
    server_cpu = loop_cpu = busy = own = 0.0
    with httpx.Client(timeout=30.0) as http:
        for k in range(segments):
            if pairing:
                assert limit is not None
                if k > 0:
                    # Not while the server still runs what the last segment's clients left
                    # behind when they were cut off: the probe would share the cores with it.
                    _settle(server, textserve)
                probes.append(limit.paired(args.paired_s, single=concurrency == 1))
            if k == 0 and args.warmup > 0:
                # Once per level; the requests it cuts off are finished (or dropped) before
                # the count starts. Later segments need no warm-up of their own: their
                # throughput is taken in the steady state (LoadResult.steady_rate), after the
                # pipeline has filled, and a warm-up's cut-off requests would only queue in
                # front of them on a server that runs what its clients left behind.
                run_load(client, server.url, bodies, concurrency, args.warmup)
                _settle(server, textserve)
            before = scrape_metrics(http, server.url) if textserve else {}
            server_cpu0 = tree_cpu_s(server.pid)
            loop_cpu0 = thread_cpu_s(server.pid, server.pid)
            busy0, _ = machine_cpu()
            own0 = time.process_time()
            results.append(
                run_load(client, server.url, bodies, concurrency, args.duration / segments)
            )
            own += time.process_time() - own0
            busy += machine_cpu()[0] - busy0
            server_cpu += tree_cpu_s(server.pid) - server_cpu0
            loop_cpu += thread_cpu_s(server.pid, server.pid) - loop_cpu0
            after = scrape_metrics(http, server.url) if textserve else {}
            for name, value in after.items():
                acc[name] += value - before.get(name, 0.0)
    result = _merge(results)
    elapsed = result.elapsed_s
    client_cpu = result.client_cpu_s + (own if result.client == "wrk" else 0.0)
    texts = max(1, result.ok * texts_per_request)
    level: dict[str, Any] = {
        "kind": "single" if texts_per_request == 1 else f"batched_{texts_per_request}",
        "concurrency": concurrency,
        "texts_per_request": texts_per_request,
        "client": result.client,
        "elapsed_s": elapsed,
        "requests_ok": result.ok,
        # Between each segment's first and last answer (LoadResult.steady_rate): cutting a
        # closed loop into segments must not cost it the requests cut off at each end.
        "requests_per_s": result.steady_rate,
        "texts_per_s": result.steady_rate * texts_per_request,
        "texts_per_s_counted": result.ok * texts_per_request / elapsed,
        "errors": result.errors,
        "latency_ms": latency_summary(result.latencies_s),
        "served_ms": result.served_ms,
        "batcher": _batcher_stats({}, acc, elapsed) if textserve else {},
        # Less sensitive to other load than texts/s: what each text cost the server's cores.
        "server_cpu_ms_per_text": server_cpu * 1000 / texts,
        # The event loop's thread alone: HTTP parsing, validation, routing, serialization.
        "loop_cpu_ms_per_request": loop_cpu * 1000 / max(1, result.ok),
        "cpu_cores": {
            "server": server_cpu / elapsed,
            "client": client_cpu / elapsed,
            "other": max(0.0, (busy - server_cpu - client_cpu) / elapsed),
        },
        "latencies_ms": [round(x * 1000, 3) for x in result.latencies_s],
    }
    if probes:
        level["paired_limit"] = _pooled(probes)
        # Each segment against the probe just before it: the spread shows the drift left.
        level["segment_ratios"] = [
            r.steady_rate * texts_per_request / p["texts_per_s"]
            for r, p in zip(results, probes, strict=True)
        ]
    return level


def _settle(server: ServerProcess, textserve: bool) -> None:
    if textserve:
        wait_idle(server.url)
    else:
        wait_quiet(server.pid)


def _merge(results: list[LoadResult]) -> LoadResult:
    """Segments of one level as one run: counts and times summed, latencies pooled."""
    if len(results) == 1:
        return results[0]
    errors: Counter[str] = Counter()
    served: dict[str, float] = defaultdict(float)
    ok = sum(r.ok for r in results)
    for r in results:
        errors.update(r.errors)
        for key, value in r.served_ms.items():  # means, weighted by each segment's answers
            served[key] += value * r.ok / max(1, ok)
    return LoadResult(
        client=results[0].client,
        concurrency=results[0].concurrency,
        elapsed_s=sum(r.elapsed_s for r in results),
        ok=ok,
        latencies_s=[x for r in results for x in r.latencies_s],
        errors=dict(errors),
        client_cpu_s=sum(r.client_cpu_s for r in results),
        served_ms=dict(served),
        steady_ok=sum(r.steady_ok for r in results),
        steady_s=sum(r.steady_s for r in results),
    )


def _pooled(probes: list[dict[str, float]]) -> dict[str, float]:
    """The limit over every probe of a level: throughput and CPU pooled, the median p50."""
    texts = sum(p["texts"] for p in probes)
    pooled = {
        "texts_per_s": texts / sum(p["seconds"] for p in probes),
        "cpu_ms_per_text": sum(p["cpu_ms_per_text"] * p["texts"] for p in probes) / texts,
    }
    singles = sorted(p["single_p50_ms"] for p in probes if "single_p50_ms" in p)
    if singles:
        pooled["single_p50_ms"] = singles[len(singles) // 2]
    return pooled


def run_server(
    args: argparse.Namespace,
    env: dict[str, str],
    texts: list[str],
    labels: list[str],
    limit: Limit | None = None,
) -> dict[str, Any]:
    client = choose_client(args.client)
    single = [json.dumps({"model": args.model, "text": t}).encode() for t in texts]
    cycled = itertools.islice(itertools.cycle(texts), -(-len(texts) // BATCH) * BATCH)
    flat = list(cycled)
    batched = [
        json.dumps({"model": args.model, "texts": flat[i : i + BATCH]}).encode()
        for i in range(0, len(flat), BATCH)
    ]
    levels: list[dict[str, Any]] = []
    with ServerProcess(env, how=args.server_cmd) as server:
        with httpx.Client(timeout=30.0) as http:
            check_answers(http, server.url, args.model, labels)
        for c in _ints(args.concurrency):
            levels.append(_level(server, client, single, c, 1, args, limit=limit))
            _progress(levels[-1])
        for c in _ints(args.batch_concurrency):
            levels.append(_level(server, client, batched, c, BATCH, args, limit=limit))
            _progress(levels[-1])
        memory = tree_rss_mb(server.pid)
        ready_s = server.ready_s
        command = (
            server.command
            if server.command[1] != "-c"
            else [*server.command[:2], "<uvicorn fallback>"]
        )
    # Cold start (process start to /readyz 200, models loaded and warmed) and memory after
    # the whole run, on the same process.
    return {
        "client": client,
        "command": command,
        "levels": levels,
        "cold_start_s": ready_s,
        "memory": memory,
    }


def run_baseline(
    args: argparse.Namespace,
    version_dir: str,
    texts: list[str],
    client: str,
    limit: Limit | None = None,
) -> dict[str, Any]:
    """The naive FastAPI + transformers pipeline server on the same model and texts."""
    bodies = [json.dumps({"text": t}).encode() for t in texts]
    command = [
        sys.executable,
        str(ROOT / "bench" / "naive_server.py"),
        "--version-dir",
        version_dir,
        "--port",
        "{port}",
    ]
    levels = []
    with ServerProcess({}, command=command) as server:
        for c in _ints(args.baseline_concurrency):
            levels.append(_level(server, client, bodies, c, 1, args, textserve=False, limit=limit))
            levels[-1]["kind"] = "naive"
            _progress(levels[-1])
        memory = tree_rss_mb(server.pid)
    return {"command": command, "levels": levels, "cold_start_s": server.ready_s, "memory": memory}


def _progress(level: dict[str, Any]) -> None:
    lat = level["latency_ms"]
    print(
        f"  {level['kind']:>10} c={level['concurrency']:<3} {level['texts_per_s']:8.1f} texts/s"
        f"  p50 {lat.get('p50', float('nan')):7.1f} ms  p99 {lat.get('p99', float('nan')):7.1f} ms",
        file=sys.stderr,
    )


# -- report ----------------------------------------------------------------------------------
def render(report: dict[str, Any], console: Console) -> None:
    m = report["machine"]
    s = report["settings"]
    console.print(
        f"[bold]textserve /classify benchmark[/]  {m['usable_cores']} cores ({m['cpu_model']}), "
        f"onnxruntime {m['onnxruntime']}, provider {report.get('model', {}).get('provider', '?')}, "
        f"intra_op_threads={s['intra_op_threads']}, max_batch_size={s['max_batch_size']}, "
        f"max_wait_ms={s['max_wait_ms']}"
    )
    console.print(
        f"data {report['data']['path']}: {report['data']['unique_texts']} texts, "
        f"mean {report['data'].get('mean_tokens', float('nan')):.1f} tokens"
    )
    direct = report.get("direct")
    limit = report.get("limit_texts_per_s")
    if direct:
        t = Table(title="(a) in-process ONNX Runtime, tokenization included")
        for col in (
            "run",
            "texts",
            "texts/s",
            "ms/batch",
            "pad eff",
            "cores",
            "cpu ms/text",
            "other cores",
        ):
            t.add_column(col, justify="right")
        for name, r in direct["runs"].items():
            t.add_row(
                name,
                str(r["texts"]),
                f"{r['texts_per_s']:.1f}",
                f"{r['ms_per_batch']:.2f}",
                f"{r['pad_efficiency']:.2f}",
                f"{r['cores']:.2f}",
                f"{r['cpu_ms_per_text']:.2f}",
                f"{r['other_cores']:.2f}",
            )
        console.print(t)
    server = report.get("server")
    if server:
        t = Table(title=f"(b, c) server POST /classify, load from {server['client']}")
        for col in (
            "requests",
            "conc",
            "texts/s",
            "limit beside",
            "x limit",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "batch",
            "model busy",
            "errors",
            "server cores",
            "cpu ms/text",
            "client cores",
            "other cores",
        ):
            t.add_column(col, justify="right")
        for lv in server["levels"]:
            lat, b, cpu = lv["latency_ms"], lv["batcher"], lv["cpu_cores"]
            ratio = f"{lv['ratio_to_limit']:.2f}" if "ratio_to_limit" in lv else "-"
            beside = lv.get("paired_limit", {}).get("texts_per_s")
            errors = sum(lv["errors"].values())
            t.add_row(
                lv["kind"],
                str(lv["concurrency"]),
                f"{lv['texts_per_s']:.1f}",
                f"{beside:.1f}" if beside else "-",
                ratio,
                f"{lat.get('p50', float('nan')):.1f}",
                f"{lat.get('p90', float('nan')):.1f}",
                f"{lat.get('p99', float('nan')):.1f}",
                f"{b['mean_batch_texts']:.1f}",
                f"{b['model_busy']:.0%}",
                str(errors) if errors else "0",
                f"{cpu['server']:.2f}",
                f"{lv['server_cpu_ms_per_text']:.2f}",
                f"{cpu['client']:.2f}",
                f"{cpu['other']:.2f}",
            )
        console.print(t)
        noisy = [lv for lv in server["levels"] if lv["cpu_cores"]["other"] > 0.25]
        if noisy or any(r["other_cores"] > 0.25 for r in (direct or {}).get("runs", {}).values()):
            console.print(
                "[yellow]warning[/]: other processes used CPU during the run; rerun on a quiet "
                "machine before trusting these figures"
            )
        levels = server["levels"]
        paired = [lv["paired_limit"]["texts_per_s"] for lv in levels if "paired_limit" in lv]
        if paired and limit:
            console.print(
                f"the limit measured beside each level ranged {min(paired):.1f}-{max(paired):.1f} "
                f"texts/s ({min(paired) / limit:.2f}-{max(paired) / limit:.2f} x the full run's)"
            )
        console.print(
            "limit beside: (a) sorted_32 measured again before each segment of the level "
            "(--paired-s, --segments), pooled; x limit: the median of the segments' ratios, each "
            "segment's texts/s over the probe just before it (else over the full run's). "
            "batch: mean texts per model run. "
            "model busy: share of wall time inside ONNX Runtime. other cores: CPU used by "
            "processes that are neither the server nor the load generator (noise). cpu ms/text: "
            "CPU time spent per text (server: its whole process), less sensitive to noise."
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    console = report_console()
    env = settings_env(args)
    os.environ.update(env)  # the in-process engine reads the same settings as the server
    settings = Settings()
    unique = load_texts(args.data, args.text_column)
    if not unique:
        raise SystemExit(f"no texts in {args.data}")
    texts = list(itertools.islice(itertools.cycle(unique), max(args.n, 1)))
    background = background_cores()
    if background > 0.2:
        console.print(
            f"[yellow]warning[/]: {background:.2f} cores busy before the run started; "
            "the figures will be noisy (see the 'other cores' columns)"
        )
    report: dict[str, Any] = {
        "machine": {**machine_info(), "background_cores_at_start": background},
        "settings": {
            "intra_op_threads": settings.intra_op_threads,
            "layout": vars(engine_layout(settings)),
            "inter_op_threads": settings.inter_op_threads,
            "max_batch_size": settings.max_batch_size,
            "max_batch_tokens": settings.max_batch_tokens,
            "max_wait_ms": settings.max_wait_ms,
            "providers": list(settings.providers),
            "env": env,
            "args": {k: str(v) for k, v in vars(args).items()},
        },
        "data": {"path": str(args.data), "unique_texts": len(unique), "n": len(texts)},
    }
    labels: list[str] = []
    limit: Limit | None = None
    if not args.skip_direct:
        print("in-process runs...", file=sys.stderr)
        limit = Limit(settings, args.model, texts, args)
        direct = limit.runs(args.direct_max_s)
        report["model"] = direct.pop("model")
        report["data"]["mean_tokens"] = direct.pop("mean_tokens")
        report["direct"] = direct
        report["limit_texts_per_s"] = direct["runs"]["sorted_32"]["texts_per_s"]
        labels = report["model"]["labels"]
    else:
        store = ModelStore(settings.model_store)
        version = store.active_version(args.model)
        if version is None:
            raise SystemExit(f"{args.model!r} has no active version in {settings.model_store}")
        labels = store.read_manifest(args.model, version).labels
    try:
        if not args.skip_server:
            _server_runs(args, env, unique, labels, limit, report)
    finally:
        if limit is not None:
            limit.close()
    render(report, console)
    render_targets(report.get("targets", []), console)
    write_json(args.out, round_floats(report))
    console.print(f"saved {args.out}")
    for chart in write_charts(report, args.out.with_suffix("")):
        console.print(f"chart {chart}")


def _server_runs(
    args: argparse.Namespace,
    env: dict[str, str],
    unique: list[str],
    labels: list[str],
    limit: Limit | None,
    report: dict[str, Any],
) -> None:
    print("server runs...", file=sys.stderr)
    report["server"] = run_server(args, env, unique, labels, limit)
    if args.baseline and "model" in report:
        print("naive baseline server...", file=sys.stderr)
        report["baseline"] = run_baseline(
            args, report["model"]["folder"], unique, report["server"]["client"], limit
        )
    whole_run = report.get("limit_texts_per_s")
    for lv in report["server"]["levels"] + report.get("baseline", {}).get("levels", []):
        # Against the limits measured beside the level where there are some (bench/targets.py).
        ratio = ratio_to_limit(lv, whole_run)
        if ratio is not None:
            lv["ratio_to_limit"] = ratio
    report["targets"] = targets(report)


if __name__ == "__main__":
    main()

"""The route matrix of scripts/gpu-check.sh: every served route, fp32 vs fp16, IO binding on/off.

For each (variant, binding) it starts ``textserve serve`` on the store, waits for /readyz,
reads what /v1/models says each model loaded (provider, variant), then times /classify,
/reply and /v1/embeddings (where served) at each client count, and prints one table (also
saved as text and JSON). Everything comes from the environment the script sets (providers).

    python bench/gpu_check.py --store DIR --textserve .venv/bin/textserve --out FILE.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

TEXTS = (
    "the parcel arrived late and broken",
    "great service, thank you so much",
    "how do I reset my password?",
    "I was charged twice for the same order and nobody answers my emails about it",
)


def _post(url: str, body: dict[str, Any]) -> tuple[int, float]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"content-type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status, time.perf_counter() - started


def _wait_ready(base: str, server: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if server.poll() is not None:
            raise SystemExit(f"server exited with {server.returncode} before it was ready")
        try:
            urllib.request.urlopen(f"{base}/readyz", timeout=2).read()
            return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise SystemExit(f"not ready after {timeout_s:.0f} s") from None
            time.sleep(0.5)


def _load(url: str, body: dict[str, Any], clients: int, requests: int) -> dict[str, Any]:
    """``requests`` posts from ``clients`` threads: rate, p50 and p99, and failures."""
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda _: _post(url, body), range(requests)))
    wall = time.perf_counter() - started
    times = sorted(t for _, t in results)
    failed = sum(1 for status, _ in results if status != 200)
    return {
        "clients": clients,
        "requests": requests,
        "failed": failed,
        "per_s": round(requests / wall, 1),
        "p50_ms": round(1000 * statistics.median(times), 2),
        "p99_ms": round(1000 * times[min(len(times) - 1, int(0.99 * len(times)))], 2),
    }


def _routes(cards: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, path, body) for each route this store can serve."""
    routes: list[tuple[str, str, dict[str, Any]]] = []
    for card in cards:
        if card["task"] == "classification":
            routes.append((f"classify {card['id']}", "/classify", {"model": card["id"]}))
        elif card["task"] == "reply":
            routes.append((f"reply {card['id']}", "/reply", {"model": card["id"]}))
        elif card["task"] == "embedding":
            routes.append((f"embeddings {card['id']}", "/v1/embeddings", {"model": card["id"]}))
    return routes


def _body(path: str, base: dict[str, Any], text: str) -> dict[str, Any]:
    if path == "/reply":
        return {**base, "message": text}
    if path == "/v1/embeddings":
        return {**base, "input": text}
    return {**base, "text": text}


def run_config(
    args: argparse.Namespace, variant: str, binding: bool, port: int
) -> list[dict[str, Any]]:
    env = {
        **os.environ,
        "TEXTSERVE_MODEL_STORE": str(args.store),
        "TEXTSERVE_MODEL_VARIANT": variant,
        "TEXTSERVE_IO_BINDING": "true" if binding else "false",
        "TEXTSERVE_DATA_DIR": tempfile.mkdtemp(prefix="gpu-check-"),
    }
    base = f"http://127.0.0.1:{port}"
    log = open(args.log, "ab")  # noqa: SIM115 - the server's whole life
    server = subprocess.Popen(
        [args.textserve, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    rows: list[dict[str, Any]] = []
    try:
        _wait_ready(base, server, args.ready_timeout)
        cards = json.load(urllib.request.urlopen(f"{base}/v1/models"))["data"]
        loaded = {c["id"]: (c.get("provider"), c.get("variant")) for c in cards}
        for label, path, body in _routes(cards):
            model = body["model"]
            provider, got = loaded[model]
            status, _ = _post(base + path, _body(path, body, TEXTS[0]))
            for clients in args.clients:
                if status != 200:
                    rows.append({"route": label, "status": status, "clients": clients})
                    continue
                text = TEXTS[clients % len(TEXTS)]
                stats = _load(base + path, _body(path, body, text), clients, args.requests)
                rows.append({"route": label, "status": status, **stats})
            for row in rows[-len(args.clients) :]:
                row.update(asked=variant, loaded=got, io_binding=binding, provider=provider)
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "route",
        "asked",
        "loaded",
        "binding",
        "provider",
        "clients",
        "per_s",
        "p50_ms",
        "p99_ms",
        "failed",
    )
    lines = ["  ".join(f"{h:>10}" if i else f"{h:<28}" for i, h in enumerate(head))]
    for r in rows:
        cells = [
            r["route"], r.get("asked"), r.get("loaded"), "on" if r.get("io_binding") else "off",
            str(r.get("provider", "")).replace("ExecutionProvider", ""), r["clients"],
            r.get("per_s", "-"), r.get("p50_ms", "-"), r.get("p99_ms", "-"),
            r.get("failed", f"HTTP {r['status']}"),
        ]  # fmt: skip
        lines.append("  ".join(f"{c!s:>10}" if i else f"{c!s:<28}" for i, c in enumerate(cells)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--textserve", default="textserve")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--log", type=Path, default=Path(tempfile.gettempdir()) / "gpu-check-serve.log"
    )
    parser.add_argument("--port", type=int, default=18766)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--variants", nargs="+", default=["fp32", "fp16"])
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for variant in args.variants:
        for binding in (True, False):
            started = time.perf_counter()
            rows.extend(run_config(args, variant, binding, args.port))
            print(f"  {variant}, io binding {'on' if binding else 'off'}: "
                  f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
    text = table(rows)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    args.out.with_suffix(".txt").write_text(text + "\n")
    bad = [r for r in rows if r.get("status") != 200 or r.get("failed")]
    if bad or not rows:
        print(f"gpu-check: {len(bad)} failing rows (or none served)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Vector search latency of the local store's index: exact vs IVF, and IVF's recall@10.

    python bench/vector_search.py                      # 10k and 100k chunks, 384-d
    python bench/vector_search.py --sizes 10000 --nprobe 8,32,128

Two data sets of L2-normalised float32 vectors: ``uniform`` (random directions, as the issue
asks: the worst case for any approximate index, since no point has near neighbours) and
``clustered`` (points around n/50 random centres, cosine ~0.7 to their centre: the shape of
real text embeddings, where similar passages sit together). Queries are drawn the same way and
run one at a time, as a request does. Latency is ``MatrixIndex.search`` / ``IvfIndex.search``
in this process (no HTTP); recall@10 is the share of exact search's top 10 that IVF returns.
Prints a table and saves JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.knowledge.matrix import IvfIndex, MatrixIndex
from bench.common import ROOT, latency_summary, round_floats, write_json

Matrix = np.ndarray[Any, np.dtype[np.float32]]


def normalised(x: Matrix) -> Matrix:
    unit: Matrix = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return unit


def make_data(kind: str, n: int, queries: int, dim: int, seed: int) -> tuple[Matrix, Matrix]:
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        points = rng.standard_normal((n + queries, dim), dtype=np.float32)
        data = normalised(points)
        return data[:n], data[n:]
    centres = normalised(rng.standard_normal((max(1, n // 50), dim), dtype=np.float32))
    which = rng.integers(0, len(centres), size=n + queries)
    # Noise of norm ~1 around a unit centre: cosine to the centre ~0.7.
    noise = rng.standard_normal((n + queries, dim), dtype=np.float32) / np.sqrt(dim)
    data = normalised(centres[which] + noise)
    return data[:n], data[n:]


def timed(search: Any, queries: Matrix, k: int) -> tuple[list[np.ndarray[Any, Any]], list[float]]:
    for query in queries[:10]:  # warm-up: thread pools, caches
        search(query, k)
    found, seconds = [], []
    for query in queries:
        start = time.perf_counter()
        ids, _ = search(query, k)
        seconds.append(time.perf_counter() - start)
        found.append(ids)
    return found, seconds


def run(kind: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    data, queries = make_data(kind, n, args.queries, args.dim, args.seed)
    index = MatrixIndex(args.dim)  # ann_min_rows 0: exact only
    index.add(np.arange(n, dtype=np.int64), data)
    exact_ids, exact_s = timed(index.search, queries, args.top_k)
    result: dict[str, Any] = {
        "data": kind,
        "chunks": n,
        "exact": latency_summary(exact_s),
        "ivf": [],
    }
    start = time.perf_counter()
    ivf = IvfIndex(data, np.arange(n, dtype=np.int64), nprobe=1)
    result["ivf_build_s"] = time.perf_counter() - start
    result["ivf_nlist"] = ivf.nlist
    for nprobe in args.nprobe:
        ivf.index.nprobe = min(nprobe, ivf.nlist)
        ivf_ids, ivf_s = timed(ivf.search, queries, args.top_k)
        recall = np.mean(
            [
                len(set(a.tolist()) & set(b.tolist())) / args.top_k
                for a, b in zip(ivf_ids, exact_ids, strict=True)
            ]
        )
        result["ivf"].append(
            {"nprobe": nprobe, "recall_at_10": float(recall), **latency_summary(ivf_s)}
        )
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="10000,100000", help="chunks, comma-separated")
    p.add_argument("--data", default="uniform,clustered", help="uniform and/or clustered")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--nprobe", default="8,32,128", help="IVF lists scanned per query")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "vector_search.json")
    args = p.parse_args()
    args.nprobe = [int(x) for x in args.nprobe.split(",")]
    results = []
    print(f"{'data':<10}{'chunks':>8}  {'search':<14}{'p50 ms':>8}{'p99 ms':>8}{'recall@10':>11}")
    for n in (int(x) for x in args.sizes.split(",")):
        for kind in args.data.split(","):
            r = run(kind, n, args)
            results.append(r)
            e = r["exact"]
            print(f"{kind:<10}{n:>8}  {'exact':<14}{e['p50']:>8.2f}{e['p99']:>8.2f}{1.0:>11.3f}")
            for v in r["ivf"]:
                name = f"ivf nprobe={v['nprobe']}"
                figures = f"{v['p50']:>8.2f}{v['p99']:>8.2f}{v['recall_at_10']:>11.3f}"
                print(f"{'':<18}  {name:<14}{figures}")
            print(f"{'':<18}  (ivf: {r['ivf_nlist']} lists, built in {r['ivf_build_s']:.1f} s)")
    payload = {"command": " ".join(sys.argv), "dim": args.dim, "queries": args.queries,
               "top_k": args.top_k, "results": results}  # fmt: skip
    write_json(args.out, round_floats(payload))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()

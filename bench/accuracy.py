"""Accuracy of a served classification model on a labelled file, through the HTTP API.

Texts go to ``POST /classify`` in requests of 32 with ``return_all_scores``; the served label is
compared with the file's label (after ``--label-map``). Prints accuracy, macro-F1 (over the
gold labels), per-label precision/recall and the confusion matrix, and saves JSON.

With ``--drop-label`` (e.g. a 3-class sentiment model on binary SST-2), a prediction of a
dropped label counts as wrong in the main figures, and a second set of figures is computed
with the prediction taken as the argmax over the remaining labels' scores.

    python bench/accuracy.py --url http://127.0.0.1:8000 --model sentiment \\
        --data ../shared/data/sst2/dev.tsv --label-map 0=negative,1=positive --drop-label neutral
    python bench/accuracy.py --start-server --store models --model sentiment --data ...
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from rich.console import Console
from rich.table import Table

from bench.common import (
    ROOT,
    Example,
    add_labelled_data_args,
    load_examples,
    machine_info,
    round_floats,
    write_json,
)
from bench.server import ServerProcess, store_env

BATCH = 32


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8000", help="a running server")
    p.add_argument("--model", default="sentiment", help="`name` or `name@version`")
    add_labelled_data_args(
        p, "model label to also evaluate without (argmax over the others); repeatable"
    )
    p.add_argument("--concurrency", type=int, default=2, help="requests in flight")
    p.add_argument("--start-server", action="store_true", help="spawn the server on a free port")
    p.add_argument("--store", type=Path, default=Path("models"), help="with --start-server")
    p.add_argument("--server-cmd", choices=("auto", "cli", "uvicorn"), default="auto")
    p.add_argument("--out", type=Path, help="JSON path (default bench/results/accuracy-MODEL.json)")
    return p.parse_args(argv)


def parse_label_map(text: str) -> dict[str, str]:
    mapping = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--label-map entries are FILE_LABEL=MODEL_LABEL, not {pair!r}")
        mapping[key.strip()] = value.strip()
    return mapping


# -- asking the server ---------------------------------------------------------------------
async def _predict(
    url: str, model: str, texts: list[str], concurrency: int
) -> tuple[list[str], list[dict[str, float]], list[str]]:
    """The served label and every label's score for each text, in order; the model's labels."""
    chunks = [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)]
    results: list[list[dict[str, Any]]] = [[] for _ in chunks]
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120.0) as client:
        card = await client.get(f"/v1/models/{model.split('@', 1)[0]}")
        labels: list[str] = card.json().get("labels", []) if card.status_code == 200 else []

        async def one(i: int) -> None:
            async with gate:
                body = {"model": model, "texts": chunks[i], "return_all_scores": True}
                r = await client.post("/classify", json=body)
            if r.status_code != 200:
                raise SystemExit(f"/classify answered {r.status_code}: {r.text[:500]}")
            results[i] = r.json()["results"]

        await asyncio.gather(*(one(i) for i in range(len(chunks))))
    flat = [item for chunk in results for item in chunk]
    return [x["label"] for x in flat], [x["scores"] for x in flat], labels


# -- metrics -----------------------------------------------------------------------------------
def evaluate(gold: list[str], pred: list[str], label_order: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 over the gold labels, per-label figures and the confusion matrix."""
    rank = {label: i for i, label in enumerate(label_order)}

    def order(x: str) -> tuple[int, str]:
        return rank.get(x, len(rank)), x

    classes = sorted(set(gold), key=order)
    labels = classes + sorted(set(pred) - set(classes), key=order)
    pairs = Counter(zip(gold, pred, strict=True))
    per_label: dict[str, dict[str, float]] = {}
    for label in labels:
        tp = pairs[(label, label)]
        predicted = sum(n for (_, p), n in pairs.items() if p == label)
        support = sum(n for (g, _), n in pairs.items() if g == label)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support,
            "predicted": predicted,
        }
    correct = sum(n for (g, p), n in pairs.items() if g == p)
    return {
        "n": len(gold),
        "accuracy": correct / len(gold) if gold else 0.0,
        "macro_f1": sum(per_label[c]["f1"] for c in classes) / len(classes) if classes else 0.0,
        "per_label": per_label,
        "confusion": {
            "labels": labels,
            "rows_gold_cols_predicted": [[pairs[(g, p)] for p in labels] for g in labels],
        },
    }


def argmax_without(scores: dict[str, float], dropped: set[str]) -> str:
    kept = {k: v for k, v in scores.items() if k not in dropped}
    return max(kept, key=kept.__getitem__)


# -- report ------------------------------------------------------------------------------------
def render(title: str, result: dict[str, Any], console: Console) -> None:
    console.print(
        f"[bold]{title}[/]: accuracy {result['accuracy']:.4f}, "
        f"macro-F1 {result['macro_f1']:.4f} (n={result['n']})"
    )
    t = Table()
    for col in ("label", "precision", "recall", "f1", "support", "predicted"):
        t.add_column(col, justify="right")
    for label, r in result["per_label"].items():
        t.add_row(
            label,
            f"{r['precision']:.4f}",
            f"{r['recall']:.4f}",
            f"{r['f1']:.4f}",
            str(r["support"]),
            str(r["predicted"]),
        )
    console.print(t)
    labels = result["confusion"]["labels"]
    c = Table(title="confusion (rows: gold, columns: predicted)")
    c.add_column("gold \\ pred")
    for label in labels:
        c.add_column(label, justify="right")
    for label, row in zip(labels, result["confusion"]["rows_gold_cols_predicted"], strict=True):
        c.add_row(label, *(str(n) for n in row))
    console.print(c)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    console = Console()
    mapping = parse_label_map(args.label_map)
    examples: list[Example] = load_examples(args.data, args.text_column, args.label_column)
    examples = [e for e in examples if e.label is not None][: args.limit]
    if not examples:
        raise SystemExit(f"no labelled examples in {args.data}")
    gold = [mapping.get(e.label, e.label) for e in examples if e.label is not None]
    texts = [e.text for e in examples]
    with ExitStack() as stack:
        url = args.url
        if args.start_server:
            name = args.model.split("@", 1)[0]
            server = stack.enter_context(
                ServerProcess(store_env(args.store, name), args.server_cmd)
            )
            url = server.url
        started = time.perf_counter()
        served, scores, label_order = asyncio.run(
            _predict(url, args.model, texts, args.concurrency)
        )
        seconds = time.perf_counter() - started
    label_order = label_order or sorted(scores[0])
    model_labels = set(label_order)
    unknown = Counter(g for g in gold if g not in model_labels)
    if unknown:
        console.print(
            f"[yellow]warning[/]: file labels the model does not have (always wrong): "
            f"{dict(unknown)}; map them with --label-map"
        )
    report: dict[str, Any] = {
        "machine": machine_info(),
        "url": None if args.start_server else url,
        "model": args.model,
        "data": str(args.data),
        "label_map": mapping,
        "unknown_gold_labels": dict(unknown),
        "seconds": seconds,
        "texts_per_s": len(texts) / seconds,
        "served": evaluate(gold, served, label_order),
    }
    render("served label", report["served"], console)
    dropped = set(args.drop_label)
    if dropped:
        if not dropped < model_labels:
            raise SystemExit(f"--drop-label {sorted(dropped)} not among {sorted(model_labels)}")
        kept = [argmax_without(s, dropped) for s in scores]
        key = "without_" + "_".join(sorted(dropped))
        report["dropped_labels"] = sorted(dropped)
        report[key] = evaluate(gold, kept, label_order)
        render(f"argmax without {', '.join(sorted(dropped))}", report[key], console)
    out = args.out or ROOT / "bench" / "results" / f"accuracy-{args.model.replace('@', '-')}.json"
    write_json(out, round_floats(report))
    console.print(f"{len(texts)} texts in {seconds:.1f} s; saved {out}")


if __name__ == "__main__":
    main()

"""Reply and intent accuracy, fine-tuned through the HTTP API as a user would. Not a test.

1. Bitext customer support (27 intents, utterance -> agent response): a stratified split by
   intent; the training rows are uploaded as they are (CSV, every column) to
   ``POST /v1/files``, fine-tuned with ``POST /v1/fine-tunes`` (task ``reply``), and every
   test row is asked through ``POST /reply``: intent accuracy, macro-F1, top-3 accuracy
   (the intent and its runner-ups) and the handoff rate.
2. BANKING77 (77 intents): ``train.csv`` fine-tuned as a classifier through the same API
   (``bench/finetune.py``), ``test.csv`` scored through ``POST /classify``, next to the
   published reference (BERT-base 92.8 %, DistilBERT 92.5 %).

    python bench/reply.py --data ../shared/data            # both
    python bench/reply.py --data ../shared/data --only bitext --epochs 2

Results go to ``bench/results/reply-bitext.json`` and ``bench/results/intent-banking77.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script from anywhere: `python bench/reply.py ...`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from app.training.data import Example, stratified_split
from app.training.evaluate import classification_metrics
from app.training.reply.rows import rows_from_upload
from bench import finetune
from bench.common import ROOT, machine_info, write_json

BITEXT_FILE = "bitext_customer_support/Bitext_Sample_Customer_Support_Training_Dataset.csv"
BANKING77_REFERENCE = {"bert-base (philschmid/BERT-Banking77)": 0.928, "distilbert": 0.925}
CONCURRENCY = 16


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--only", choices=("bitext", "banking77"))
    p.add_argument("--test-fraction", type=float, default=0.2, help="Bitext rows held out")
    p.add_argument("--train-rows", type=int, default=0, help="Bitext training subset (0: all)")
    p.add_argument("--epochs", type=int, default=2, help="Bitext reply model")
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--banking-epochs", type=int, default=3)
    p.add_argument("--banking-learning-rate", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--timeout-s", type=float, default=4 * 3600.0)
    return p.parse_args(argv)


def split_bitext(path: Path, fraction: float, seed: int) -> tuple[list[dict[str, str]], ...]:
    """(train, test) rows, stratified by intent, every column kept."""
    rows = rows_from_upload(path.read_bytes(), path.name)
    keyed = [Example(f"{i:09d}", r["intent"]) for i, r in enumerate(rows)]
    train, test = stratified_split(keyed, fraction, seed)
    return [rows[int(e.text)] for e in train], [rows[int(e.text)] for e in test]


def to_csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


async def ask_all(url: str, model: str, texts: list[str]) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:

        async def one(text: str) -> dict[str, Any]:
            async with gate:
                r = await client.post(
                    "/reply", json={"message": text, "model": model, "timeout_ms": 60_000}
                )
                r.raise_for_status()
                answer: dict[str, Any] = r.json()
                return answer

        return await asyncio.gather(*(one(t) for t in texts))


def reply_scores(test: list[dict[str, str]], answers: list[dict[str, Any]]) -> dict[str, Any]:
    labels = sorted({r["intent"] for r in test} | {a["intent"] for a in answers})
    index = {label: i for i, label in enumerate(labels)}
    truth = [index[r["intent"]] for r in test]
    metrics = classification_metrics(truth, [index[a["intent"]] for a in answers], labels)
    top3 = [
        r["intent"] in [a["intent"], *(x["intent"] for x in a["alternatives"][:2])]
        for r, a in zip(test, answers, strict=True)
    ]
    return {
        "intent_accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "top3_accuracy": sum(top3) / len(top3),
        "handoff_rate": sum(a["handoff"] for a in answers) / len(answers),
        "low_confidence_rate": sum(a["handoff_reason"] == "low_confidence" for a in answers)
        / len(answers),
        "unfilled_placeholder_replies": sum("{{" in a["reply"] for a in answers),
        "n": len(answers),
    }


def bench_bitext(args: argparse.Namespace) -> dict[str, Any]:
    train, test = split_bitext(args.data / BITEXT_FILE, args.test_fraction, args.seed)
    if 0 < args.train_rows < len(train):  # a quick run: a stratified subset of the rows
        keyed = [Example(f"{i:09d}", r["intent"]) for i, r in enumerate(train)]
        _, kept = stratified_split(keyed, args.train_rows / len(train), args.seed)
        train = [train[int(e.text)] for e in kept]
    print(f"bitext: {len(train)} training rows, {len(test)} test rows", file=sys.stderr)
    hp = {
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "seed": args.seed,
    }
    with tempfile.TemporaryDirectory(prefix="textserve-bench-reply-") as tmp:
        proc, url, log = finetune.start_server(Path(tmp))
        try:
            with httpx.Client(base_url=url, timeout=300) as client:
                started = time.perf_counter()
                r = client.post("/v1/files", files={"file": ("bitext-train.csv", to_csv(train))})
                r.raise_for_status()
                file = r.json()
                r = client.post(
                    "/v1/fine-tunes",
                    json={
                        "model": "bitext-reply",
                        "task": "reply",
                        "training_file": file["id"],
                        "hyperparameters": hp,
                        "promote": "always",
                    },
                )
                r.raise_for_status()
                job = finetune.follow(client, r.json()["id"], args.timeout_s)
                job_wall_s = time.perf_counter() - started
                if job["status"] != "succeeded":
                    raise SystemExit(f"job {job['status']}: {job.get('error')}\n{log.read_text()}")
            texts = [row["instruction"] for row in test]
            started = time.perf_counter()
            answers = asyncio.run(ask_all(url, job["fine_tuned_model"], texts))
            reply_s = time.perf_counter() - started
        finally:
            proc.terminate()
            proc.wait(30)
    metrics = job["result"]["metrics"]
    return {
        "data": str(args.data / BITEXT_FILE),
        "train_rows": len(train),
        "test_rows": len(test),
        "intents": metrics.get("intents"),
        "hyperparameters": hp,
        "test": reply_scores(test, answers),
        "validation": {
            k: v
            for k, v in (metrics.get("eval") or {}).items()
            if k not in ("per_label", "confusion_matrix")
        },
        "job_wall_seconds": round(job_wall_s, 1),
        "train_seconds": metrics.get("train_seconds"),
        "training_samples_per_second": job["progress"].get("samples_per_second"),
        "reply_requests_per_second": round(len(texts) / reply_s, 1),
        "machine": machine_info(),
    }


def bench_banking77(args: argparse.Namespace) -> dict[str, Any]:
    folder = args.data / "banking77"
    out = ROOT / "bench" / "results" / "intent-banking77.json"
    finetune.main(
        [
            "--train", str(folder / "train.csv"),
            "--test", str(folder / "test.csv"),
            "--name", "banking77",
            "--epochs", str(args.banking_epochs),
            "--learning-rate", str(args.banking_learning_rate),
            "--batch-size", str(args.batch_size),
            "--max-length", str(args.max_length),
            "--seed", str(args.seed),
            "--out", str(out),
            "--timeout-s", str(args.timeout_s),
        ]
    )  # fmt: skip
    report: dict[str, Any] = json.loads(out.read_text())
    report["published_reference_accuracy"] = BANKING77_REFERENCE
    write_json(out, report)
    return report


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.only in (None, "bitext"):
        report = bench_bitext(args)
        out = ROOT / "bench" / "results" / "reply-bitext.json"
        write_json(out, report)
        print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))
        print(f"saved {out}", file=sys.stderr)
    if args.only in (None, "banking77"):
        report = bench_banking77(args)
        print(
            f"banking77 test accuracy {report['test_accuracy']:.4f} "
            f"(published: BERT-base 0.928, DistilBERT 0.925)",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()

"""Fine-tune through the HTTP API exactly as a user would, then score the model on a test file.

Starts ``textserve serve`` on a fresh store, uploads a (stratified) subset of the training
file with ``POST /v1/files``, runs ``POST /v1/fine-tunes``, follows the job to its end, and
classifies every row of the test file through ``POST /classify``. Prints and saves accuracy,
macro F1, wall time and training samples per second. A benchmark: it asserts nothing.

    python bench/finetune.py --train ../shared/data/sst2/train.tsv \\
        --test ../shared/data/sst2/dev.tsv --rows 2000 --epochs 2 --max-length 64
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script from anywhere: `python bench/finetune.py ...`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from app.training.data import Example, stratified_split
from app.training.datasets import ParsedDataset, parse_dataset
from app.training.evaluate import classification_metrics
from bench.common import ROOT, machine_info, write_json
from bench.server import free_port, server_command

CLASSIFY_BATCH = 64


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--train", type=Path, required=True, help="training file (CSV, TSV, JSONL)")
    p.add_argument("--test", type=Path, required=True, help="labelled test file")
    p.add_argument("--rows", type=int, default=0, help="stratified training subset (0: all)")
    p.add_argument("--text-column", help="text column of both files [inferred]")
    p.add_argument("--label-column", help="label column of both files [inferred]")
    p.add_argument("--name", default="bench", help="model name to publish under")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--method", choices=["full", "lora", "head"], default="full")
    p.add_argument(
        "--learning-rate",
        type=float,
        help="[the method's default: 5e-5 full, 5e-4 lora, 1e-3 head]",
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--base-model", default="packaged")
    p.add_argument("--out", type=Path, help="JSON results [bench/results/finetune-<name>.json]")
    p.add_argument("--timeout-s", type=float, default=7200.0)
    return p.parse_args(argv)


def read(path: Path, text_column: str | None, label_column: str | None) -> ParsedDataset:
    return parse_dataset(
        path.read_bytes(), filename=path.name, text_column=text_column, label_column=label_column
    )


def subset(examples: list[Example], rows: int, seed: int) -> list[Example]:
    if rows <= 0 or rows >= len(examples):
        return examples
    _, kept = stratified_split(examples, rows / len(examples), seed)
    return kept


def start_server(workspace: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log = workspace / "server.log"
    env = {
        **os.environ,
        "TEXTSERVE_MODEL_STORE": str(workspace / "models"),
        "TEXTSERVE_DATA_DIR": str(workspace / "var"),
        "TEXTSERVE_JOB_POLL_S": "0.5",
        "TEXTSERVE_LOG_LEVEL": "warning",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            server_command(port), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url, log
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


def follow(client: httpx.Client, job_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        job: dict[str, Any] = client.get(f"/v1/fine-tunes/{job_id}").json()
        p = job["progress"]
        line = f"{job['status']:<10} {p.get('stage') or ''}"
        if p.get("step"):
            line += (
                f" step {p['step']}/{p['total_steps']} epoch {p['epoch']} loss {p['loss']:.4f} "
                f"{p['samples_per_second']:.1f} samples/s eta {p['eta_seconds']:.0f} s"
            )
        if line != last:
            print(line, file=sys.stderr)
            last = line
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} did not finish in {timeout_s} s")
        time.sleep(2.0)


def score(client: httpx.Client, ref: str, test: list[Example], labels: list[str]) -> dict[str, Any]:
    index = {label: i for i, label in enumerate(labels)}
    other = len(labels)
    predicted: list[int] = []
    started = time.perf_counter()
    for first in range(0, len(test), CLASSIFY_BATCH):
        texts = [e.text for e in test[first : first + CLASSIFY_BATCH]]
        r = client.post("/classify", json={"model": ref, "texts": texts, "timeout_ms": 60_000})
        r.raise_for_status()
        predicted.extend(index.get(x["label"], other) for x in r.json()["results"])
    seconds = time.perf_counter() - started
    truth = [index.get(e.label, other) for e in test]
    metrics = classification_metrics(truth, predicted, [*labels, "<unknown>"])
    return {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "n": metrics["n"],
        "classify_seconds": seconds,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    train_all = read(args.train, args.text_column, args.label_column)
    test = read(args.test, args.text_column, args.label_column)
    train = subset(train_all.examples, args.rows, args.seed)
    print(
        f"train {args.train.name}: {len(train)} of {len(train_all.examples)} rows "
        f"(text {train_all.text_column!r}, label {train_all.label_column!r}); "
        f"test {args.test.name}: {len(test.examples)} rows",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="textserve-bench-ft-") as tmp:
        workspace = Path(tmp)
        upload = workspace / "train.jsonl"
        upload.write_text(
            "".join(json.dumps({"text": e.text, "label": e.label}) + "\n" for e in train)
        )
        proc, url, log = start_server(workspace)
        try:
            with httpx.Client(base_url=url, timeout=120) as client:
                wall = time.perf_counter()
                with upload.open("rb") as fh:
                    r = client.post("/v1/files", files={"file": ("train.jsonl", fh)})
                r.raise_for_status()
                file = r.json()
                hp = {
                    "method": args.method,
                    "epochs": args.epochs,
                    "batch_size": args.batch_size,
                    "max_length": args.max_length,
                    "seed": args.seed,
                }
                if args.learning_rate is not None:
                    hp["learning_rate"] = args.learning_rate
                r = client.post(
                    "/v1/fine-tunes",
                    json={
                        "model": args.name,
                        "training_file": file["id"],
                        "base_model": args.base_model,
                        "hyperparameters": hp,
                    },
                )
                r.raise_for_status()
                job = follow(client, r.json()["id"], args.timeout_s)
                wall_s = time.perf_counter() - wall
                if job["status"] != "succeeded":
                    raise SystemExit(
                        f"job {job['status']}: {job['error']}\n{log.read_text()[-3000:]}"
                    )
                manifest_labels = sorted(file["label_counts"])
                result = score(client, job["fine_tuned_model"], test.examples, manifest_labels)
        finally:
            proc.terminate()
            proc.wait(30)
    progress = job["progress"]
    report = {
        "train_file": str(args.train),
        "test_file": str(args.test),
        "train_rows": file["rows"],
        "validation_rows": job["result"].get("validation_rows"),
        "labels": len(file["label_counts"]),
        "hyperparameters": hp,
        "base_model": args.base_model,
        "test_accuracy": result["accuracy"],
        "test_macro_f1": result["macro_f1"],
        "test_rows": result["n"],
        "validation_accuracy": job["result"]["metrics"]["eval"]["accuracy"],
        "job_seconds": job["finished_at"] - job["started_at"],
        "wall_seconds": wall_s,
        "train_seconds": job["result"]["metrics"].get("train_seconds"),
        "training_samples_per_second": progress.get("samples_per_second"),
        "final_training_loss": progress.get("loss"),
        "peak_memory_mb": job["result"].get("training", {}).get("peak_memory_mb"),
        "machine": machine_info(),
    }
    out = args.out or ROOT / "bench" / "results" / f"finetune-{args.name}.json"
    write_json(out, report)
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))
    print(f"saved {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

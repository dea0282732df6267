"""fp32 against int8: raw in-process throughput and accuracy of one model version's variants.

Both variants of the same version (``model.onnx`` and ``model.int8.onnx``) are opened as
``InferenceEngine``s with the same settings (threads, providers), and timed on the same texts
with ``run_direct`` (tokenization, padding and ONNX Runtime) on batches of 32 length-sorted
texts: the in-process limit that ``bench/classify.py`` reports as ``sorted_32``. Passes
alternate between the variants, so drift in what else the machine runs hits both alike; the
median pass counts. The logits of the first pass give each variant's accuracy on the file's
labels, compared with the held-out accuracy its manifest recorded.

    python bench/quantize.py --store var/bench-store --model sst2 \\
        --data ../shared/data/sst2/dev.tsv
    python bench/quantize.py --store models --model sentiment --data ../shared/data/sst2/dev.tsv \\
        --label-map 0=negative,1=positive --drop-label neutral
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from rich.console import Console
from rich.table import Table

from app.config import Settings
from app.metrics import Metrics
from app.runtime.engine import InferenceEngine
from app.runtime.tokenizer import TextTokenizer
from app.runtime.variants import VariantSetting
from app.service import engine_config
from app.store.manifest import FP32, INT8, Manifest
from app.store.versions import ModelStore
from bench.accuracy import evaluate, parse_label_map
from bench.common import (
    ROOT,
    add_labelled_data_args,
    background_cores,
    load_examples,
    machine_cpu,
    machine_info,
    report_console,
    round_floats,
    write_json,
)

BATCH = 32
VARIANTS: tuple[VariantSetting, VariantSetting] = ("fp32", "int8")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--store", type=Path, default=Path("models"), help="model store root")
    p.add_argument("--model", default="sentiment", help="`name` (its active version) or `name@N`")
    add_labelled_data_args(p, "model label never predicted: argmax over the others (repeatable)")
    p.add_argument("--passes", type=int, default=5, help="timed passes over the texts, each")
    p.add_argument("--intra-op-threads", type=int, help="TEXTSERVE_INTRA_OP_THREADS")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "quantize.json")
    return p.parse_args(argv)


def resolve(store: ModelStore, ref: str) -> tuple[str, int, Manifest]:
    name, _, version_text = ref.partition("@")
    version = int(version_text) if version_text else store.active_version(name)
    if version is None:
        raise SystemExit(f"{name!r} has no active version in {store.root}; name one: {name}@N")
    manifest = store.verify(name, version)  # the same checksum check serving makes
    missing = [v for v in VARIANTS if v not in manifest.variant_files()]
    if missing:
        raise SystemExit(f"{name}@{version} has no {', '.join(missing)} variant")
    return name, version, manifest


def time_pass(engine: InferenceEngine, batches: list[list[str]]) -> tuple[float, float, float]:
    """One pass over ``batches``: wall seconds, this process's CPU seconds, others' CPU seconds."""
    busy0, _ = machine_cpu()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for batch in batches:
        engine.run_direct(batch)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return seconds, cpu, max(0.0, machine_cpu()[0] - busy0 - cpu)


def logits_of(engine: InferenceEngine, batches: list[list[int]], texts: list[str]) -> np.ndarray:
    """Logits for every text, in file order, from the same length-sorted batches."""
    out: np.ndarray | None = None
    for idx in batches:
        outputs, _ = engine.run_direct([texts[i] for i in idx])
        logits = outputs[0]  # the first output: logits, (batch, labels)
        if out is None:
            out = np.zeros((len(texts), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
    assert out is not None
    return out


def predictions(logits: np.ndarray, labels: list[str], dropped: set[str]) -> list[str]:
    masked = logits.copy()
    for label in dropped:
        masked[:, labels.index(label)] = -np.inf
    return [labels[i] for i in masked.argmax(axis=1)]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    console = report_console()
    if args.intra_op_threads is not None:
        os.environ["TEXTSERVE_INTRA_OP_THREADS"] = str(args.intra_op_threads)
    settings = Settings(model_store=args.store)
    store = ModelStore(args.store)
    name, version, manifest = resolve(store, args.model)
    dropped = set(args.drop_label)
    if not dropped < set(manifest.labels):
        raise SystemExit(f"--drop-label {sorted(dropped)} not among {manifest.labels}")
    mapping = parse_label_map(args.label_map)
    examples = [e for e in load_examples(args.data, args.text_column, args.label_column) if e.label]
    examples = examples[: args.limit]
    if not examples:
        raise SystemExit(f"no labelled examples in {args.data}")
    texts = [e.text for e in examples]
    gold = [mapping.get(str(e.label), str(e.label)) for e in examples]
    unknown = Counter(g for g in gold if g not in manifest.labels)
    if unknown:
        console.print(
            f"[yellow]warning[/]: file labels the model does not have (always wrong): "
            f"{dict(unknown)}; map them with --label-map"
        )

    folder = store.version_dir(name, version)
    tokenizer = TextTokenizer(
        folder / manifest.tokenizer_file, manifest.max_seq_length, manifest.pad_token_id
    )
    lengths = [len(e.ids) for e in tokenizer.encode(texts)]
    order = sorted(range(len(texts)), key=lengths.__getitem__)
    index_batches = [order[i : i + BATCH] for i in range(0, len(order), BATCH)]
    batches = [[texts[i] for i in b] for b in index_batches]

    background = background_cores()
    if background > 0.2:
        console.print(
            f"[yellow]warning[/]: {background:.2f} cores busy before the run started; "
            "the figures will be noisy (see the 'other cores' column)"
        )
    base = engine_config(settings)
    engines: dict[str, InferenceEngine] = {}
    for variant in VARIANTS:
        # No batch-shape calibration: only run_direct is used, never the batcher.
        config = replace(base, variant=variant, calibrate=False)
        engine = InferenceEngine(folder, manifest, config, Metrics())
        if engine.variant != variant:
            raise SystemExit(f"asked for {variant}, the engine loaded {engine.variant}")
        engine.warmup()
        engine.run_direct(batches[-1])  # the widest shape's first run is not timed
        engines[variant] = engine

    passes: dict[str, list[tuple[float, float, float]]] = {v: [] for v in VARIANTS}
    try:
        logits = {v: logits_of(engines[v], index_batches, texts) for v in VARIANTS}
        for i in range(args.passes):
            # Alternate which variant goes first, so neither always runs on a warmer machine.
            for variant in VARIANTS if i % 2 == 0 else VARIANTS[::-1]:
                passes[variant].append(time_pass(engines[variant], batches))
            print(f"pass {i + 1}/{args.passes}", file=sys.stderr)
        provider = engines[FP32].provider
    finally:
        for engine in engines.values():
            engine.close(1.0)

    results: dict[str, Any] = {}
    for variant in VARIANTS:
        seconds = [p[0] for p in passes[variant]]
        median = statistics.median(seconds)
        cpu = sum(p[1] for p in passes[variant])
        pred = predictions(logits[variant], manifest.labels, dropped)
        scores = evaluate(gold, pred, manifest.labels)
        results[variant] = {
            "file": manifest.variant_files()[variant],
            "file_mb": (folder / manifest.variant_files()[variant]).stat().st_size / 1e6,
            "texts_per_s": len(texts) / median,
            "best_texts_per_s": len(texts) / min(seconds),
            "pass_seconds": seconds,
            "ms_per_batch": median * 1000 / len(batches),
            "cpu_ms_per_text": cpu * 1000 / (len(texts) * len(seconds)),
            "other_cores": sum(p[2] for p in passes[variant]) / sum(seconds),
            "accuracy": scores["accuracy"],
            "macro_f1": scores["macro_f1"],
            "per_label": scores["per_label"],
            "manifest_eval": manifest.variants[variant].eval,
        }
    fp32, int8 = results[FP32], results[INT8]
    agree = float((logits[FP32].argmax(axis=1) == logits[INT8].argmax(axis=1)).mean())
    report: dict[str, Any] = {
        "machine": {**machine_info(), "background_cores_at_start": background},
        "settings": {
            "intra_op_threads": settings.intra_op_threads,
            "inter_op_threads": settings.inter_op_threads,
            "providers": list(settings.providers),
            "provider": provider,
            "batch": BATCH,
            "passes": args.passes,
        },
        "model": {
            "name": name,
            "version": version,
            "labels": manifest.labels,
            "folder": str(folder),
        },
        "data": {
            "path": str(args.data),
            "n": len(texts),
            "mean_tokens": sum(lengths) / len(lengths),
            "label_map": mapping,
            "dropped_labels": sorted(dropped),
            "unknown_gold_labels": dict(unknown),
        },
        "variants": results,
        "int8_over_fp32_throughput": int8["texts_per_s"] / fp32["texts_per_s"],
        "int8_minus_fp32_accuracy_points": (int8["accuracy"] - fp32["accuracy"]) * 100,
        "argmax_agreement": agree,
    }
    render(report, console)
    write_json(args.out, round_floats(report))
    console.print(f"saved {args.out}")


def render(report: dict[str, Any], console: Console) -> None:
    model, data = report["model"], report["data"]
    table = Table(
        title=f"{model['name']}@{model['version']} on {Path(data['path']).name} "
        f"({data['n']} texts, batches of {BATCH} length-sorted, "
        f"{report['settings']['provider']})"
    )
    for column in (
        "variant", "MB", "texts/s", "best", "ms/batch", "cpu ms/text", "other cores",
        "x fp32", "accuracy", "Δ points", "macro-F1", "held-out acc",
    ):  # fmt: skip
        table.add_column(column, justify="right")
    fp32 = report["variants"][FP32]
    for variant, r in report["variants"].items():
        held_out = r["manifest_eval"].get("accuracy")
        table.add_row(
            variant,
            f"{r['file_mb']:.1f}",
            f"{r['texts_per_s']:.1f}",
            f"{r['best_texts_per_s']:.1f}",
            f"{r['ms_per_batch']:.1f}",
            f"{r['cpu_ms_per_text']:.2f}",
            f"{r['other_cores']:.2f}",
            f"{r['texts_per_s'] / fp32['texts_per_s']:.2f}",
            f"{r['accuracy']:.4f}",
            f"{(r['accuracy'] - fp32['accuracy']) * 100:+.2f}",
            f"{r['macro_f1']:.4f}",
            "-" if held_out is None else f"{held_out:.4f}",
        )
    console.print(table)
    console.print(
        f"int8 runs at [bold]{report['int8_over_fp32_throughput']:.2f}x[/] fp32's throughput, "
        f"accuracy {report['int8_minus_fp32_accuracy_points']:+.2f} points; the two agree on "
        f"{report['argmax_agreement']:.1%} of the predictions"
    )


if __name__ == "__main__":
    main()

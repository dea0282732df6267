"""Check that every real benchmark file loads as uploaded, with the right columns named.

Reads the public data sets by path (they are not part of the project) with the same parser
``POST /v1/files`` uses, and compares what it inferred with what each file really holds:

    python bench/check_datasets.py --data ../shared/data

Exits non-zero if a file fails to load or a column is inferred wrongly.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.training.datasets import parse_dataset
from app.training.errors import InvalidDataset

# file -> (text column, label column, rows, labels) as documented in each SOURCE.md
EXPECTED: dict[str, tuple[str, str, int, int]] = {
    "sst2/train.tsv": ("sentence", "label", 67_349, 2),
    "sst2/dev.tsv": ("sentence", "label", 872, 2),
    "sst2/test_labeled_sst.tsv": ("content", "label", 1_821, 2),
    "ag_news/train_subset_8k.csv": ("content", "label", 8_000, 4),
    "ag_news/train_subset_10k_alps.tsv": ("column_1", "column_2", 10_001, 4),
    "ag_news/test.csv": ("content", "label", 7_600, 4),
    "ag_news/test_with_titles.csv": ("description", "label", 7_600, 4),
    "banking77/train.csv": ("text", "category", 10_003, 77),
    "banking77/test.csv": ("text", "category", 3_080, 77),
    "bitext_customer_support/Bitext_Sample_Customer_Support_Training_Dataset.csv": (
        "instruction", "intent", 4_514, 27,
    ),
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args(argv)
    bad = 0
    for rel, (text, label, rows, labels) in EXPECTED.items():
        path = args.data / rel
        if not path.is_file():
            print(f"SKIP {rel}: not found under {args.data}")
            continue
        started = time.perf_counter()
        try:
            parsed = parse_dataset(path.read_bytes(), filename=path.name)
        except InvalidDataset as exc:
            print(f"FAIL {rel}: {exc}")
            bad += 1
            continue
        got = (
            parsed.text_column,
            parsed.label_column,
            len(parsed.examples),
            len(parsed.label_counts),
        )
        ok = got == (text, label, rows, labels)
        bad += not ok
        print(
            f"{'ok  ' if ok else 'FAIL'} {rel}: {parsed.format}, header={parsed.has_header}, "
            f"text={parsed.text_column!r}, label={parsed.label_column!r}, "
            f"{len(parsed.examples)} rows, {len(parsed.label_counts)} labels, "
            f"problems={[p.kind for p in parsed.problems]} "
            f"({time.perf_counter() - started:.2f} s)"
            + ("" if ok else f" expected {(text, label, rows, labels)}")
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

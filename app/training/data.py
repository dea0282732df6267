"""Labelled text examples: reading them, checking them against a label set, splitting them."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.training.errors import InvalidDataset

# Enough rows to catch a broken export, few enough to cost well under a second.
PARITY_ROWS = 64


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled text."""

    text: str
    label: str


def read_jsonl(path: Path) -> list[Example]:
    """Read ``{"text": ..., "label": ...}`` lines; blank lines are skipped, anything else is an
    error naming the line, so a bad row is fixed at its source instead of silently dropped."""
    examples: list[Example] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidDataset(f"cannot read {path}: {exc}") from exc
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidDataset(f"{path}:{lineno}: not valid JSON: {exc.msg}") from exc
        examples.append(_example(row, f"{path}:{lineno}"))
    if not examples:
        raise InvalidDataset(f"{path}: no examples")
    return examples


def _example(row: object, where: str) -> Example:
    if not isinstance(row, dict):
        raise InvalidDataset(f"{where}: expected an object with 'text' and 'label'")
    text, label = row.get("text"), row.get("label")
    if not isinstance(text, str) or not text.strip():
        raise InvalidDataset(f"{where}: 'text' must be a non-empty string")
    # Integer labels are common in exported data sets; they are names here like any other.
    if isinstance(label, bool) or not isinstance(label, str | int):
        raise InvalidDataset(f"{where}: 'label' must be a string")
    label = str(label).strip()
    if not label:
        raise InvalidDataset(f"{where}: 'label' is empty")
    return Example(text=text, label=label)


def check_labels(examples: Iterable[Example], labels: Sequence[str]) -> None:
    """Raise ``InvalidDataset`` unless ``labels`` are unique, at least two, and cover every row."""
    if len(labels) < 2:
        raise InvalidDataset(f"a classifier needs at least two labels, got {list(labels)}")
    if len(set(labels)) != len(labels):
        raise InvalidDataset(f"labels are not unique: {list(labels)}")
    known = set(labels)
    unknown = sorted({e.label for e in examples} - known)
    if unknown:
        raise InvalidDataset(f"examples use labels not in {list(labels)}: {unknown[:10]}")


def stratified_split(
    examples: Sequence[Example], eval_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Split into (train, eval) keeping each label's share, deterministically for a seed.

    Each label holds out ``round(n * eval_fraction)`` rows, at least one when it has two or
    more rows (so every label is evaluated) and never all of them (so every label is
    trained); a label with a single row goes to train. Both lists come back shuffled.
    """
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction}")
    rng = random.Random(seed)
    by_label: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_label[example.label].append(example)
    train: list[Example] = []
    held_out: list[Example] = []
    # Sorting first makes the split depend on the rows and the seed, not on file order.
    for label in sorted(by_label):
        rows = sorted(by_label[label], key=lambda e: e.text)
        rng.shuffle(rows)
        n_eval = (
            0 if len(rows) < 2 else min(max(round(len(rows) * eval_fraction), 1), len(rows) - 1)
        )
        held_out.extend(rows[:n_eval])
        train.extend(rows[n_eval:])
    rng.shuffle(train)
    rng.shuffle(held_out)
    return train, held_out


def parity_texts(examples: Sequence[Example]) -> list[str]:
    """The texts an export's parity check compares on: up to ``PARITY_ROWS`` of ``examples``."""
    texts = [e.text for e in examples[: PARITY_ROWS - 1]]
    # One row longer than any max_length (512 tokens), so that truncation is compared too.
    joined = " ".join(texts)
    texts.append(" ".join([joined] * (1 + 4096 // max(1, len(joined)))))
    return texts

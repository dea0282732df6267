"""Reading labelled JSON lines and splitting them by label."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from app.training.data import Example, check_labels, read_jsonl, stratified_split
from app.training.errors import InvalidDataset


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _examples(counts: dict[str, int]) -> list[Example]:
    return [Example(f"{label} text {i}", label) for label, n in counts.items() for i in range(n)]


def test_read_jsonl_reads_rows_and_skips_blank_lines(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "d.jsonl",
        [
            json.dumps({"text": "great", "label": "pos"}),
            "",
            json.dumps({"text": "ünïcode ok", "label": 3, "extra": "ignored"}),
        ],
    )

    assert read_jsonl(path) == [Example("great", "pos"), Example("ünïcode ok", "3")]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["text", "label"]', "expected an object"),
        ('{"label": "x"}', "'text' must be"),
        ('{"text": "  ", "label": "x"}', "'text' must be"),
        ('{"text": "t"}', "'label' must be"),
        ('{"text": "t", "label": true}', "'label' must be"),
        ('{"text": "t", "label": " "}', "'label' is empty"),
    ],
)
def test_read_jsonl_names_the_bad_line(tmp_path: Path, line: str, message: str) -> None:
    path = _write(tmp_path / "d.jsonl", [json.dumps({"text": "ok", "label": "a"}), line])

    with pytest.raises(InvalidDataset, match=rf"d\.jsonl:2: .*{message}"):
        read_jsonl(path)


def test_read_jsonl_refuses_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidDataset, match="no examples"):
        read_jsonl(_write(tmp_path / "empty.jsonl", ["", "  "]))
    with pytest.raises(InvalidDataset, match="cannot read"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_check_labels() -> None:
    examples = _examples({"a": 1, "b": 1})
    check_labels(examples, ["a", "b", "c"])
    with pytest.raises(InvalidDataset, match="not in"):
        check_labels(examples, ["a", "c"])
    with pytest.raises(InvalidDataset, match="at least two"):
        check_labels([], ["a"])
    with pytest.raises(InvalidDataset, match="not unique"):
        check_labels([], ["a", "b", "a"])


def test_split_is_a_partition_that_evaluates_and_trains_every_label() -> None:
    examples = _examples({"big": 50, "mid": 7, "two": 2, "one": 1})

    train, held_out = stratified_split(examples, 0.2, seed=1)

    assert Counter(train + held_out) == Counter(examples)
    eval_counts = Counter(e.label for e in held_out)
    train_counts = Counter(e.label for e in train)
    assert eval_counts == {"big": 10, "mid": 1, "two": 1}
    assert train_counts == {"big": 40, "mid": 6, "two": 1, "one": 1}


def test_split_is_deterministic_and_independent_of_row_order() -> None:
    examples = _examples({"a": 20, "b": 11, "c": 5})

    first = stratified_split(examples, 0.25, seed=7)

    assert stratified_split(list(reversed(examples)), 0.25, seed=7) == first
    assert stratified_split(examples, 0.25, seed=8) != first


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_refuses_fractions_outside_zero_one(fraction: float) -> None:
    with pytest.raises(ValueError, match="eval_fraction"):
        stratified_split(_examples({"a": 4}), fraction, seed=0)

"""Hypothesis properties: the batcher gives each caller its rows; parsers fail only cleanly;
the JSON depth scan agrees with the parser."""

from __future__ import annotations

import asyncio
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.api.json_depth import exceeds_depth, json_depth
from app.runtime.batcher import BatchLimits, DynamicBatcher
from app.training.datasets import parse_dataset
from app.training.errors import InvalidDataset
from tests.unit.test_batcher import RecordingRunner, expected_rows, word_tokenize

WORDS = st.sampled_from(["a", "bb", "ccc", "refund", "parcel", "delivery", "x" * 30])
TEXT = st.lists(WORDS, min_size=1, max_size=40).map(" ".join)
REQUESTS = st.lists(st.lists(TEXT, min_size=1, max_size=10), min_size=1, max_size=25)
LIMITS = st.builds(
    BatchLimits,
    max_batch_size=st.integers(1, 16),
    max_batch_tokens=st.integers(16, 600),
    max_wait_s=st.sampled_from([0.0, 0.001, 0.003]),
)
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(requests=REQUESTS, limits=LIMITS)
def test_batcher_gives_every_caller_exactly_its_rows(
    requests: list[list[str]], limits: BatchLimits
) -> None:
    runner = RecordingRunner()
    batcher = DynamicBatcher(word_tokenize, runner, limits)

    async def main() -> list[list[list[int]]]:
        results = await asyncio.gather(*(batcher.submit(t, timeout_s=30) for t in requests))
        return [r.outputs[0].tolist() for r in results]

    try:
        answers = asyncio.run(main())
    finally:
        batcher.close()
        batcher.join(5)
    for texts, rows in zip(requests, answers, strict=True):
        assert rows == [expected_rows(t)[0] for t in texts]
    for lengths in runner.batches:
        assert len(lengths) <= limits.max_batch_size
        # A single text longer than the token budget still runs, alone.
        if len(lengths) > 1:
            assert max(lengths) * len(lengths) <= limits.max_batch_tokens


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=2000), filename=st.sampled_from([None, "d.csv", "d.jsonl", "d.tsv"]))
def test_dataset_parser_accepts_or_refuses_cleanly(data: bytes, filename: str | None) -> None:
    try:
        parsed = parse_dataset(data, filename=filename)
    except InvalidDataset:
        return  # refused with a reason: what an upload of junk should get
    assert parsed.examples
    assert all(e.text.strip() and e.label.strip() for e in parsed.examples)


CELL = st.text(st.characters(codec="utf-8", exclude_categories=("C", "Z")), min_size=1, max_size=30)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(CELL, st.sampled_from(["pos", "neg", "other"])), min_size=1))
def test_jsonl_rows_survive_parsing(rows: list[tuple[str, str]]) -> None:
    data = "\n".join(json.dumps({"text": t, "label": lab}) for t, lab in rows).encode()
    parsed = parse_dataset(data, filename="d.jsonl")
    assert [(e.text, e.label) for e in parsed.examples] == rows


# Text rich in what could fool a byte scanner: brackets, quotes, backslashes, non-ASCII.
TRICKY = st.text(st.sampled_from(list('[]{}"\\/ aé\n\u2028日')), max_size=12)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TRICKY,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY, inner, max_size=4),
    max_leaves=40,
)


def python_depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((python_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((python_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(
    value=JSON_VALUES,
    ensure_ascii=st.booleans(),
    indent=st.sampled_from([None, 0, 2]),
    encoding=st.sampled_from(["utf-8", "utf-16", "utf-32-be"]),
    limit=st.integers(1, 8),
)
def test_json_depth_scan_agrees_with_the_parser(
    value: object, ensure_ascii: bool, indent: int | None, encoding: str, limit: int
) -> None:
    body = json.dumps(value, ensure_ascii=ensure_ascii, indent=indent).encode(encoding)
    depth = python_depth(json.loads(body))
    assert json_depth(body) == depth
    assert exceeds_depth(body, limit) is (depth > limit)

"""textserve replay: reading recorded texts, their pace, and retries on overload."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.replay import ReplayError, Row, read_rows, replay, schedule


def test_csv_with_a_header_and_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "posts.csv"
    path.write_text(
        'timestamp,text\n2026-01-01T09:00:00Z,"late parcel, again"\n2026-01-01T09:00:02Z,fine\n'
    )
    rows = read_rows(path)
    assert [r.text for r in rows] == ["late parcel, again", "fine"]
    assert rows[0].at is not None
    assert rows[1].at == rows[0].at + 2


def test_jsonl_with_unix_seconds_and_without(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_text('{"text": "a", "timestamp": 100}\n\n{"text": "b"}\n')
    assert read_rows(path) == [Row("a", 100.0), Row("b", None)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "a"}\n{"txt": "b"}\n', "posts.jsonl:2: expected an object"),
        ('{"text": "a", "timestamp": "yesterday"}\n', "neither ISO 8601 nor Unix seconds"),
        ("", "no texts"),
    ],
)
def test_bad_files_say_where(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_text(content)
    with pytest.raises(ReplayError, match=message):
        read_rows(path)


def test_pace_from_timestamps_speed_or_rate() -> None:
    rows = [Row("a", 10.0), Row("b", 14.0), Row("c", 12.0), Row("d", 20.0)]
    assert schedule(rows, None, 1.0) == [0.0, 4.0, 4.0, 10.0]  # out of order: right after
    assert schedule(rows, None, 2.0) == [0.0, 2.0, 2.0, 5.0]
    assert schedule(rows, 4.0, 1.0) == [0.0, 0.25, 0.5, 0.75]
    assert schedule([Row("a", None), Row("b", 3.0)], None, 1.0) == [0.0, 0.0]


def test_overload_is_retried_after_the_servers_pause() -> None:
    now = [0.0]
    answers = iter([(429, {}, 2.0), (200, _ok("billing", "negative"), 0.0), (422, {}, 1.0)])
    sent: list[str] = []

    def send(text: str) -> tuple[int, dict[str, object], float]:
        sent.append(text)
        return next(answers)

    def sleep(s: float) -> None:
        now[0] += s

    outcome = replay(
        [Row("a", 0.0), Row("b", 1.0)], send, clock=lambda: now[0], sleep=sleep, speed=1.0
    )
    assert sent == ["a", "a", "b"]
    assert (outcome.sent, outcome.failed) == (1, 1)
    assert outcome.opinions == {("billing", "negative"): 1}
    assert now[0] == 2.0  # the retry's pause; b was due at 1.0 and went right after


def _ok(topic: str, sentiment: str) -> dict[str, object]:
    return {"results": [{"topic": {"label": topic}, "sentiment": {"label": sentiment}}]}

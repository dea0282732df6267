"""The one server-sent-events framing (app/api/sse.py) that both streaming routes use."""

from __future__ import annotations

from app.api import sse


def test_an_event_carries_its_id_and_name_before_its_data() -> None:
    framed = sse.event('{"a":1}', name="progress", event_id=7)
    assert framed == 'id: 7\nevent: progress\ndata: {"a":1}\n\n'
    assert sse.event("[x]") == "data: [x]\n\n"


def test_data_with_line_breaks_stays_one_event() -> None:
    # A bare newline inside data would end the field early; each line gets its own data:.
    framed = sse.event("first\nsecond")
    assert framed == "data: first\ndata: second\n\n"
    assert framed.count("\n\n") == 1

"""What the texts-per-second bucket charges for each inference route's body."""

from __future__ import annotations

from typing import Any

import pytest

from app.api.auth import texts_in


@pytest.mark.parametrize(
    ("body", "texts"),
    [
        ({"texts": ["a", "b", "c"]}, 3),
        ({"text": "a"}, 1),
        ({"input": "a"}, 1),
        ({"input": ["a"] * 5}, 5),
        ({"query": "q", "documents": ["a", {"text": "b"}]}, 2),
        ({"user": {"history": ["a", "b"]}, "candidates": [{"id": "x", "text": "y"}] * 4}, 6),
        ({"user": {"text": "a"}, "candidates": [{"id": "x", "text": "y"}] * 4}, 4),
        ({"input": []}, 1),
        (["not", "an", "object"], 1),
    ],
)
def test_every_text_a_body_sends_is_counted(body: Any, texts: int) -> None:
    assert texts_in(body) == texts

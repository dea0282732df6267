"""What counts as blank text."""

from __future__ import annotations

import pytest

from app.serving.text import is_blank


@pytest.mark.parametrize(
    "text", ["", " ", "\t\n\r ", "\u0000", "\u200b\u200b\ufeff", " \u200b \u0007 ", "\u2028"]
)
def test_nothing_visible_is_blank(text: str) -> None:
    assert is_blank(text)


@pytest.mark.parametrize("text", ["a", " ok ", "\u200bhello", "\ufeff\u0000x", "é", "日本", "?"])
def test_anything_visible_is_text(text: str) -> None:
    assert not is_blank(text)

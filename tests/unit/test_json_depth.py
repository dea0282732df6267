"""The JSON nesting scanner: depth read from raw bytes, strings and escapes honoured."""

from __future__ import annotations

import json

import pytest

from app.api.json_depth import exceeds_depth, json_depth
from app.api.middleware import is_json_type


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"", 0),
        (b"1", 0),
        (b'"text"', 0),
        (b"[]", 1),
        (b"{}", 1),
        (b'{"text": "great", "task": "sentiment"}', 1),
        (b'{"texts": ["a", "b"]}', 2),
        (b'{"a": [1, {"b": [[]]}], "c": {}}', 5),
        # Siblings do not add up: depth is the deepest path, not the bracket count.
        (b"[[], [], [], [[]]]", 3),
        (b" \n\t[ [ ] ]\n", 2),
    ],
)
def test_depth_of_plain_documents(body: bytes, depth: int) -> None:
    assert json_depth(body) == depth


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        # Brackets and braces inside strings are text.
        (b'{"text": "[[[[{{{{"}', 1),
        (b'["]]]]", "}}}"]', 1),
        # An escaped quote does not end the string: the brackets after it are still text.
        (rb'{"text": "say \"[[[[\" twice"}', 1),
        # An escaped backslash does end before the quote: the string closes there.
        (rb'{"a": "\\", "b": [[1]]}', 3),
        # Three backslashes: an escaped backslash, then an escaped quote; still inside.
        (rb'{"a": "\\\"[[[", "b": []}', 2),
        # Other escapes, a unicode escape spelling a bracket, and keys with brackets.
        (rb'{"\u005b[": "\n\t[", "x]": ["\u007b"]}', 2),
        # Non-ASCII text, whose UTF-8 bytes are never brackets.
        ('{"text": ["é[ü", "日本"]}'.encode(), 2),
    ],
)
def test_strings_and_escapes_hide_brackets(body: bytes, depth: int) -> None:
    assert json_depth(body) == depth
    assert depth == _python_depth(json.loads(body))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_json_in_utf16_and_utf32_is_read_like_utf8(encoding: str) -> None:
    text = r'{"a": "\"[[[", "b": [[["ü"]]]}'
    # The json module reads these encodings too: the scan must agree with it.
    assert _python_depth(json.loads(text.encode(encoding))) == 4
    assert json_depth(text.encode(encoding)) == 4


def test_truncated_bodies_count_their_open_brackets_not_their_text() -> None:
    assert json_depth(b"[[[[") == 4
    # An unterminated string runs to the end: its brackets are text.
    assert json_depth(b'{"text": "[[[[[[') == 1


def test_exceeds_depth_is_strictly_beyond_the_limit() -> None:
    for limit in (1, 2, 5, 32):
        at_limit = b"[" * limit + b"]" * limit
        beyond = b"[" * (limit + 1) + b"]" * (limit + 1)
        assert not exceeds_depth(at_limit, limit)
        assert exceeds_depth(beyond, limit)
    # More brackets than the limit, but side by side: the full scan clears them.
    assert not exceeds_depth(b"[" + b"[1]," * 100 + b"[1]]", 32)
    assert not exceeds_depth(b'["' + b"[" * 100 + b'"]', 32)


def test_deep_attack_bodies_are_caught_without_parsing() -> None:
    deep_array = b'{"text": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    deep_object = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    # Unclosed: the parser would recurse as far as the brackets go before failing.
    unclosed = b"[" * 100_000
    for body in (deep_array, deep_object, unclosed):
        assert exceeds_depth(body, 32)
    assert json_depth(deep_array) == 10_001


@pytest.mark.parametrize(
    ("content_type", "is_json"),
    [
        (None, True),
        ("", True),
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/merge-patch+json", True),
        ("text/plain", False),
        ("multipart/form-data; boundary=x", False),
        ("application/x-www-form-urlencoded", False),
        ("text/json-ish+json", False),
    ],
)
def test_which_content_types_are_checked(content_type: str | None, is_json: bool) -> None:
    assert is_json_type(content_type) is is_json


def _python_depth(value: object) -> int:
    """The depth of a parsed value: what the scan must find in its serialization."""
    if isinstance(value, list):
        return 1 + max((_python_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_python_depth(v) for v in value.values()), default=0)
    return 0

"""How deeply a JSON document nests, read from its raw bytes without parsing it.

Python's ``json`` parser recurses once per array or object: a body of 10,000 ``[`` makes it
raise ``RecursionError`` (which FastAPI answers as a bare 400), and a few hundred levels
already cost stack and time before any validation runs. Measuring the depth on the bytes
first lets the service refuse such bodies cheaply, with an answer that names the limit.

No step loops over bytes in Python: ``bytes.count``, ``bytes.replace`` and
``bytes.translate`` run in C, then numpy does the running sums. A hostile 2 MB body of
brackets and quotes costs a few milliseconds, less than ``json.loads`` spends on it.
"""

from __future__ import annotations

import json

import numpy as np

_QUOTE = ord('"')
# Structure is brackets, braces and the quotes that say which of them are text.
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'"[]{}')))
# Depth change per byte of the skeleton: openers +1, closers -1, quotes 0.
_STEP = np.zeros(256, dtype=np.int8)
_STEP[list(b"[{")] = 1
_STEP[list(b"]}")] = -1
_UTF8 = ("utf-8", "utf-8-sig")


def _as_utf8(body: bytes) -> bytes:
    """``body`` in UTF-8: JSON may come in UTF-16 or UTF-32, where a backslash's NUL byte
    would be taken for the escaped character."""
    encoding = json.detect_encoding(body)
    if encoding in _UTF8:
        return body
    return body.decode(encoding, "replace").encode("utf-8")


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in ``body``: 0 for a scalar, 1 for ``[]``.

    Exact for valid JSON. For invalid JSON it is some figure; the parser rejects the body
    anyway.
    """
    text = _as_utf8(body)
    # Escapes, paired left to right as JSON reads them: in a run of backslashes each pair
    # is one escaped backslash, and an odd one left over escapes the byte after it. Once
    # both are gone, no quote in what remains is escaped. Other escapes (\n, \u...) hide
    # neither a quote nor a bracket and can stay.
    if b"\\" in text:
        text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = np.frombuffer(text.translate(None, _NOT_STRUCTURE), dtype=np.uint8)
    if skeleton.size == 0:
        return 0
    # A byte is inside a string when an odd number of quotes precedes it (an unterminated
    # string, in a truncated body, runs to the end): its brackets are text, not structure.
    # int32 sums: a body has far fewer than 2**31 bytes (max_body_bytes caps it).
    outside = (np.cumsum(skeleton == _QUOTE, dtype=np.int32) & 1) == 0
    steps = _STEP.take(skeleton) * outside
    return max(0, int(np.cumsum(steps, dtype=np.int32).max()))


def exceeds_depth(body: bytes, limit: int) -> bool:
    """Whether ``body`` nests deeper than ``limit``.

    Nesting ``limit + 1`` deep takes at least ``limit + 1`` opening bytes, so a body with
    fewer (almost every request) is cleared by two counts, without the scan. The count holds
    for UTF-16 and UTF-32 too: every bracket there still contains its ASCII byte.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    return json_depth(body) > limit

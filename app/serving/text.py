"""What counts as text: shared by request checks and slot filling."""

from __future__ import annotations


def is_blank(text: str) -> bool:
    """Whether ``text`` shows nothing: empty, whitespace, or only invisible characters
    (NUL and other controls, zero-width spaces, byte-order marks).

    Cheap on the hot path: a text that starts, once stripped, with a printable character
    (nearly every real one) is decided by that character; only the rest are scanned.
    """
    s = text.strip()
    if not s:
        return True
    # After strip(), s[0] is not whitespace, so printable here means visible.
    if s[0].isprintable():
        return False
    return not any(c.isprintable() and not c.isspace() for c in s)

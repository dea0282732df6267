"""Names a thread at the OS level, so that ``top -H``, ``ps -L`` and /proc show its role.

Python (before 3.14) names threads only for itself: every thread of the server shows up as
``textserve`` to the tools an operator uses when one thread eats a core. Linux only; elsewhere
(or without libc) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_PR_SET_NAME, _PR_GET_NAME = 15, 16  # prctl(2)
_libc: ctypes.CDLL | None = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        _libc = None


def name_this_thread(name: str) -> None:
    """Set the calling thread's OS name (the kernel keeps the first 15 bytes)."""
    if _libc is None:
        return
    _libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


@contextmanager
def children_named(name: str) -> Iterator[None]:
    """Threads started inside this block (ORT's thread pools) are named ``name``.

    A new thread takes its creator's name, and ONNX Runtime starts its pool threads when a
    session is created: this names the creating thread for that moment, then restores it.
    """
    if _libc is None:
        yield
        return
    saved = ctypes.create_string_buffer(16)
    _libc.prctl(_PR_GET_NAME, saved, 0, 0, 0)
    name_this_thread(name)
    try:
        yield
    finally:
        _libc.prctl(_PR_SET_NAME, saved.value, 0, 0, 0)


__all__ = ["children_named", "name_this_thread"]

"""Threads named for the OS show their role in top -H and /proc."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from app.runtime.threadname import name_this_thread


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="OS thread names: Linux only")
def test_a_named_thread_shows_its_name_in_proc() -> None:
    seen: list[str] = []

    def work() -> None:
        name_this_thread("ts-a-very-long-thread-name")
        seen.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip())

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == ["ts-a-very-long-"]  # the kernel keeps 15 bytes

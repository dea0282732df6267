"""Stop working for a client that has gone: its queued texts never reach the model.

Uvicorn does not cancel a request's task when the client closes the connection; it only
answers ``http.disconnect`` to the next ``receive()``. A client that times out and retries
would otherwise leave its abandoned request in the queue, and under overload every retry
adds another copy of the work. ``unless_client_leaves`` listens for the disconnect while
the answer is being computed and cancels it: the batcher drops the request's queued rows
(app/runtime/batcher.py). The ``ClientGone`` it raises is answered like any other error, by
the app's one mapping (app/api/errors.py), with status 499, nginx's "client closed request":
nobody reads that answer, but the metrics and the access log count the request as such.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from app.api.middleware import Receive

T = TypeVar("T")

CLIENT_GONE_STATUS = 499


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


async def unless_client_leaves(work: Awaitable[T], receive: Receive) -> T:
    """``await work``, unless the client disconnects first: then raise ``ClientGone``.

    Call it once the request's body has been read: every ``receive()`` after that waits for
    the disconnect. One watcher task per request; it is gone before the answer is sent.
    """
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise  # cancelled by someone else (shutdown): not ours to swallow
        task.uncancel()
        raise ClientGone from None
    finally:
        watcher.cancel()

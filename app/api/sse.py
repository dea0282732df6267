"""Server-sent events: the one framing of every stream the API sends.

Fine-tune events (``/v1/fine-tunes/{id}/events?stream=true``) and chat completion chunks
(``/v1/chat/completions`` with ``stream: true``) both go out through here, so the framing,
the headers that keep proxies from buffering, and the keep-alive comment are written once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from fastapi.responses import StreamingResponse

MEDIA_TYPE = "text/event-stream"
# No caching, and no buffering by nginx-style proxies: each event reaches the client as sent.
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# A comment line: ignored by clients, it keeps idle connections from being cut.
KEEPALIVE = ": keep-alive\n\n"
# The OpenAI convention for the end of a chat stream.
DONE = "data: [DONE]\n\n"


def event(data: str, *, name: str | None = None, event_id: int | None = None) -> str:
    """One event: optional ``id:`` and ``event:`` lines, then ``data`` (one ``data:`` line per
    line of it, as the format requires), then the blank line that ends it."""
    lines = [] if event_id is None else [f"id: {event_id}"]
    if name is not None:
        lines.append(f"event: {name}")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return "\n".join(lines) + "\n\n"


def response(
    events: AsyncIterator[str], headers: Mapping[str, str] | None = None
) -> StreamingResponse:
    """A streamed answer of ``events`` with the stream headers (and ``headers``) set."""
    return StreamingResponse(events, media_type=MEDIA_TYPE, headers={**(headers or {}), **HEADERS})

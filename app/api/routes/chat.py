"""POST /v1/chat/completions: the OpenAI chat API over a reply model.

The last message must be the customer's (``role: user``); the messages before it are the
conversation (the API is stateless: no server-side memory here). The reply is computed
before the answer starts, so every refusal (404, 422, 429, 503, 504) is an ordinary HTTP
status that clients retry as they would with OpenAI. With ``stream: true`` the reply then
goes out as ``chat.completion.chunk`` server-sent events, a few words per chunk, and
``data: [DONE]``; anything that fails after the first byte is sent as a ``data: {"error":
...}`` event and the stream ends without ``[DONE]`` (the ``openai`` client raises on it).

Extension fields: the answer (and the first chunk of a stream) carries ``textserve``:
intent, confidence, handoff, handoff_reason, missing_slots, alternatives, sentiment,
context_used, version. A request may carry ``textserve: {"slots": {...}}``.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api import sse
from app.api.deps import ServicesDep, caller_of
from app.api.disconnect import unless_client_leaves
from app.api.errors import STATUS, InvalidInput
from app.api.inference import ERRORS, timeout_seconds, timing_headers
from app.api.routes.reply import check_message, json_response, reply_view
from app.api.schemas_chat import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    ChatExtensionView,
    ChatMessage,
    Choice,
    ChunkDelta,
    Usage,
    chunk,
)
from app.api.schemas_reply import slot_strings
from app.config import Settings
from app.errors import TextserveError
from app.serving.conversations import Role, Turn
from app.serving.refs import ModelRef

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["openai"])

WORDS_PER_CHUNK = 4
_WORDS = re.compile(r"\S+\s*|\s+")
_HISTORY_ROLES: dict[str, Role] = {
    "user": "user",
    "assistant": "assistant",
    "system": "system",
    "developer": "system",
}


def split_messages(settings: Settings, messages: list[ChatMessage]) -> tuple[str, list[Turn]]:
    """The customer's last message, and the turns before it as history."""
    last = len(messages) - 1
    if messages[last].role != "user":
        raise InvalidInput(
            f"messages.{last}.role", "the last message must be the customer's (user)"
        )
    message = messages[last].text
    check_message(settings, message, f"messages.{last}.content")
    history: list[Turn] = []
    for i, m in enumerate(messages[:last]):
        if len(m.text) > settings.max_text_chars:
            raise InvalidInput(
                f"messages.{i}.content", f"text has more than {settings.max_text_chars} characters"
            )
        # Tool and function results are not part of what the customer said.
        role = _HISTORY_ROLES.get(m.role)
        if role is not None and m.text:
            history.append(Turn(role, m.text))
    return message, history


def reply_pieces(text: str) -> list[str]:
    """The reply in chunks of a few words; joined they give back ``text`` exactly."""
    words = _WORDS.findall(text)
    return ["".join(words[i : i + WORDS_PER_CHUNK]) for i in range(0, len(words), WORDS_PER_CHUNK)]


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, services: ServicesDep
) -> Response:
    """OpenAI-compatible chat completion: the reply model's vetted answer to the last message."""
    settings = services.settings
    message, history = split_messages(settings, body.messages)
    ext = body.textserve
    work = services.responder.reply(
        message,
        model=ModelRef.parse(body.model),
        history=history,
        slots=slot_strings(ext.slots if ext else None),
        knowledge_base=ext.knowledge_base if ext else None,
        caller=caller_of(request),
        timeout_s=timeout_seconds(
            settings, ext.timeout_ms if ext else None, "textserve.timeout_ms"
        ),
    )
    result = await unless_client_leaves(work, request.receive)
    base: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "created": int(time.time()),
        "model": result.model,
        "system_fingerprint": f"{result.model}@{result.version}",
    }
    extension = ChatExtensionView(**reply_view(result), version=result.version)
    prompt_tokens, completion_tokens = result.usage()
    usage = Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )
    headers = timing_headers(result.timings)
    if not body.stream:
        answer = ChatCompletion(
            **base,
            choices=[Choice(message=AssistantMessage(content=result.reply))],
            usage=usage,
            textserve=extension,
        )
        return json_response(answer, headers)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    events = stream_events(base, result.reply, extension, usage if include_usage else None, request)
    return sse.response(events, headers)


async def stream_events(
    base: dict[str, Any],
    text: str,
    extension: ChatExtensionView,
    usage: Usage | None,
    request: Request,
) -> AsyncIterator[str]:
    """Role chunk (with the extension), content chunks, finish chunk, [usage chunk], [DONE]."""
    # With include_usage, OpenAI sends "usage": null on every chunk but the last.
    nulls: dict[str, Any] = {} if usage is None else {"usage": None}
    try:
        first = ChunkDelta(role="assistant", content="")
        yield sse.event(chunk(base, first, textserve=extension, **nulls))
        for piece in reply_pieces(text):
            yield sse.event(chunk(base, ChunkDelta(content=piece), **nulls))
        yield sse.event(chunk(base, ChunkDelta(), "stop", **nulls))
        if usage is not None:
            yield sse.event(chunk(base, None, usage=usage))
        yield sse.DONE
    except Exception as exc:  # the status line is gone: the error travels as an event
        request_id = getattr(request.state, "request_id", None)
        log.exception("chat stream %s failed after it started", request_id)
        error = {"error": _error_body(exc, request_id)}
        yield sse.event(json.dumps(error, separators=(",", ":"), ensure_ascii=False))


def _error_body(exc: Exception, request_id: str | None) -> dict[str, Any]:
    if isinstance(exc, TextserveError):
        status = next((s for t, s in STATUS.items() if isinstance(exc, t)), 500)
        code, message = exc.code, str(exc)
    else:
        status, code, message = 500, "internal_error", "internal error; see the server log"
    return {
        "type": code,
        "message": message,
        "param": None,
        "code": code,
        "status": status,
        "request_id": request_id,
    }

"""Kept conversations in the Redis the replicas share: a follow-up may land on any replica.

One Redis list per conversation, one JSON object per turn. Adding turns is one transaction
(append, keep the last ``max_turns``, push the expiry back to ``ttl_s``): one round trip,
and two replicas adding at once each keep both their turns. Reading drops turns older than
``ttl_s``, as the in-process store does; a conversation idle for ``ttl_s`` expires whole.
Memory is Redis's to bound (its ``maxmemory`` and eviction policy, docs/scale-out.md), so
``max_bytes`` and ``max_conversations`` apply to the in-process store only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson

from app.cluster.redis_link import RedisLink
from app.errors import SharedStateUnavailable
from app.serving.conversations import ConversationLimits, Turn

T = TypeVar("T")


class RedisConversations:
    """``Conversations`` in Redis; ``SharedStateUnavailable`` when Redis cannot be reached."""

    def __init__(
        self,
        link: RedisLink,
        limits: ConversationLimits,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.link = link
        self.limits = limits
        self._clock = clock

    def _key(self, conversation_id: str) -> str:
        return self.link.key("conv", conversation_id)

    async def _call(self, operation: Callable[[Any], Awaitable[T]]) -> T:
        try:
            return await self.link.call("conversations", operation)
        except SharedStateUnavailable:
            # Counted here, raised on: /reply answers without the kept turns (stateless),
            # /v1/conversations with 503.
            self.link.fallback("conversations", "stateless")
            raise

    async def read(self, conversation_id: str) -> list[Turn]:
        key = self._key(conversation_id)
        raw = await self._call(lambda r: r.lrange(key, 0, -1))
        cutoff = self._clock() - self.limits.ttl_s
        turns = (_turn(orjson.loads(item)) for item in raw)
        return [turn for turn in turns if turn.at > cutoff]

    async def add(self, conversation_id: str, *turns: Turn) -> None:
        if not turns:
            return
        key = self._key(conversation_id)
        now = self._clock()
        items = [orjson.dumps(_fields(turn, now)) for turn in turns]
        max_turns = self.limits.max_turns
        ttl_ms = math.ceil(self.limits.ttl_s * 1000)

        async def append(client: Any) -> None:
            async with client.pipeline(transaction=True) as pipe:
                pipe.rpush(key, *items)
                pipe.ltrim(key, -max_turns, -1)
                pipe.pexpire(key, ttl_ms)
                await pipe.execute()

        await self._call(append)

    async def delete(self, conversation_id: str) -> bool:
        key = self._key(conversation_id)
        removed: int = await self._call(lambda r: r.delete(key))
        return removed > 0


def _fields(turn: Turn, now: float) -> dict[str, Any]:
    return {
        "role": turn.role,
        "content": turn.content,
        "at": now,
        "intent": turn.intent,
        "confidence": turn.confidence,
        "handoff": turn.handoff,
        "handoff_reason": turn.handoff_reason,
    }


def _turn(fields: dict[str, Any]) -> Turn:
    return Turn(
        role=fields["role"],
        content=fields["content"],
        at=float(fields["at"]),
        intent=fields.get("intent"),
        confidence=fields.get("confidence"),
        handoff=fields.get("handoff"),
        handoff_reason=fields.get("handoff_reason"),
    )

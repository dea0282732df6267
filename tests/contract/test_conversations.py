"""The kept-conversation contract, for the in-process store and for Redis alike."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from app.serving.conversations import (
    ConversationLimits,
    Conversations,
    ConversationStore,
    Turn,
    conversation_key,
)
from app.serving.conversations_redis import RedisConversations
from tests.contract.conftest import redis_link


@asynccontextmanager
async def store(
    request: pytest.FixtureRequest, backend: str, limits: ConversationLimits
) -> AsyncIterator[Conversations]:
    if backend == "in_process":
        yield ConversationStore(limits)
        return
    async with redis_link(request.node.redis_url) as link:
        yield RedisConversations(link, limits)


def exchange(message: str, reply: str) -> tuple[Turn, Turn]:
    return (
        Turn("user", message, intent="delivery_time", confidence=0.8),
        Turn(
            "assistant",
            reply,
            intent="delivery_time",
            confidence=0.8,
            handoff=True,
            handoff_reason="negative_sentiment",
        ),
    )


def test_turns_come_back_in_order_with_what_the_model_made_of_them(
    request: pytest.FixtureRequest, backend: str
) -> None:
    async def main() -> None:
        async with store(request, backend, ConversationLimits()) as conversations:
            assert await conversations.read("c") == []
            before = time.time()
            await conversations.add("c", *exchange("where is my parcel?", "On its way."))
            await conversations.add("c", Turn("user", "thanks"))
            turns = await conversations.read("c")
            assert [(t.role, t.content) for t in turns] == [
                ("user", "where is my parcel?"),
                ("assistant", "On its way."),
                ("user", "thanks"),
            ]
            said, answered, plain = turns
            assert (said.intent, said.confidence, said.handoff) == ("delivery_time", 0.8, None)
            assert answered.handoff is True
            assert answered.handoff_reason == "negative_sentiment"
            assert plain.intent is None and plain.confidence is None
            # Stamped when recorded, in Unix seconds.
            assert all(before <= t.at <= time.time() for t in turns)

    asyncio.run(main())


def test_only_the_last_turns_are_kept(request: pytest.FixtureRequest, backend: str) -> None:
    async def main() -> None:
        async with store(request, backend, ConversationLimits(max_turns=3)) as conversations:
            for i in range(10):
                await conversations.add("c", Turn("user", f"message {i}"))
            turns = await conversations.read("c")
            assert [t.content for t in turns] == ["message 7", "message 8", "message 9"]

    asyncio.run(main())


def test_old_turns_and_idle_conversations_expire(
    request: pytest.FixtureRequest, backend: str
) -> None:
    async def main() -> None:
        async with store(request, backend, ConversationLimits(ttl_s=1.0)) as conversations:
            await conversations.add("c", Turn("user", "first"))
            await asyncio.sleep(0.6)
            await conversations.add("c", Turn("user", "second"))
            await asyncio.sleep(0.6)  # "first" is 1.2 s old, "second" 0.6 s
            assert [t.content for t in await conversations.read("c")] == ["second"]
            await asyncio.sleep(1.1)  # idle for longer than the TTL
            assert await conversations.read("c") == []

    asyncio.run(main())


def test_delete_forgets_and_says_whether_there_was_one(
    request: pytest.FixtureRequest, backend: str
) -> None:
    async def main() -> None:
        async with store(request, backend, ConversationLimits()) as conversations:
            await conversations.add("c", Turn("user", "hello"))
            await conversations.add("other", Turn("user", "hi"))
            assert await conversations.delete("c") is True
            assert await conversations.read("c") == []
            assert await conversations.delete("c") is False
            assert await conversations.delete("never-seen") is False
            assert [t.content for t in await conversations.read("other")] == ["hi"]

    asyncio.run(main())


def test_each_key_has_its_own_conversations(request: pytest.FixtureRequest, backend: str) -> None:
    async def main() -> None:
        async with store(request, backend, ConversationLimits()) as conversations:
            await conversations.add(conversation_key("alice", "c-1"), Turn("user", "mine"))
            assert await conversations.read(conversation_key("bob", "c-1")) == []
            assert await conversations.read(conversation_key(None, "c-1")) == []
            kept = await conversations.read(conversation_key("alice", "c-1"))
            assert [t.content for t in kept] == ["mine"]

    asyncio.run(main())


def test_concurrent_exchanges_keep_every_turn(request: pytest.FixtureRequest, backend: str) -> None:
    async def main() -> None:
        async with store(request, backend, ConversationLimits(max_turns=100)) as conversations:
            await asyncio.gather(
                *(conversations.add("c", *exchange(f"q{i}", f"a{i}")) for i in range(20))
            )
            turns = await conversations.read("c")
            assert len(turns) == 40
            # Each exchange's two turns stay together, question first.
            for said, answered in zip(turns[::2], turns[1::2], strict=True):
                assert said.content[1:] == answered.content[1:]
                assert (said.role, answered.role) == ("user", "assistant")

    asyncio.run(main())

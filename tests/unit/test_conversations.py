"""Server-kept conversation memory: bounded by turns, by age and by total memory."""

from __future__ import annotations

import random
import threading

import pytest

from app.serving.conversations import (
    CONVERSATION_OVERHEAD_BYTES,
    TURN_OVERHEAD_BYTES,
    ConversationLimits,
    ConversationStore,
    Turn,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def user(text: str) -> Turn:
    return Turn("user", text)


def cost(*texts: str) -> int:
    """Bytes a conversation holding ``texts`` is charged."""
    return CONVERSATION_OVERHEAD_BYTES + sum(len(t.encode()) + TURN_OVERHEAD_BYTES for t in texts)


def test_keeps_only_the_last_turns() -> None:
    store = ConversationStore(ConversationLimits(max_turns=3))
    for i in range(10):
        store.append("c", user(f"message {i}"))
    assert [t.content for t in store.turns("c")] == ["message 7", "message 8", "message 9"]
    assert store.bytes == cost("message 7", "message 8", "message 9")
    store.append("c", user("a"), Turn("assistant", "b"))
    assert [t.content for t in store.turns("c")] == ["message 9", "a", "b"]


def test_old_turns_and_idle_conversations_expire() -> None:
    clock = Clock()
    store = ConversationStore(ConversationLimits(ttl_s=60), clock=clock)
    store.append("old", user("first"))
    clock.now += 40
    store.append("old", user("second"))
    store.append("other", user("x"))
    clock.now += 30  # "first" is 70 s old, "second" 30 s
    assert [t.content for t in store.turns("old")] == ["second"]
    assert store.bytes == cost("second") + cost("x")
    clock.now += 31  # both conversations idle for 61 s
    assert store.turns("old") == []
    assert store.turns("other") == []
    assert (store.size, store.bytes) == (0, 0)


def test_total_memory_evicts_least_recently_active_first() -> None:
    text = "x" * 400
    one = cost(text)
    store = ConversationStore(ConversationLimits(max_bytes=3 * one))
    for cid in ("a", "b", "c"):
        store.append(cid, user(text))
    assert (store.size, store.bytes) == (3, 3 * one)
    # "a" grows past the budget and becomes the most recent: "b", now the oldest, goes.
    store.append("a", Turn("assistant", ""))
    assert store.turns("b") == []
    assert store.size == 2
    store.append("d", user(text))  # over again: "c" is the oldest now
    assert store.turns("c") == []
    assert [len(store.turns(cid)) for cid in ("a", "d")] == [2, 1]
    assert store.bytes == cost(text, "") + cost(text) <= 3 * one


def test_one_turn_bigger_than_the_budget_is_not_kept() -> None:
    store = ConversationStore(ConversationLimits(max_bytes=2048))
    store.append("keep", user("small"))
    store.append("huge", user("y" * 5000))
    assert store.turns("huge") == []
    assert [t.content for t in store.turns("keep")] == ["small"]
    assert store.bytes == cost("small")


def test_conversation_count_is_bounded() -> None:
    store = ConversationStore(ConversationLimits(max_conversations=5))
    for i in range(20):
        store.append(f"c{i}", user("hi"))
    assert store.size == 5
    assert store.turns("c0") == []
    assert store.turns("c19")[0].content == "hi"


def test_turns_are_stamped_and_forget_frees_memory() -> None:
    clock = Clock()
    store = ConversationStore(ConversationLimits(), clock=clock)
    store.append("c", Turn("user", "hello", at=0.0))
    assert store.turns("c")[0].at == pytest.approx(1000.0)
    store.forget("c")
    store.forget("never-seen")
    assert (store.size, store.bytes) == (0, 0)


def test_concurrent_writers_keep_the_accounting_exact() -> None:
    limits = ConversationLimits(max_turns=5, max_bytes=40_000, max_conversations=50)
    store = ConversationStore(limits)

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(500):
            cid = f"c{rng.randint(0, 80)}"
            store.append(cid, user("z" * rng.randint(0, 300)))
            store.turns(f"c{rng.randint(0, 80)}")

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = {f"c{i}": store.turns(f"c{i}") for i in range(81)}
    recomputed = sum(cost(*(t.content for t in turns)) for turns in held.values() if turns)
    assert store.bytes == recomputed
    assert store.bytes <= limits.max_bytes
    assert store.size <= limits.max_conversations
    assert all(len(turns) <= limits.max_turns for turns in held.values())


def test_an_idle_store_drops_expired_conversations_when_its_size_is_read() -> None:
    clock = Clock()
    store = ConversationStore(ConversationLimits(ttl_s=60), clock=clock)
    store.append("a", user("hello"))
    store.append("b", user("there"))
    assert (store.size, store.bytes) == (2, cost("hello") + cost("there"))
    clock.now += 61  # no request since: a metrics scrape alone must see them gone
    assert (store.size, store.bytes) == (0, 0)

"""Server-kept conversation context: the last turns per conversation id, bounded three ways;
and what makes a message a follow-up that needs that context.

``Conversations`` is the interface the responder and the conversations API use;
``ConversationStore`` (here) keeps the turns in this process's memory, the embedded default;
``RedisConversations`` (app/serving/conversations_redis.py) keeps them in the Redis the
replicas share. Both run the same contract tests (tests/contract/test_conversations.py).

* turns per conversation (``max_turns``): older turns fall off the front;
* age (``ttl_s``): turns older than this are forgotten, and so is a conversation with none left;
* memory (``max_bytes`` over all conversations, plus ``max_conversations``): the least
  recently active conversations are evicted first.

One lock guards everything; each operation is O(1) amortised (expired and evicted entries
are removed from the front of an LRU-ordered dict), so the lock is held for microseconds.
Memory is an estimate: UTF-8 bytes of the texts plus a fixed overhead per turn and per
conversation, which is what makes the bound meaningful without measuring Python objects.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

Role = Literal["user", "assistant", "system"]

# English cues that a short message continues the previous one: it opens with a connective
# or points back with a pronoun. Such a message is read joined to the previous customer turn.
FOLLOW_UP_CUE = re.compile(
    r"^\W*(and|also|but|so|then|what about|how about|plus)\b"
    r"|\b(that|it|its|it's|this|those|these|them)\b",
    re.IGNORECASE,
)
FOLLOW_UP_MAX_WORDS = 8

# Python object costs beyond the texts' bytes: a Turn (its object, its str headers, its slot
# in the deque); a conversation (its dict entry and key, its object, and its deque, which
# allocates a block of 64 slots at once). Measured with tracemalloc on 5,000 conversations of
# 2 and of 6 turns (CPython 3.11): 115 bytes a turn, about 1,000 a conversation; at 400 the
# estimate was half the real size for short conversations. The four fields a reply's turns
# carry since (intent, confidence, handoff, handoff_reason) add a slot each (8 bytes) and a
# float (24): the intent and reason strings are the bank's own objects, shared by all turns.
TURN_OVERHEAD_BYTES = 176
CONVERSATION_OVERHEAD_BYTES = 1000


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a conversation. Turns a reply records carry what the model made of
    it: the intent and confidence (on both turns of an exchange) and, on the assistant's
    turn, whether it handed the customer to a person and why. ``None`` elsewhere."""

    role: Role
    content: str
    at: float = 0.0  # Unix time the turn was recorded; 0 for turns a client sent
    intent: str | None = None
    confidence: float | None = None
    handoff: bool | None = None
    handoff_reason: str | None = None

    @property
    def size(self) -> int:
        return len(self.content.encode("utf-8")) + TURN_OVERHEAD_BYTES


@dataclass(frozen=True)
class ConversationLimits:
    max_turns: int = 20
    ttl_s: float = 1800.0
    max_bytes: int = 64 * 1024 * 1024
    max_conversations: int = 100_000


@dataclass
class _Conversation:
    turns: deque[Turn] = field(default_factory=deque)
    size: int = CONVERSATION_OVERHEAD_BYTES
    last_at: float = 0.0


class Conversations(Protocol):
    """Where kept conversations live. Ids are the store's keys (``conversation_key``); a
    store that cannot be reached raises ``SharedStateUnavailable``."""

    async def read(self, conversation_id: str) -> list[Turn]:
        """The conversation's unexpired turns, oldest first (empty if unknown)."""
        ...

    async def add(self, conversation_id: str, *turns: Turn) -> None:
        """Record turns, stamped now, within the bounds."""
        ...

    async def delete(self, conversation_id: str) -> bool:
        """Forget the conversation; whether there was one."""
        ...


def conversation_key(owner: str | None, conversation_id: str) -> str:
    """The store's key for a conversation: the id within its owner's namespace (the API
    key's name), so the same id sent with another key is another conversation. The unit
    separator cannot occur in a conversation id (CONVERSATION_ID_PATTERN) or a key name."""
    return conversation_id if owner is None else f"{owner}\x1f{conversation_id}"


class ConversationStore:
    """Thread-safe memory of recent turns, keyed by the caller's conversation id.

    The clock is wall time: turns report when they were said (``at``) to readers."""

    def __init__(self, limits: ConversationLimits, clock: Callable[[], float] = time.time) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        # Least recently active first: expiry and eviction both pop from the front.
        self._items: OrderedDict[str, _Conversation] = OrderedDict()
        self._bytes = 0

    @property
    def size(self) -> int:
        """Conversations held, once expired ones are dropped."""
        with self._lock:
            self._expire(self._clock())
            return len(self._items)

    @property
    def bytes(self) -> int:
        """Estimated memory held by all conversations, once expired ones are dropped.

        Expiring here too, not only on requests: the metrics read these at each scrape, so
        an idle service frees its expired conversations and its gauges stay true.
        """
        with self._lock:
            self._expire(self._clock())
            return self._bytes

    def turns(self, conversation_id: str) -> list[Turn]:
        """The conversation's unexpired turns, oldest first (empty if unknown)."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            conversation = self._items.get(conversation_id)
            if conversation is None:
                return []
            self._trim_age(conversation, now)
            return list(conversation.turns)

    def append(self, conversation_id: str, *turns: Turn) -> None:
        """Record turns (stamped now) and enforce every bound."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            conversation = self._items.get(conversation_id)
            if conversation is None:
                conversation = self._items[conversation_id] = _Conversation()
                self._bytes += conversation.size
            self._items.move_to_end(conversation_id)
            conversation.last_at = now
            for turn in turns:
                stamped = dataclasses.replace(turn, at=now)
                conversation.turns.append(stamped)
                conversation.size += stamped.size
                self._bytes += stamped.size
            while len(conversation.turns) > self.limits.max_turns:
                self._drop_oldest_turn(conversation)
            # One conversation alone over the budget keeps only what fits of its newest turns.
            while conversation.turns and conversation.size > self.limits.max_bytes:
                self._drop_oldest_turn(conversation)
            if not conversation.turns:
                self._remove(conversation_id)
            while self._items and (
                self._bytes > self.limits.max_bytes
                or len(self._items) > self.limits.max_conversations
            ):
                self._remove(next(iter(self._items)))

    def forget(self, conversation_id: str) -> bool:
        """Drop the conversation; whether it was held."""
        with self._lock:
            if conversation_id in self._items:
                self._remove(conversation_id)
                return True
            return False

    # -- the Conversations interface (nothing here waits: plain calls under the lock) -----
    async def read(self, conversation_id: str) -> list[Turn]:
        return self.turns(conversation_id)

    async def add(self, conversation_id: str, *turns: Turn) -> None:
        self.append(conversation_id, *turns)

    async def delete(self, conversation_id: str) -> bool:
        # Expired turns are not a conversation: as read() sees it.
        found = bool(self.turns(conversation_id))
        self.forget(conversation_id)
        return found

    # -- under the lock ------------------------------------------------------------------
    def _expire(self, now: float) -> None:
        cutoff = now - self.limits.ttl_s
        while self._items:
            oldest_id, oldest = next(iter(self._items.items()))
            if oldest.last_at > cutoff:
                break
            self._remove(oldest_id)

    def _trim_age(self, conversation: _Conversation, now: float) -> None:
        cutoff = now - self.limits.ttl_s
        while conversation.turns and conversation.turns[0].at <= cutoff:
            self._drop_oldest_turn(conversation)

    def _drop_oldest_turn(self, conversation: _Conversation) -> None:
        turn = conversation.turns.popleft()
        conversation.size -= turn.size
        self._bytes -= turn.size

    def _remove(self, conversation_id: str) -> None:
        conversation = self._items.pop(conversation_id)
        self._bytes -= conversation.size


def is_follow_up(message: str) -> bool:
    """A short message that leans on what came before ("and how long will that take?")."""
    words = message.split()
    return 0 < len(words) <= FOLLOW_UP_MAX_WORDS and FOLLOW_UP_CUE.search(message) is not None

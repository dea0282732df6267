"""Several classifiers over the same texts in one call; topic x sentiment counted per stream.

Each model's texts go to its own engine and batcher at once, so the two-task call costs the
slower of the two runs rather than their sum. The call fails as soon as either fails (a full
queue, a passed deadline), and the other run is cancelled: the request's answer is whole or
an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from app.errors import TextserveError
from app.metrics import Metrics
from app.registry.registry import ModelRegistry
from app.serving.classifier import Classification, Classifier
from app.serving.monitor import DEFAULT_STREAM, OpinionMonitor, StreamGate
from app.serving.refs import ModelRef

T = TypeVar("T")
NEGATIVE = "negative"


class NoOpinionPair(TextserveError):
    """A stream named for a call that does not classify for both topic and sentiment."""

    code = "invalid_request"
    param = "stream"


@dataclass(frozen=True)
class Roles:
    """Which answers of a call are the topic and the sentiment, by key."""

    topic: str
    sentiment: str


class OpinionService:
    """Runs several classifiers concurrently and feeds the monitor with topic x sentiment."""

    def __init__(
        self,
        registry: ModelRegistry,
        classifier: Classifier,
        monitor: OpinionMonitor,
        gate: StreamGate,
        metrics: Metrics,
    ) -> None:
        self._registry = registry
        self._classifier = classifier
        self.monitor = monitor
        self.gate = gate
        self._opinions = metrics.opinions
        self._counters: dict[tuple[str, str, str], Any] = {}

    async def classify(
        self,
        refs: Mapping[str, ModelRef],
        texts: list[str],
        *,
        stream: str | None,
        timeout_s: float,
        top_k: int | None = None,
        all_scores: bool = False,
    ) -> dict[str, Classification]:
        """Each model's answer by key, in the order given; counted under ``stream`` (or the
        default stream) when one answer is a topic and the other a sentiment."""
        roles = self.roles(refs)
        if stream is not None:
            if roles is None:
                raise NoOpinionPair(
                    "stream: a stream is counted by topic and sentiment; ask for both tasks "
                    '(tasks: ["topic", "sentiment"])'
                )
            # Before any model runs: a refused stream costs no inference.
            self.gate.admit(stream)
        answers = await all_or_none(
            {
                key: self._classifier.classify(
                    ref, texts, timeout_s=timeout_s, top_k=top_k, all_scores=all_scores
                )
                for key, ref in refs.items()
            }
        )
        if roles is not None:
            self._count(stream or DEFAULT_STREAM, answers[roles.topic], answers[roles.sentiment])
        return answers

    def roles(self, refs: Mapping[str, ModelRef]) -> Roles | None:
        """The topic and the sentiment key, when the call asks exactly one model whose labels
        include ``negative`` (the sentiment) and one other (the topic)."""
        if len(refs) != 2:
            return None
        sentiment = [k for k, ref in refs.items() if NEGATIVE in self._labels(ref)]
        if len(sentiment) != 1:
            return None
        topic = next(k for k in refs if k != sentiment[0])
        return Roles(topic=topic, sentiment=sentiment[0])

    def _labels(self, ref: ModelRef) -> list[str]:
        # The engine the classifier will use; a missing model fails there, with its own error.
        try:
            return self._registry.get(ref.name, ref.version).manifest.labels
        except TextserveError:
            return []

    def _count(self, stream: str, topics: Classification, sentiments: Classification) -> None:
        pairs = [
            (t.label, s.label)
            for t, s in zip(topics.predictions, sentiments.predictions, strict=True)
        ]
        for topic, sentiment in pairs:
            key = (stream, topic, sentiment)
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = self._opinions.labels(*key)
            counter.inc()
        self.monitor.record(stream, ((topic, s == NEGATIVE) for topic, s in pairs))


async def all_or_none(calls: Mapping[str, Awaitable[T]]) -> dict[str, T]:
    """Await every call concurrently; on the first failure cancel the rest and raise it."""
    tasks = {key: asyncio.ensure_future(call) for key, call in calls.items()}
    try:
        await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_EXCEPTION)
        # Every failure is read (none is left for asyncio to report); the first is raised.
        failures = [
            error
            for task in tasks.values()
            if task.done() and not task.cancelled() and (error := task.exception()) is not None
        ]
        if failures:
            raise failures[0]
        return {key: task.result() for key, task in tasks.items()}
    finally:
        pending = [t for t in tasks.values() if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            # Their cancellation is awaited so no run outlives the request unobserved.
            await asyncio.gather(*pending, return_exceptions=True)

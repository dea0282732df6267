"""Opinion trends per stream and topic: bounded time buckets and the surge rule over them.

Each stream keeps two rings of buckets, one a second wide for the last ``fine_keep_s`` and
one a minute wide for the last ``keep_s``; a bucket holds, per topic, how many texts arrived
and how many of them were negative. A question about a window and its baseline reads at most
one ring's buckets, so its cost depends on the period asked for, never on the traffic.
Nothing else is kept: a topic that a new model version no longer predicts disappears once
its last bucket falls out of the rings.

The counts are this process's. Prometheus (``textserve_opinion_total``) is the cluster-wide
view; this one answers dashboards and bots that have no Prometheus.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from app.errors import TextserveError

# The stream of texts classified for both tasks without a `stream` field. It is always
# accepted and never counts against the stream limit.
DEFAULT_STREAM = "default"
MINUTE = 60


class StreamRefused(TextserveError):
    """A stream name beyond the allowlist or the limit on distinct names."""

    code = "invalid_request"
    param = "stream"


class PeriodTooLong(TextserveError):
    """A window (or window plus baseline) longer than the buckets reach back."""

    code = "invalid_request"

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


class StreamGate:
    """Bounds the stream label: an allowlist, or the first ``max_streams`` names seen."""

    def __init__(self, allowlist: Iterable[str], max_streams: int) -> None:
        self._allow = frozenset(allowlist)
        self._max = max_streams
        self._seen: set[str] = set()

    def admit(self, name: str) -> None:
        """Accept ``name`` as a stream (remembering it) or raise ``StreamRefused``."""
        if name == DEFAULT_STREAM or name in self._seen:
            return
        if self._allow:
            if name not in self._allow:
                allowed = ", ".join(sorted(self._allow))
                raise StreamRefused(
                    f"unknown stream {name!r}; TEXTSERVE_MONITOR_STREAMS allows: {allowed}"
                )
        elif len(self._seen) >= self._max:
            raise StreamRefused(
                f"stream {name!r} would be stream number {self._max + 1}; this server keeps "
                f"at most {self._max} (TEXTSERVE_MONITOR_MAX_STREAMS) to bound its metrics"
            )
        self._seen.add(name)


@dataclass(frozen=True)
class SurgeRule:
    """When a topic's negative share counts as a surge."""

    min_count: int
    floor: float
    ratio: float

    def alerting(self, count: int, negative: int, baseline_share: float | None) -> bool:
        """At least ``min_count`` texts, a negative share of at least ``floor`` and at least
        ``ratio`` times the baseline's; with no baseline yet, the floor alone."""
        if count < self.min_count or count == 0:
            return False
        share = negative / count
        if share < self.floor:
            return False
        return baseline_share is None or share >= self.ratio * baseline_share


@dataclass(frozen=True)
class TopicTrend:
    topic: str
    count: int
    negative: int
    negative_share: float | None
    baseline_share: float | None
    alerting: bool


@dataclass(frozen=True)
class Trend:
    stream: str
    window_s: int
    baseline_s: int
    resolution_s: int
    topics: list[TopicTrend]


Counts = dict[str, list[int]]  # topic -> [texts, negative texts]


class _Ring:
    """Per-topic counts in buckets ``width`` seconds wide, the newest ``size`` of them."""

    def __init__(self, width: int, size: int) -> None:
        self.width = width
        self.size = size
        self._buckets: deque[tuple[int, Counts]] = deque()

    def add(self, now: float, topic: str, negative: bool) -> None:
        index = int(now // self.width)
        if not self._buckets or self._buckets[-1][0] < index:
            self._buckets.append((index, {}))
            oldest = index - self.size + 1
            while self._buckets[0][0] < oldest:
                self._buckets.popleft()
        counts = self._buckets[-1][1].setdefault(topic, [0, 0])
        counts[0] += 1
        counts[1] += negative

    def sums(self, first: int, last: int) -> Counts:
        """Per-topic totals of the buckets with index in ``[first, last]``."""
        total: Counts = {}
        for index, counts in reversed(self._buckets):
            if index < first:
                break
            if index > last:
                continue
            for topic, (n, neg) in counts.items():
                acc = total.setdefault(topic, [0, 0])
                acc[0] += n
                acc[1] += neg
        return total


class OpinionMonitor:
    """Counts of classified texts by stream, topic and negativity, over bounded time."""

    def __init__(
        self,
        *,
        keep_s: int,
        fine_keep_s: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keep_s = keep_s
        self.fine_keep_s = min(fine_keep_s, keep_s)
        self._clock = clock
        # One bucket more than the period: the newest bucket is still filling.
        self._sizes = ((1, self.fine_keep_s + 1), (MINUTE, math.ceil(keep_s / MINUTE) + 1))
        self._streams: dict[str, tuple[_Ring, _Ring]] = {}

    def record(self, stream: str, opinions: Iterable[tuple[str, bool]]) -> None:
        """Count texts of ``stream``, each as (topic, is negative)."""
        rings = self._streams.get(stream)
        if rings is None:
            fine, coarse = (_Ring(width, size) for width, size in self._sizes)
            rings = self._streams[stream] = (fine, coarse)
        now = self._clock()
        for topic, negative in opinions:
            for ring in rings:
                ring.add(now, topic, negative)

    def trend(self, stream: str, window_s: int, baseline_s: int, rule: SurgeRule) -> Trend:
        """Each topic's counts over the last ``window_s`` against the ``baseline_s`` before."""
        if window_s > self.keep_s:
            raise PeriodTooLong(
                "window", f"{window_s} s is longer than the {self.keep_s} s this server keeps"
            )
        if window_s + baseline_s > self.keep_s:
            raise PeriodTooLong(
                "baseline",
                f"window and baseline together ({window_s + baseline_s} s) reach further back "
                f"than the {self.keep_s} s this server keeps",
            )
        fine = window_s + baseline_s <= self.fine_keep_s
        width = 1 if fine else MINUTE
        rings = self._streams.get(stream)
        topics: list[TopicTrend] = []
        if rings is not None:
            ring = rings[0] if fine else rings[1]
            now = int(self._clock() // width)
            in_window = math.ceil(window_s / width)
            in_baseline = math.ceil(baseline_s / width)
            current = ring.sums(now - in_window + 1, now)
            before = ring.sums(now - in_window - in_baseline + 1, now - in_window)
            for topic in sorted(current.keys() | before.keys()):
                n, neg = current.get(topic, (0, 0))
                base_n, base_neg = before.get(topic, (0, 0))
                base_share = base_neg / base_n if base_n else None
                topics.append(
                    TopicTrend(
                        topic=topic,
                        count=n,
                        negative=neg,
                        negative_share=neg / n if n else None,
                        baseline_share=base_share,
                        alerting=rule.alerting(n, neg, base_share),
                    )
                )
        return Trend(stream, window_s, baseline_s, width, topics)

"""The opinion monitor's buckets, windows, surge rule and stream limits, on a hand-driven clock."""

from __future__ import annotations

import pytest

from app.serving.monitor import (
    DEFAULT_STREAM,
    OpinionMonitor,
    PeriodTooLong,
    StreamGate,
    StreamRefused,
    SurgeRule,
    TopicTrend,
)

RULE = SurgeRule(min_count=10, floor=0.3, ratio=2.0)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def feed(
    monitor: OpinionMonitor, clock: Clock, seconds: int, per_s: dict[str, tuple[int, int]]
) -> None:
    """``seconds`` of traffic: per topic, (texts, of which negative) every second."""
    for _ in range(seconds):
        clock.now += 1
        for topic, (n, neg) in per_s.items():
            monitor.record("news", [(topic, i < neg) for i in range(n)])


def by_topic(monitor: OpinionMonitor, window_s: int, baseline_s: int) -> dict[str, TopicTrend]:
    return {t.topic: t for t in monitor.trend("news", window_s, baseline_s, RULE).topics}


def test_a_surge_after_a_calm_phase_alerts_on_its_topic_only() -> None:
    clock = Clock()
    monitor = OpinionMonitor(keep_s=3600, fine_keep_s=900, clock=clock)
    feed(monitor, clock, 300, {"billing": (2, 0), "delivery": (2, 0)})
    feed(monitor, clock, 100, {"billing": (2, 0), "delivery": (2, 1)})  # delivery: 50 % negative
    feed(monitor, clock, 60, {"billing": (3, 2), "delivery": (2, 0)})
    topics = by_topic(monitor, 60, 300)
    billing, delivery = topics["billing"], topics["delivery"]
    assert (billing.count, billing.negative, billing.alerting) == (180, 120, True)
    assert billing.negative_share == pytest.approx(2 / 3)
    assert billing.baseline_share == 0.0
    assert (delivery.count, delivery.negative, delivery.alerting) == (120, 0, False)
    # The baseline is the 300 s before the window: 200 calm seconds and 100 at 50 % negative.
    assert delivery.baseline_share == pytest.approx(100 / 600)


def test_the_baseline_does_not_overlap_the_window() -> None:
    clock = Clock()
    monitor = OpinionMonitor(keep_s=3600, fine_keep_s=900, clock=clock)
    feed(monitor, clock, 30, {"billing": (1, 1)})
    feed(monitor, clock, 10, {"billing": (1, 0)})
    topic = by_topic(monitor, 10, 30)["billing"]
    assert (topic.count, topic.negative, topic.baseline_share) == (10, 0, 1.0)


def test_a_share_above_the_baseline_multiple_but_below_the_floor_is_quiet() -> None:
    rule = SurgeRule(min_count=10, floor=0.3, ratio=2.0)
    assert not rule.alerting(100, 25, 0.05)  # 5x the baseline, under the floor
    assert not rule.alerting(100, 40, 0.25)  # over the floor, under 2x the baseline
    assert rule.alerting(100, 50, 0.25)
    assert rule.alerting(100, 30, None)  # no baseline yet: the floor alone
    assert not rule.alerting(9, 9, None)  # too few texts


def test_long_windows_use_minute_buckets_and_too_long_ones_are_refused() -> None:
    clock = Clock(60 * 1000)
    monitor = OpinionMonitor(keep_s=7200, fine_keep_s=600, clock=clock)
    for _ in range(120):  # two hours, one text a minute
        clock.now += 60
        monitor.record("news", [("billing", False)])
    trend = monitor.trend("news", 1800, 3600, RULE)
    assert trend.resolution_s == 60
    assert [(t.count, t.baseline_share) for t in trend.topics] == [(30, 0.0)]
    assert monitor.trend("news", 60, 300, RULE).resolution_s == 1
    with pytest.raises(PeriodTooLong) as exc:
        monitor.trend("news", 7201, 60, RULE)
    assert exc.value.param == "window"
    with pytest.raises(PeriodTooLong) as exc:
        monitor.trend("news", 3600, 3601, RULE)
    assert exc.value.param == "baseline"


def test_buckets_are_bounded_and_vanished_labels_age_out() -> None:
    clock = Clock()
    monitor = OpinionMonitor(keep_s=600, fine_keep_s=60, clock=clock)
    feed(monitor, clock, 30, {"old_label": (5, 1)})
    # A new model version with other labels: the old one is still in the window for now...
    feed(monitor, clock, 30, {"world": (5, 1)})
    assert set(by_topic(monitor, 30, 30)) == {"old_label", "world"}
    # ...and gone from every ring once the rings have turned over.
    feed(monitor, clock, 700, {"world": (1, 0)})
    fine, coarse = monitor._streams["news"]
    assert len(fine._buckets) <= 61
    assert len(coarse._buckets) <= 11
    assert set(by_topic(monitor, 30, 30)) == {"world"}
    assert set(by_topic(monitor, 60, 500)) == {"world"}


def test_an_unknown_stream_has_no_topics() -> None:
    monitor = OpinionMonitor(keep_s=600, fine_keep_s=60)
    assert monitor.trend("quiet", 60, 60, RULE).topics == []


def test_without_an_allowlist_the_first_names_are_kept() -> None:
    gate = StreamGate((), max_streams=3)
    for name in ("a", "b", "c", "a", DEFAULT_STREAM):
        gate.admit(name)
    with pytest.raises(StreamRefused, match="TEXTSERVE_MONITOR_MAX_STREAMS"):
        gate.admit("d")
    gate.admit("b")  # known names still pass


def test_an_allowlist_takes_only_its_names() -> None:
    gate = StreamGate(("news", "social"), max_streams=1)
    gate.admit("news")
    gate.admit("social")  # the allowlist, not the count, decides
    gate.admit(DEFAULT_STREAM)
    with pytest.raises(StreamRefused, match="news, social"):
        gate.admit("support")


def test_settings_refuse_bad_stream_names_and_default_periods_beyond_the_buckets() -> None:
    from pydantic import ValidationError

    from app.config import Settings

    assert Settings(monitor_streams="news, social").monitor_streams == ("news", "social")
    with pytest.raises(ValidationError, match="stream names must match"):
        Settings(monitor_streams="news,Social Media")
    with pytest.raises(ValidationError, match="TEXTSERVE_MONITOR_KEEP_S"):
        Settings(monitor_keep_s=600)  # the default window and baseline need 65 minutes

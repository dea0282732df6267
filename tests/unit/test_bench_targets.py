"""The performance targets table: each level is judged against the limit measured beside it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.targets import targets


def level(kind: str, concurrency: int, texts_per_s: float, **extra: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "concurrency": concurrency,
        "texts_per_s": texts_per_s,
        "latency_ms": {"p50": 10.0, "p99": 25.0},
        "errors": {},
        "server_cpu_ms_per_text": 4.0,
        "loop_cpu_ms_per_request": 0.4,
        **extra,
    }


def report(paired: bool) -> dict[str, Any]:
    def beside(tps: float, single: float | None = None) -> dict[str, Any]:
        if not paired:
            return {}
        out: dict[str, Any] = {"texts_per_s": tps, "cpu_ms_per_text": 3.0}
        if single is not None:
            out["single_p50_ms"] = single
        return {"paired_limit": out}

    return {
        "limit_texts_per_s": 1000.0,
        "direct": {
            "runs": {
                "sorted_32": {"cpu_ms_per_text": 2.0},
                "single": {"latency_ms": {"p50": 5.0}},
            }
        },
        "server": {
            "levels": [
                level("single", 1, 100.0, **beside(800.0, single=9.5)),
                level("single", 64, 600.0, **beside(700.0)),
                level("batched_32", 4, 650.0, **beside(680.0)),
            ]
        },
        "baseline": {"levels": [level("naive", 64, 100.0, **beside(500.0))]},
    }


def by_number(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["target"].split(".")[0]: row for row in rows}


def test_without_paired_limits_every_level_is_judged_against_the_full_run() -> None:
    rows = by_number(targets(report(paired=False)))
    assert rows["1"]["measured"] == 0.6 and not rows["1"]["met"]
    assert rows["2"]["measured"] == 0.65 and not rows["2"]["met"]
    assert rows["3"]["measured"] == 5.0 and not rows["3"]["met"]
    assert rows["5"]["measured"] == 2.0 and not rows["5"]["met"]
    assert rows["6"]["measured"] == 6.0 and rows["6"]["met"]


def test_paired_limits_replace_the_full_runs_figures() -> None:
    rows = by_number(targets(report(paired=True)))
    assert rows["1"]["measured"] == 600.0 / 700.0 and rows["1"]["met"]
    assert rows["2"]["measured"] == 650.0 / 680.0 and rows["2"]["met"]
    assert rows["3"]["measured"] == 0.5 and rows["3"]["met"]
    assert rows["5"]["measured"] == 1.0 and rows["5"]["met"]
    # Each server against the limit beside it: (600/700) / (100/500).
    assert rows["6"]["measured"] == (600.0 / 700.0) / (100.0 / 500.0)
    assert rows["4"]["measured"] == 2.5 and rows["4"]["met"]


def test_with_enough_paired_segments_their_median_is_the_figure() -> None:
    rep = report(paired=True)
    busy, batched = rep["server"]["levels"][1], rep["server"]["levels"][2]
    # One segment caught by a slow spell of the machine: the median is not moved by it.
    busy["segment_ratios"] = [0.80, 0.40, 0.78, 0.82]
    batched["segment_ratios"] = [0.93, 0.91]  # too few: the pooled ratio stands
    rows = by_number(targets(rep))
    assert rows["1"]["measured"] == 0.79 and rows["1"]["met"]
    assert "median of 4 paired segments (0.40-0.82), pooled 0.86" in rows["1"]["note"]
    assert rows["2"]["measured"] == 650.0 / 680.0
    # The naive server's segments count the same way: its median against ours.
    rep["baseline"]["levels"][0]["segment_ratios"] = [0.2, 0.25, 0.1]
    assert by_number(targets(rep))["6"]["measured"] == 0.79 / 0.2

"""PNG charts of one ``bench/classify.py`` run: throughput and latency against concurrency."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_charts(report: dict[str, Any], stem: Path) -> list[Path]:
    """``<stem>.png``: texts/s per concurrency with the in-process limit drawn as a line (and
    the naive baseline), beside p50/p90/p99 latency per concurrency. Nothing without a server
    run; nothing when matplotlib is missing (it is in the dev extras)."""
    levels = [lv for lv in report.get("server", {}).get("levels", []) if lv["kind"] == "single"]
    if not levels:
        return []
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    conc = [lv["concurrency"] for lv in levels]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(conc, [lv["texts_per_s"] for lv in levels], "o-", label="textserve, single-text")
    limit = report.get("limit_texts_per_s")
    if limit:
        left.axhline(limit, color="black", linestyle="--", label="in-process limit (sorted 32)")
        left.axhline(0.75 * limit, color="grey", linestyle=":", label="0.75 x limit")
    paired = [lv for lv in levels if "paired_limit" in lv]
    if paired:
        left.plot(
            [lv["concurrency"] for lv in paired],
            [lv["paired_limit"]["texts_per_s"] for lv in paired],
            "x",
            color="black",
            label="limit measured beside each level",
        )
    naive = report.get("baseline", {}).get("levels", [])
    if naive:
        left.plot(
            [lv["concurrency"] for lv in naive],
            [lv["texts_per_s"] for lv in naive],
            "s-",
            color="tab:red",
            label="naive FastAPI + pipeline",
        )
    for lv in report.get("server", {}).get("levels", []):
        if lv["kind"].startswith("batched"):
            left.plot(
                [lv["concurrency"]], [lv["texts_per_s"]], "D", color="tab:green", label=lv["kind"]
            )
    left.set_xscale("log", base=2)
    left.set_xlabel("concurrent clients")
    left.set_ylabel("texts / s")
    left.set_ylim(bottom=0)
    left.set_title("throughput")
    left.legend(fontsize=8)
    for q, style in (("p50", "o-"), ("p90", "^-"), ("p99", "v-")):
        right.plot(conc, [lv["latency_ms"][q] for lv in levels], style, label=q)
    raw = report.get("direct", {}).get("runs", {}).get("single", {}).get("latency_ms", {})
    if raw:
        right.axhline(raw["p50"], color="black", linestyle="--", label="raw call p50")
    right.set_xscale("log", base=2)
    right.set_yscale("log")
    right.set_xlabel("concurrent clients")
    right.set_ylabel("ms")
    right.set_title("latency, single-text requests")
    right.legend(fontsize=8)
    machine = report.get("machine", {})
    fig.suptitle(
        f"POST /classify, {machine.get('usable_cores', '?')} cores, "
        f"{report.get('model', {}).get('name', '?')} ({machine.get('time_utc', '')})",
        fontsize=10,
    )
    fig.tight_layout()
    path = stem.with_suffix(".png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]

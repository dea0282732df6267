"""Promotion rules: whether a finished fine-tune's version becomes the active one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.jobs.records import Promote


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(rule: Promote, active: int | None, comparison: dict[str, Any] | None) -> Decision:
    """Apply ``rule`` to a new version.

    ``if_better`` promotes when no version is active, or when the candidate's validation
    accuracy is strictly higher than the active version's on the same rows. A tie keeps
    the model that is already serving: a swap has a cost and gains nothing.
    """
    if rule == "never":
        return Decision(False, "promote is 'never'")
    if rule == "always":
        return Decision(True, "promote is 'always'")
    if active is None:
        return Decision(True, "no version was active")
    if not comparison:
        return Decision(False, f"version {active} is active and could not be compared")
    differ = comparison.get("labels_differ")
    if differ:
        # Scored on the new rows, the old version would get 0 for labels it never knew, and
        # a chance-level model would replace it, changing what every client gets back.
        return Decision(
            False,
            f"its labels {differ['candidate']} are not those of version {active} "
            f"{differ['active']}: promote it explicitly if clients expect the new ones",
        )
    metric = str(comparison.get("metric", "accuracy"))
    theirs = comparison.get("active", {})
    if theirs.get("error"):
        return Decision(True, f"the active version {active} could not be scored: {theirs['error']}")
    mine = comparison.get("candidate", {}).get(metric)
    old = theirs.get(metric)
    if mine is None or old is None:
        return Decision(False, f"no {metric} to compare")
    if float(mine) > float(old):
        return Decision(True, f"{metric} {mine:.4f} beats {old:.4f} of version {active}")
    return Decision(False, f"{metric} {mine:.4f} does not beat {old:.4f} of version {active}")

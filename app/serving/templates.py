"""Choosing the template to send from a reply model's bank, given the slots at hand."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from app.serving.ranking import ranked
from app.store.bank import ResponseBank, Template, join_names, render


def choose(
    bank: ResponseBank, rows: list[int], embedding: np.ndarray, slots: Mapping[str, str]
) -> tuple[Template, str, list[str]]:
    """The most similar template that ``slots`` fill completely, as ``(template, text, [])``.

    When none can be filled, the template missing the fewest slots that the customer can be
    asked for (then the most similar) is named, and the text asks for them. Only when every
    template lacks a slot that is not the customer's to give (a website address the
    deployment did not configure) is the customer asked for that one anyway: the answer's
    ``missing_slots`` shows the operator what to set.
    """
    similarity = bank.embeddings[rows] @ embedding.astype(np.float32)
    # Python's stable sort rather than np.argsort, which releases the GIL (ranking.py).
    order = [rows[i] for i in ranked(similarity.tolist())]
    rendered = [(bank.templates[r], *render(bank.templates[r].text, dict(slots))) for r in order]
    for template, text, missing in rendered:
        if not missing:
            return template, text, []
    askable = [r for r in rendered if bank.slot_question(r[2]) is not None]
    # min() keeps the first of equals, i.e. the most similar.
    template, _, missing = min(askable or rendered, key=lambda r: len(r[2]))
    question = bank.slot_question(missing)
    if question is None:
        question = bank.slot_request.replace("{slots}", join_names(_spoken(missing)))
    return template, question, missing


def _spoken(keys: list[str]) -> list[str]:
    return [k.replace("_", " ") for k in keys]

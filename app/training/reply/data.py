"""Reply-model training data: a knowledge base, or tabular (utterance, intent, response) rows.

Two shapes arrive here:

* a knowledge base (``knowledge_base.json``): intents with category, handoff flag, reply
  templates, training paraphrases (``examples``) and held-out paraphrases (``heldout``);
* rows with an utterance, an intent and (optionally) a response column, as exported by
  Bitext (``instruction,intent,response``), plus optionally a separate template file that
  gives the vetted replies per intent.

Both become one ``ReplyData``: the intents with their templates, and the train / eval
utterances. An utterance may carry its own response (Bitext rows do); otherwise training
pairs it with one of its intent's templates.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.store.bank import (
    DEFAULT_CUSTOMER_SLOTS,
    DEFAULT_HANDOFF_REPLY,
    DEFAULT_SLOT_REQUEST,
    slot_key,
)
from app.training.data import Example, stratified_split
from app.training.errors import InvalidDataset
from app.training.reply.rows import (
    CATEGORY_COLUMNS,
    INTENT_COLUMNS,
    RESPONSE_COLUMNS,
    UTTERANCE_COLUMNS,
    cell_text,
    find_column,
    read_json_object,
    read_rows,
)

# Intents that mean "let me talk to a person" when a row-based data set does not say so.
HANDOFF_INTENT_PATTERN = re.compile(r"human|agent|representative|operator|person")


class IntentEntry(BaseModel):
    """One intent of a knowledge base."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    intent: str = Field(min_length=1)
    category: str = ""
    handoff: bool = False
    responses: list[str] = Field(min_length=1)
    examples: list[str] = Field(default_factory=list)
    heldout: list[str] = Field(default_factory=list)

    @field_validator("responses", "examples", "heldout")
    @classmethod
    def _non_empty_texts(cls, value: list[str]) -> list[str]:
        texts = [t.strip() for t in value]
        if any(not t for t in texts):
            raise ValueError("texts must not be empty")
        return texts


class KnowledgeBase(BaseModel):
    """Intents, their vetted replies and example utterances (``knowledge_base.json``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    description: str = ""
    intents: list[IntentEntry] = Field(min_length=2)
    slot_request: str = DEFAULT_SLOT_REQUEST
    handoff_reply: str = DEFAULT_HANDOFF_REPLY
    # Slots the customer can be asked for -> how the question names them.
    customer_slots: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_CUSTOMER_SLOTS))

    @field_validator("slot_request")
    @classmethod
    def _has_slots(cls, value: str) -> str:
        if "{slots}" not in value:
            raise ValueError("slot_request must contain '{slots}'")
        return value

    @field_validator("customer_slots")
    @classmethod
    def _canonical(cls, value: dict[str, str]) -> dict[str, str]:
        return {slot_key(k): v for k, v in value.items()}

    @field_validator("intents")
    @classmethod
    def _unique(cls, value: list[IntentEntry]) -> list[IntentEntry]:
        names = [i.intent for i in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"intents defined more than once: {duplicates}")
        return value


@dataclass(frozen=True, slots=True)
class Utterance:
    """A customer message, its intent and, when the data has one, the reply it got."""

    text: str
    intent: str
    response: str | None = None


@dataclass(frozen=True)
class ReplyData:
    """Everything a reply model is trained and evaluated on."""

    intents: list[IntentEntry]
    train: list[Utterance]
    eval: list[Utterance]
    slot_request: str = DEFAULT_SLOT_REQUEST
    handoff_reply: str = DEFAULT_HANDOFF_REPLY
    customer_slots: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CUSTOMER_SLOTS))

    @property
    def intent_names(self) -> list[str]:
        return [i.intent for i in self.intents]

    def templates(self, intent: str) -> list[str]:
        return next(i.responses for i in self.intents if i.intent == intent)


# -- knowledge base ------------------------------------------------------------------------
def read_knowledge_base(source: Path | Mapping[str, Any] | KnowledgeBase) -> KnowledgeBase:
    """A validated knowledge base from a file, a parsed JSON object, or itself."""
    if isinstance(source, KnowledgeBase):
        return source
    where = "knowledge base"
    if isinstance(source, Path):
        where = str(source)
        source = read_json_object(source)
    try:
        return KnowledgeBase.model_validate(source)
    except ValidationError as exc:
        raise InvalidDataset(f"{where}: {exc}") from exc


def from_knowledge_base(kb: KnowledgeBase) -> ReplyData:
    """Train on every intent's ``examples``, evaluate on its ``heldout`` paraphrases."""
    missing = [i.intent for i in kb.intents if not i.examples]
    if missing:
        raise InvalidDataset(f"intents without training examples: {missing}")
    return ReplyData(
        intents=list(kb.intents),
        train=[Utterance(t, i.intent) for i in kb.intents for t in i.examples],
        eval=[Utterance(t, i.intent) for i in kb.intents for t in i.heldout],
        slot_request=kb.slot_request,
        handoff_reply=kb.handoff_reply,
        customer_slots=dict(kb.customer_slots),
    )


# -- rows ----------------------------------------------------------------------------------
def read_templates(source: Path | Mapping[str, Any]) -> dict[str, list[str]]:
    """Reply templates per intent from ``{"intent": ["...", ...]}`` (or one string per intent),
    a knowledge base, or a ``.csv``/``.jsonl`` file with intent and response columns."""
    if isinstance(source, Path) and source.suffix.lower() in (".csv", ".jsonl"):
        rows = read_rows(source)
        intent_col, response_col = (
            find_column(rows, INTENT_COLUMNS),
            find_column(rows, RESPONSE_COLUMNS),
        )
        if intent_col is None or response_col is None:
            raise InvalidDataset(f"{source}: needs an intent and a response column")
        table: dict[str, list[str]] = {}
        for row in rows:
            intent, text = row[intent_col].strip(), row[response_col].strip()
            if intent and text and text not in table.setdefault(intent, []):
                table[intent].append(text)
        return table
    document = read_json_object(source) if isinstance(source, Path) else source
    if "intents" in document:
        return {i.intent: list(i.responses) for i in read_knowledge_base(document).intents}
    table = {}
    for intent, value in document.items():
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not all(isinstance(t, str) and t.strip() for t in texts):
            raise InvalidDataset(f"templates of {intent!r} must be non-empty strings")
        table[str(intent)] = [t.strip() for t in texts]
    return table


def from_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    templates: Mapping[str, Sequence[str]] | None = None,
    eval_rows: Sequence[Mapping[str, Any]] | None = None,
    eval_fraction: float = 0.2,
    seed: int = 13,
    handoff_intents: Sequence[str] | None = None,
    max_templates: int = 3,
) -> ReplyData:
    """Build ``ReplyData`` from (utterance, intent[, response]) rows.

    The bank holds ``templates`` when given, else up to ``max_templates`` distinct responses
    per intent from the rows (the most frequent first, then the shortest). Without
    ``eval_rows``, a stratified ``eval_fraction`` of the rows is held out. ``handoff_intents``
    defaults to the intents whose name mentions a human, an agent or an operator.
    """
    train = _utterances(rows, "rows")
    held_out = _utterances(eval_rows, "eval rows") if eval_rows is not None else None
    if held_out is None:
        # Split row indices (zero-padded, so sorting keeps row order) with the shared helper.
        keyed = [Example(f"{i:09d}", u.intent) for i, u in enumerate(train)]
        train_keys, eval_keys = stratified_split(keyed, eval_fraction, seed)
        held_out = [train[int(e.text)] for e in eval_keys]
        train = [train[int(e.text)] for e in train_keys]
    table = {k: list(v) for k, v in templates.items()} if templates is not None else None
    if table is None:
        table = _bank_from_responses(train, max_templates)
    intents_seen = sorted({u.intent for u in train})
    unknown = sorted({u.intent for u in held_out} - set(intents_seen))
    if unknown:
        raise InvalidDataset(f"eval rows use intents with no training rows: {unknown[:10]}")
    no_template = [i for i in intents_seen if not table.get(i)]
    if no_template:
        raise InvalidDataset(
            f"intents without a reply template: {no_template[:10]} "
            "(give a response column or a template file that covers every intent)"
        )
    if len(intents_seen) < 2:
        raise InvalidDataset(f"a reply model needs at least two intents, got {intents_seen}")
    handoff = set(handoff_intents or [i for i in intents_seen if HANDOFF_INTENT_PATTERN.search(i)])
    categories = _categories(rows)
    intents = [
        IntentEntry(
            intent=name,
            category=categories.get(name, ""),
            handoff=name in handoff,
            responses=table[name],
        )
        for name in intents_seen
    ]
    return ReplyData(intents, train, held_out)


def _utterances(rows: Sequence[Mapping[str, Any]], what: str) -> list[Utterance]:
    if not rows:
        raise InvalidDataset(f"no {what}")
    text_col = find_column(rows, UTTERANCE_COLUMNS)
    intent_col = find_column(rows, INTENT_COLUMNS)
    if text_col is None or intent_col is None:
        raise InvalidDataset(
            f"{what} need an utterance column (one of {list(UTTERANCE_COLUMNS)}) and an intent "
            f"column (one of {list(INTENT_COLUMNS)}); got {sorted(rows[0])}"
        )
    response_col = find_column(rows, RESPONSE_COLUMNS)
    out: list[Utterance] = []
    for n, row in enumerate(rows):
        text, intent = cell_text(row, text_col), cell_text(row, intent_col)
        if not text or not intent:
            raise InvalidDataset(f"{what} {n}: empty {text_col!r} or {intent_col!r}")
        response = cell_text(row, response_col) if response_col else ""
        out.append(Utterance(text, intent, response or None))
    return out


def _bank_from_responses(train: list[Utterance], max_templates: int) -> dict[str, list[str]]:
    counts: dict[str, Counter[str]] = {}
    for u in train:
        if u.response:
            counts.setdefault(u.intent, Counter())[u.response] += 1
    return {
        intent: [t for t, _ in sorted(c.items(), key=lambda kv: (-kv[1], len(kv[0]), kv[0]))][
            :max_templates
        ]
        for intent, c in counts.items()
    }


def _categories(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Intent -> category (lower case) from a category column, when the rows have one."""
    column, intent_col = find_column(rows, CATEGORY_COLUMNS), find_column(rows, INTENT_COLUMNS)
    if column is None or intent_col is None:
        return {}
    out: dict[str, str] = {}
    for row in rows:
        out.setdefault(cell_text(row, intent_col), cell_text(row, column).lower())
    return out

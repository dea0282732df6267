"""The response bank of a reply model: vetted reply templates and their embeddings.

A reply model version holds, beside ``model.onnx``, ``responses.json`` (intents with their
category and handoff flag, the templates, the slot-request and handoff-fallback texts) and
``bank.npy`` (one L2-normalised embedding per template, same row order). Training writes
these files into the staging folder, so the store checksums them with the model; serving
reads them next to the engine. This module is that file format and nothing else, so that
training and serving share it without importing each other.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.errors import CorruptModel

RESPONSES_FILE = "responses.json"
BANK_FILE = "bank.npy"
FORMAT_VERSION = 1
# ONNX output names of a reply model: what the responder reads and the exporter writes.
EMBEDDING_OUTPUT = "embedding"
INTENT_LOGITS_OUTPUT = "intent_logits"

DEFAULT_SLOT_REQUEST = "To help you with that, could you please tell me your {slots}?"
# Slots a customer can be asked for, and how to name them in the question. Other slots
# (a website address, support hours, an order's status) come from the caller or settings.
DEFAULT_CUSTOMER_SLOTS = {
    "order_number": "order number",
    "order_id": "order number",
    "customer_email": "email address",
    "email": "email address",
    "customer_name": "name",
    "account_number": "account number",
    "invoice_number": "invoice number",
}
DEFAULT_HANDOFF_REPLY = (
    "I'm passing this conversation to a member of our support team, who will reply shortly."
)

# `{{order_number}}`, `{{ Order Number }}` (Bitext's spelling) and the like.
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_NON_WORD = re.compile(r"[^0-9a-z]+")

FloatArray = npt.NDArray[np.float32]


def slot_key(name: str) -> str:
    """Canonical slot name: ``"Order Number"`` and ``order-number`` become ``order_number``."""
    return _NON_WORD.sub("_", name.strip().lower()).strip("_")


def placeholders(template: str) -> list[str]:
    """The slot keys a template needs, in order of first appearance, without repeats."""
    keys = (slot_key(m.group(1)) for m in _PLACEHOLDER.finditer(template))
    return list(dict.fromkeys(k for k in keys if k))


def humanize(template: str) -> str:
    """The template as plain text (``{{order_number}}`` -> ``order number``), for embedding."""
    return _PLACEHOLDER.sub(lambda m: slot_key(m.group(1)).replace("_", " "), template)


def render(template: str, slots: dict[str, str]) -> tuple[str, list[str]]:
    """Fill placeholders from ``slots`` (canonical keys) in one pass; also return what is missing.

    One pass: a value that itself contains ``{{...}}`` is inserted verbatim, never expanded.
    """
    missing: dict[str, None] = {}

    def fill(match: re.Match[str]) -> str:
        key = slot_key(match.group(1))
        if key in slots:
            return slots[key]
        missing[key] = None
        return match.group(0)

    return _PLACEHOLDER.sub(fill, template), list(missing)


def join_names(names: list[str]) -> str:
    """``["order number", "email address"]`` -> ``"order number and email address"``."""
    names = list(dict.fromkeys(names))
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def intent_probabilities(
    logits: npt.NDArray[np.floating[Any]], out_of_scope_logit: float | None
) -> npt.NDArray[np.float64]:
    """Softmax over the intents plus an implicit "none of them" with ``out_of_scope_logit``.

    Rows therefore sum to less than one when the best intent logit is not clearly above the
    background: the missing mass is the chance that the message is about none of the intents.
    Training's evaluation and serving both call this, so the manifest's handoff rate is the
    one the service will show.
    """
    x = logits.astype(np.float64)
    top = x.max(axis=-1, keepdims=True)
    if out_of_scope_logit is not None:
        top = np.maximum(top, out_of_scope_logit)
    exp = np.exp(x - top)
    total = exp.sum(axis=-1, keepdims=True)
    if out_of_scope_logit is not None:
        total = total + np.exp(out_of_scope_logit - top)
    out: npt.NDArray[np.float64] = exp / total
    return out


@dataclass(frozen=True)
class IntentInfo:
    name: str
    category: str = ""
    handoff: bool = False  # recognising this intent means the customer wants a person


@dataclass(frozen=True)
class Template:
    intent: str
    text: str
    slots: tuple[str, ...] = ()

    @classmethod
    def of(cls, intent: str, text: str) -> Template:
        return cls(intent, text, tuple(placeholders(text)))


@dataclass
class ResponseBank:
    """Intents in model-output order, templates with one embedding row each."""

    intents: list[IntentInfo]
    templates: list[Template]
    embeddings: FloatArray
    slot_request: str = DEFAULT_SLOT_REQUEST
    handoff_reply: str = DEFAULT_HANDOFF_REPLY
    customer_slots: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CUSTOMER_SLOTS))
    out_of_scope_logit: float | None = None
    _by_intent: dict[str, list[int]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        names = [i.name for i in self.intents]
        if len(set(names)) != len(names):
            raise ValueError(f"intent names are not unique: {names}")
        if self.embeddings.ndim != 2 or self.embeddings.shape[0] != len(self.templates):
            raise ValueError(
                f"{len(self.templates)} templates but embeddings of shape {self.embeddings.shape}"
            )
        self._by_intent = {n: [] for n in names}
        for row, template in enumerate(self.templates):
            if template.intent not in self._by_intent:
                raise ValueError(f"template for unknown intent {template.intent!r}")
            self._by_intent[template.intent].append(row)
        empty = [n for n, rows in self._by_intent.items() if not rows]
        if empty:
            raise ValueError(f"intents without a reply template: {empty}")
        if "{slots}" not in self.slot_request:
            raise ValueError("slot_request must contain '{slots}'")

    @property
    def intent_names(self) -> list[str]:
        return [i.name for i in self.intents]

    def rows(self, intent: str) -> list[int]:
        """Bank rows (template indices) of ``intent``."""
        return self._by_intent[intent]

    def slot_question(self, missing: list[str]) -> str | None:
        """The question asking the customer for ``missing`` slots, or None if any of them is
        not the customer's to give (those must come from the caller or the settings)."""
        if not missing or any(k not in self.customer_slots for k in missing):
            return None
        names = join_names([self.customer_slots[k] for k in missing])
        return self.slot_request.replace("{slots}", names)

    def handoff_rows(self) -> list[int]:
        """Rows of every template of every handoff intent (empty if the bank has none)."""
        return [r for i in self.intents if i.handoff for r in self._by_intent[i.name]]

    # -- files -----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        document: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "intents": [
                {"name": i.name, "category": i.category, "handoff": i.handoff} for i in self.intents
            ],
            "templates": [{"intent": t.intent, "text": t.text} for t in self.templates],
            "slot_request": self.slot_request,
            "handoff_reply": self.handoff_reply,
            "customer_slots": self.customer_slots,
            "out_of_scope_logit": self.out_of_scope_logit,
        }
        (folder / RESPONSES_FILE).write_text(json.dumps(document, indent=2, ensure_ascii=False))
        np.save(folder / BANK_FILE, np.ascontiguousarray(self.embeddings, dtype=np.float32))

    @classmethod
    def load(cls, folder: Path) -> ResponseBank:
        """Read both files; anything inconsistent is a ``CorruptModel``."""
        try:
            document = json.loads((folder / RESPONSES_FILE).read_text(encoding="utf-8"))
            embeddings = np.load(folder / BANK_FILE, allow_pickle=False)
            if document.get("format") != FORMAT_VERSION:
                raise ValueError(f"unknown format {document.get('format')!r}")
            oos = document.get("out_of_scope_logit")
            return cls(
                intents=[
                    IntentInfo(str(i["name"]), str(i.get("category", "")), bool(i["handoff"]))
                    for i in document["intents"]
                ],
                templates=[
                    Template.of(str(t["intent"]), str(t["text"])) for t in document["templates"]
                ],
                embeddings=np.asarray(embeddings, dtype=np.float32),
                slot_request=str(document.get("slot_request", DEFAULT_SLOT_REQUEST)),
                handoff_reply=str(document.get("handoff_reply", DEFAULT_HANDOFF_REPLY)),
                customer_slots={
                    slot_key(k): str(v)
                    for k, v in document.get("customer_slots", DEFAULT_CUSTOMER_SLOTS).items()
                },
                out_of_scope_logit=None if oos is None else float(oos),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptModel(f"unreadable response bank in {folder}: {exc}") from exc

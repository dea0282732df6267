"""The response bank: placeholders, slot filling, template choice, files, probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.errors import CorruptModel
from app.serving.conversations import is_follow_up
from app.serving.templates import choose
from app.store.bank import (
    BANK_FILE,
    RESPONSES_FILE,
    IntentInfo,
    ResponseBank,
    Template,
    humanize,
    intent_probabilities,
    placeholders,
    render,
    slot_key,
)


def test_slot_names_are_canonical_whatever_the_spelling() -> None:
    assert slot_key("Order Number") == "order_number"
    assert slot_key(" order-number ") == "order_number"
    text = "Order {{Order Number}} ships to {{ customer_email }}; again {{order_number}}."
    assert placeholders(text) == ["order_number", "customer_email"]
    assert humanize(text) == "Order order number ships to customer email; again order number."


def test_render_fills_in_one_pass_and_lists_what_is_missing() -> None:
    text, missing = render("Order {{order_number}} for {{name}}.", {"order_number": "{{name}}"})
    assert text == "Order {{name}} for {{name}}."  # the value is inserted verbatim
    assert missing == ["name"]
    text, missing = render("Hi {{Customer Name}}!", {"customer_name": "Ada"})
    assert (text, missing) == ("Hi Ada!", [])


def bank(tmp_path: Path | None = None) -> ResponseBank:
    templates = [
        Template.of("track", "Order {{order_number}} is on its way."),
        Template.of("track", "Follow it on {{website_url}}."),
        Template.of("human", "A person will take over."),
    ]
    # Template 1 is the most similar to the query below, template 0 the next.
    emb = np.array([[0.6, 0.8], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    return ResponseBank(
        intents=[IntentInfo("track", "orders"), IntentInfo("human", "human", handoff=True)],
        templates=templates,
        embeddings=emb,
        out_of_scope_logit=2.0,
    )


def test_choose_prefers_a_complete_template_then_asks_for_what_the_customer_knows() -> None:
    b = bank()
    query = np.array([1.0, 0.0], dtype=np.float32)
    template, text, missing = choose(b, b.rows("track"), query, {"website_url": "shop.example"})
    assert (text, missing) == ("Follow it on shop.example.", [])
    template, text, missing = choose(b, b.rows("track"), query, {"order_number": "A1"})
    assert (text, missing) == ("Order A1 is on its way.", [])
    # Nothing fills either: the more similar one needs a website the customer cannot give,
    # so the customer is asked for the order number instead.
    template, text, missing = choose(b, b.rows("track"), query, {})
    assert template.text == "Order {{order_number}} is on its way."
    assert missing == ["order_number"]
    assert text == "To help you with that, could you please tell me your order number?"
    assert "{{" not in text


def test_bank_files_round_trip_and_are_checked(tmp_path: Path) -> None:
    b = bank()
    b.save(tmp_path)
    loaded = ResponseBank.load(tmp_path)
    assert loaded.intent_names == ["track", "human"]
    assert loaded.handoff_rows() == [2]
    assert loaded.templates[0].slots == ("order_number",)
    assert loaded.out_of_scope_logit == 2.0
    np.testing.assert_array_equal(loaded.embeddings, b.embeddings)
    assert loaded.slot_question(["order_number", "customer_email"]) == (
        "To help you with that, could you please tell me your order number and email address?"
    )
    assert loaded.slot_question(["website_url"]) is None
    np.save(tmp_path / BANK_FILE, np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(CorruptModel, match="3 templates"):
        ResponseBank.load(tmp_path)
    (tmp_path / RESPONSES_FILE).write_text("{not json")
    with pytest.raises(CorruptModel):
        ResponseBank.load(tmp_path)


def test_every_intent_needs_a_template() -> None:
    with pytest.raises(ValueError, match="without a reply template"):
        ResponseBank(
            intents=[IntentInfo("a"), IntentInfo("b")],
            templates=[Template.of("a", "x")],
            embeddings=np.zeros((1, 2), dtype=np.float32),
        )


def test_out_of_scope_logit_takes_probability_from_weak_matches() -> None:
    logits = np.array([[10.0, 0.0], [1.0, 0.0]])
    plain = intent_probabilities(logits, None)
    assert plain.sum(axis=1) == pytest.approx([1.0, 1.0])
    open_set = intent_probabilities(logits, 3.0)
    assert open_set[0, 0] == pytest.approx(np.exp(10) / (np.exp(10) + 1 + np.exp(3)))
    assert open_set[0, 0] > 0.99  # a strong match barely notices the background
    assert open_set[1, 0] < 0.15  # a weak one is mostly "none of these"
    assert (open_set.sum(axis=1) < 1.0).all()


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("and how long will that take?", True),
        ("what about the refund?", True),
        ("can I return it", True),
        ("where is my order", False),
        ("I want to return the shoes that I bought last week because they are too small", False),
    ],
)
def test_follow_up_cues(message: str, expected: bool) -> None:
    assert is_follow_up(message) is expected

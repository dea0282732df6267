"""Reply training data: the knowledge base, Bitext-style rows, template files, metrics."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from app.store.bank import DEFAULT_CUSTOMER_SLOTS, placeholders
from app.store.manifest import Manifest
from app.store.versions import ModelStore
from app.training.bootstrap import run_bootstrap
from app.training.errors import InvalidDataset, TrainingCancelled
from app.training.finetune import Hyperparameters, TrainProgress
from app.training.recipes import load_recipe
from app.training.reply.data import (
    from_knowledge_base,
    from_rows,
    read_knowledge_base,
    read_templates,
)
from app.training.reply.evaluate import reply_metrics
from app.training.reply.ood import out_of_scope_logit
from app.training.reply.pipeline import build_reply_model
from app.training.reply.recipe import ReplyRecipe
from app.training.reply.rows import read_rows, rows_from_upload
from tests.support.tiny_reply_model import publish_tiny_reply_model

RECIPE_DIR = Path(__file__).resolve().parents[3] / "models" / "_recipes" / "reply"

# Bitext's layout: extra columns, a coarse category, quoted multi-line responses.
BITEXT_CSV = """context,role,instruction,intent,category,response
cs,va,where is order 123,track_order,ORDER,"Your order {{Order Number}} is on its way.
Thanks!"
cs,va,track my parcel please,track_order,ORDER,"Your order {{Order Number}} is on its way.
Thanks!"
cs,va,wheres my package,track_order,ORDER,You can follow it online.
cs,va,status of my order,track_order,ORDER,You can follow it online.
cs,va,I want my money back,get_refund,REFUND,Refunds take 5 days.
cs,va,refund please,get_refund,REFUND,Refunds take 5 days.
cs,va,give me a refund now,get_refund,REFUND,"We refund within 5 days, sorry."
cs,va,how do I get a refund,get_refund,REFUND,Refunds take 5 days.
cs,va,I need a real person,contact_human_agent,CONTACT,Connecting you to an agent.
cs,va,human agent please,contact_human_agent,CONTACT,Connecting you to an agent.
cs,va,let me talk to someone,contact_human_agent,CONTACT,Connecting you to an agent.
"""


def test_the_default_knowledge_base_is_complete() -> None:
    kb = read_knowledge_base(RECIPE_DIR / "knowledge_base.json")
    data = from_knowledge_base(kb)
    assert len(data.intents) == 23
    assert [i.intent for i in data.intents if i.handoff] == ["human_agent"]
    assert all(len(i.examples) >= 15 and len(i.heldout) >= 5 for i in kb.intents)
    train = {u.text.lower() for u in data.train}
    assert not train & {u.text.lower() for u in data.eval}, "held-out paraphrases leak"
    for intent in kb.intents:
        # Every intent can answer without any slot, or ask the customer for what it needs.
        needs = [set(placeholders(t)) for t in intent.responses]
        assert any(n <= set(DEFAULT_CUSTOMER_SLOTS) for n in needs), intent.intent


def test_the_reply_recipe_validates() -> None:
    recipe = ReplyRecipe.from_recipe(load_recipe(RECIPE_DIR))
    assert (recipe.name, recipe.task, recipe.eval) == ("reply", "reply", "heldout")
    assert recipe.provenance()["data_sha256"]


def test_bitext_rows_work_as_uploaded(tmp_path: Path) -> None:
    rows = rows_from_upload(BITEXT_CSV.encode())
    assert rows[0]["instruction"] == "where is order 123"
    assert rows[0]["response"].endswith("\nThanks!")
    path = tmp_path / "bitext.csv"
    path.write_text(BITEXT_CSV)
    assert read_rows(path) == rows
    data = from_rows(rows, eval_fraction=0.25, seed=1)
    assert data.intent_names == ["contact_human_agent", "get_refund", "track_order"]
    assert {i.intent: i.handoff for i in data.intents}["contact_human_agent"] is True
    assert {i.intent: i.category for i in data.intents}["get_refund"] == "refund"
    # Stratified: every intent is both trained and evaluated.
    assert {u.intent for u in data.eval} == set(data.intent_names)
    assert len(data.train) + len(data.eval) == 11
    assert all(u.response for u in data.train)
    # The bank holds the most frequent responses first (among the training rows).
    assert data.templates("get_refund")[0] == "Refunds take 5 days."


def test_rows_without_responses_need_a_template_file(tmp_path: Path) -> None:
    rows = [{"text": t, "label": lab} for t, lab in [("hi", "greet")] * 3 + [("bye", "bye")] * 3]
    with pytest.raises(InvalidDataset, match="without a reply template"):
        from_rows(rows)
    mapping = tmp_path / "templates.json"
    mapping.write_text(json.dumps({"greet": "Hello!", "bye": ["Goodbye.", "See you."]}))
    data = from_rows(rows, templates=read_templates(mapping))
    assert data.templates("bye") == ["Goodbye.", "See you."]
    table = tmp_path / "templates.csv"
    table.write_text("intent,response\ngreet,Hello!\nbye,Goodbye.\nbye,Goodbye.\n")
    assert read_templates(table) == {"greet": ["Hello!"], "bye": ["Goodbye."]}
    assert read_templates(RECIPE_DIR / "knowledge_base.json")["greeting"][0].startswith("Hello")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"foo": "x", "bar": "y"}], "utterance column"),
        ([{"utterance": "", "intent": "a", "response": "r"}], "empty"),
        ([{"utterance": "x", "intent": "a", "response": "r"}] * 3, "at least two intents"),
    ],
)
def test_bad_rows_are_refused(rows: list[dict[str, str]], message: str) -> None:
    with pytest.raises(InvalidDataset, match=message):
        from_rows(rows, eval_rows=rows)


def test_knowledge_base_errors_name_the_problem() -> None:
    with pytest.raises(InvalidDataset, match="more than once"):
        read_knowledge_base(
            {"intents": [{"intent": "a", "responses": ["r"]}, {"intent": "a", "responses": ["r"]}]}
        )
    with pytest.raises(InvalidDataset, match="slot_request"):
        read_knowledge_base(
            {
                "slot_request": "no placeholder",
                "intents": [
                    {"intent": "a", "responses": ["r"]},
                    {"intent": "b", "responses": ["s"]},
                ],
            }
        )


def test_reply_metrics() -> None:
    intents = ["track", "refund", "human"]
    probs = np.array(
        [
            [0.9, 0.05, 0.05],  # right
            [0.2, 0.7, 0.1],  # right
            [0.45, 0.4, 0.1],  # wrong (true refund) and unsure
            [0.1, 0.1, 0.8],  # right, and a handoff intent
        ]
    )
    m = reply_metrics([0, 1, 1, 2], probs, intents, {"human"}, 0.5, retrieved=[0, 1, 1, 1])
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["top3_accuracy"] == 1.0
    assert m["low_confidence_rate"] == pytest.approx(0.25)
    assert m["handoff_rate"] == pytest.approx(0.5)
    assert m["retrieval_accuracy"] == pytest.approx(0.75)
    assert m["handoff_threshold"] == 0.5
    assert 0 < m["macro_f1"] < 1


def test_out_of_scope_logit_sits_between_probes_and_in_domain() -> None:
    probes = np.array([[1.0, 2.0], [3.0, 0.0], [2.5, 1.0]], dtype=np.float32)
    in_domain = np.array([[9.0, 1.0], [1.0, 8.0], [10.0, 0.0]], dtype=np.float32)
    assert 2.5 < out_of_scope_logit(probes, in_domain) <= 3.0
    # Probes the knowledge base happens to cover cannot push it above its own messages.
    assert out_of_scope_logit(in_domain + 5, in_domain) < 8.1


class Heard:
    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def model_started(self, name: str, *, train_rows: int, eval_rows: int) -> None:
        self.events.append(("started", name, str(train_rows), str(eval_rows)))

    def model_stage(self, name: str, stage: str) -> None:
        self.events.append(("stage", name, stage))

    def model_progress(self, name: str, progress: TrainProgress) -> None: ...

    def model_finished(self, name: str, manifest: Manifest) -> None:
        self.events.append(("finished", name, str(manifest.version)))

    def model_skipped(self, name: str, reason: str) -> None:
        self.events.append(("skipped", name, reason))


def test_bootstrap_builds_the_reply_recipe_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipes = tmp_path / "recipes"
    shutil.copytree(RECIPE_DIR, recipes / "reply")
    store = ModelStore(tmp_path / "models")

    def build(
        self: ReplyRecipe,
        store: ModelStore,
        *,
        on_progress: Callable[[TrainProgress], None] | None = None,
        on_stage: Callable[[str], None] | None = None,
        activate: bool = True,
    ) -> Manifest:
        # The real build is covered by the session's trained model; here only the wiring.
        assert on_stage is not None
        on_stage("training")
        return publish_tiny_reply_model(store, self.name, activate=activate)

    monkeypatch.setattr(ReplyRecipe, "build", build)
    heard = Heard()
    (manifest,) = run_bootstrap(store, recipes, progress=heard)
    assert (manifest.name, manifest.task, store.active_version("reply")) == ("reply", "reply", 1)
    assert heard.events == [
        ("started", "reply", "482", "136"),
        ("stage", "reply", "training"),
        ("finished", "reply", "1"),
    ]
    assert run_bootstrap(store, recipes, progress=heard) == []
    assert heard.events[-1][:2] == ("skipped", "reply")


def test_a_stop_request_cancels_before_anything_is_published(tmp_path: Path) -> None:
    rows = [{"utterance": f"hello number {i}", "intent": "greet"} for i in range(4)] + [
        {"utterance": f"goodbye number {i}", "intent": "bye"} for i in range(4)
    ]
    store = ModelStore(tmp_path / "models")
    with pytest.raises(TrainingCancelled):
        build_reply_model(
            store,
            name="tiny",
            rows=rows,
            templates={"greet": ["Hello!"], "bye": ["Goodbye {{customer_name}}."]},
            hp=Hyperparameters(epochs=1, batch_size=4, max_length=8),
            should_stop=lambda: True,
        )
    assert store.names() == []

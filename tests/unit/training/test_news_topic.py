"""The on-request news-topic recipe: AG News files turned into a buildable recipe folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.training import news_topic
from app.training.errors import InvalidRecipe
from app.training.recipes import ClassificationRecipe, list_recipes, load_recipe

ROOT = Path(__file__).resolve().parents[3]
RECIPES = ROOT / "models" / "_recipes"
# Written for this test in AG News's two layouts; not rows of the data set.
CSV_ROWS = """label,content
1,"Leaders met in the capital\\to discuss the border treaty."
2,The home side won the cup final after extra time.
3,Shares of the retailer fell after a weak quarter.
4,"A new chip doubles battery life, the maker said."
2,The home side won the cup final after extra time.
1,Talks on the ceasefire resumed on Monday.
"""
TSV_ROWS = "Shares rose on the merger news.\tBusiness\nThe probe reached orbit.\tSci/Tech\n"


def test_csv_and_tsv_rows_become_topic_examples(tmp_path: Path) -> None:
    csv_path = tmp_path / "train.csv"
    csv_path.write_text(CSV_ROWS)
    examples = news_topic.read_ag_news(csv_path)
    assert [e.label for e in examples] == ["world", "sports", "business", "sci_tech", "world"]
    assert examples[0].text == "Leaders met in the capital to discuss the border treaty."
    tsv_path = tmp_path / "dev.tsv"
    tsv_path.write_text(TSV_ROWS)
    assert [e.label for e in news_topic.read_ag_news(tsv_path)] == ["business", "sci_tech"]
    bad = tmp_path / "bad.csv"
    bad.write_text("label,content\n7,Something else\n")
    with pytest.raises(InvalidRecipe, match=r"bad\.csv:2: unknown AG News class '7'"):
        news_topic.read_ag_news(bad)


def test_prepare_writes_a_recipe_bootstrap_can_build(tmp_path: Path) -> None:
    ag = tmp_path / "ag_news"
    ag.mkdir()
    (ag / news_topic.TRAIN_FILE).write_text(CSV_ROWS)
    out = news_topic.prepare(RECIPES / "on_request" / "news-topic", ag, tmp_path / "work", 1)
    (recipe,) = list_recipes(out)
    assert isinstance(recipe, ClassificationRecipe)
    assert recipe.name == "news-topic"
    examples = recipe.read_examples()
    assert sorted(e.label for e in examples) == ["business", "sci_tech", "sports", "world"]


def test_the_default_bootstrap_does_not_build_it() -> None:
    assert "news-topic" not in {r.name for r in list_recipes(RECIPES)}
    recipe = load_recipe(RECIPES / "on_request" / "news-topic")
    assert json.loads((recipe.folder / "recipe.json").read_text())["labels"] == [
        "world", "sports", "business", "sci_tech"
    ]  # fmt: skip


def test_without_ag_news_the_command_says_what_to_do(tmp_path: Path) -> None:
    env = {**os.environ, "TEXTSERVE_MODEL_STORE": str(tmp_path / "models"), "COLUMNS": "300"}
    textserve = str(Path(sys.executable).with_name("textserve"))
    data = str(tmp_path / "nowhere")
    done = subprocess.run(
        [textserve, "bootstrap", "news-topic", "--recipes", str(RECIPES), "--data", data],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "no AG News training data" in done.stderr
    assert "--data" in done.stderr
    assert not (tmp_path / "models" / "news-topic").exists()

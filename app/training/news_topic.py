"""The news-topic recipe: a World / Sports / Business / Sci-Tech classifier from AG News.

Built only on request (``textserve bootstrap news-topic``): the data is not part of the
project (AG News is for research and non-commercial use), so the recipe folder holds only
``recipe.json`` and this module turns a local copy of AG News into the recipe's data, a
balanced sample of ``per_label`` texts per topic, before bootstrap builds it as usual.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

from app.training.data import Example
from app.training.errors import InvalidRecipe
from app.training.recipes import RECIPE_FILE

NAME = "news-topic"
# Where the shared copy sits beside a checkout (see ../shared/data/README.md).
DEFAULT_AG_NEWS = Path("../shared/data/ag_news")
# The file of the folder read by default: 2,000 texts per class, description only.
TRAIN_FILE = "train_subset_8k.csv"
# AG News's class numbers (classes.txt order) and class names, as topic labels.
LABELS = {
    "1": "world", "2": "sports", "3": "business", "4": "sci_tech",
    "world": "world", "sports": "sports", "business": "business", "sci/tech": "sci_tech",
}  # fmt: skip


def find_train_file(path: Path) -> Path:
    """The AG News training file at ``path`` (the file, or a folder holding TRAIN_FILE)."""
    candidate = path / TRAIN_FILE if path.is_dir() else path
    if not candidate.is_file():
        raise InvalidRecipe(
            f"no AG News training data at {candidate}: pass --data with a copy of AG News "
            f"(a folder with {TRAIN_FILE}, or a `label,content` CSV); without one, keep the "
            "default `topic` model or fine-tune your own (docs/monitoring.md)"
        )
    return candidate


def read_ag_news(path: Path) -> list[Example]:
    """AG News rows as examples: ``label,content`` CSV (label 1-4) with a header, or
    ``description<TAB>ClassName`` TSV; backslashes (AG's line breaks) become spaces."""
    examples: list[Example] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8", newline="") as handle:
        tsv = path.suffix.lower() == ".tsv"
        for number, record in enumerate(csv.reader(handle, delimiter="\t" if tsv else ","), 1):
            if not record or (number == 1 and not tsv and record[0].strip().lower() == "label"):
                continue
            raw_label, raw_text = (record[-1], record[0]) if tsv else (record[0], record[-1])
            label = LABELS.get(raw_label.strip().lower())
            if label is None:
                raise InvalidRecipe(f"{path}:{number}: unknown AG News class {raw_label!r}")
            text = " ".join(raw_text.replace("\\", " ").split())
            if text and text not in seen:  # recipe data holds each text once
                seen.add(text)
                examples.append(Example(text=text, label=label))
    if not examples:
        raise InvalidRecipe(f"{path}: no AG News rows")
    return examples


def sample(examples: list[Example], per_label: int, seed: int) -> list[Example]:
    """At most ``per_label`` examples of each topic, drawn reproducibly, in a shuffled order."""
    rng = random.Random(seed)
    picked: list[Example] = []
    for label in sorted({e.label for e in examples}):
        rows = [e for e in examples if e.label == label]
        picked += rng.sample(rows, min(per_label, len(rows)))
    rng.shuffle(picked)
    return picked


def prepare(recipe_folder: Path, ag_news: Path, out_dir: Path, per_label: int) -> Path:
    """Write a buildable recipe folder ``out_dir/news-topic`` (recipe.json + data.jsonl);
    returns ``out_dir``, a recipes folder holding only it."""
    try:
        recipe = json.loads((recipe_folder / RECIPE_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidRecipe(f"cannot read the news-topic recipe: {exc}") from exc
    seed = int(recipe.get("hyperparameters", {}).get("seed", 13))
    rows = sample(read_ag_news(find_train_file(ag_news)), per_label, seed)
    target = out_dir / NAME
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(recipe_folder / RECIPE_FILE, target / RECIPE_FILE)
    with (target / recipe["data"]).open("w", encoding="utf-8") as out:
        for e in rows:
            out.write(json.dumps({"text": e.text, "label": e.label}, ensure_ascii=False) + "\n")
    return out_dir

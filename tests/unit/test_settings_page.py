"""The manual's configuration page names every setting, with a default a user can paste back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mkdocs.config import load_config
from mkdocs.structure.files import Files
from pydantic import Field

from app.config import Settings
from docs.hooks.settings_page import (
    PAGE,
    MissingDescription,
    render_page,
    settings_docs,
)

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_on_the_page_with_its_description() -> None:
    # Fails, naming the field, when a setting is added without Field(description=...).
    page = render_page()
    for name, info in Settings.model_fields.items():
        row = next(
            (line for line in page.splitlines() if f"`TEXTSERVE_{name.upper()}`" in line), ""
        )
        assert row, f"TEXTSERVE_{name.upper()} is not on the configuration page"
        assert " ".join(str(info.description).split()).replace("|", "\\|") in row


def test_a_setting_without_a_description_stops_the_page() -> None:
    class Undocumented(Settings):
        new_knob: int = 3

    with pytest.raises(MissingDescription, match="new_knob"):
        render_page(Undocumented)


def test_a_setting_added_later_appears_without_touching_the_docs() -> None:
    class Grown(Settings):
        # -- knowledge bases ----------------------------------------------------------------
        kb_chunk_tokens: int = Field(256, ge=16, description="Tokens per chunk.")

    page = render_page(Grown)
    assert "## Knowledge bases" in page
    assert "| `TEXTSERVE_KB_CHUNK_TOKENS` | integer, ≥ 16 | `256` | Tokens per chunk. |" in page


def test_types_defaults_and_other_names_are_shown() -> None:
    docs = {d.field: d for d in settings_docs(Settings)}
    assert docs["port"].type == "integer, ≥ 0, ≤ 65535"
    assert docs["port"].default == "`8000`"
    assert docs["providers"].default == "`CUDAExecutionProvider,CPUExecutionProvider`"
    assert docs["model_variant"].type == "one of `auto`, `fp32`, `int8`, `fp16`"
    assert docs["rate_limit_texts"].default == '`{"infer":2000.0}`'
    assert docs["jobs_db_url"].default == "unset"
    assert docs["ray_address"].variables == ("TEXTSERVE_RAY_ADDRESS", "RAY_ADDRESS")
    assert docs["data_dir"].section == "Fine-tune jobs"
    assert docs["host"].section == "Serving"


def test_every_default_shown_reads_back_as_that_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # A user copies a default from the page into the environment: it must mean the same.
    defaults = Settings()
    for doc in settings_docs(Settings):
        shown = re.fullmatch(r"`(.*)`", doc.default)
        if shown is None:  # unset / empty
            continue
        with monkeypatch.context() as env:
            env.setenv(doc.variables[0], shown.group(1))
            assert getattr(Settings(), doc.field) == getattr(defaults, doc.field), doc.variables


def test_the_mkdocs_hook_adds_the_page_to_the_site() -> None:
    # Through mkdocs' own event machinery, as `mkdocs build` runs the hooks named in mkdocs.yml.
    config = load_config(str(ROOT / "mkdocs.yml"))
    config = config.plugins.on_config(config)
    files = config.plugins.on_files(Files([]), config=config)
    page = files.get_file_from_path(PAGE)
    assert page is not None
    assert page.content_string == render_page()
    assert PAGE in str(config["nav"])

"""The manifest that describes one published model version (``manifest.json``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.errors import InvalidModelName

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

Task = Literal["classification", "reply"]


def check_name(name: str) -> str:
    """Refuse names that are not plain identifiers (no dots, slashes or path tricks)."""
    if not NAME_RE.fullmatch(name):
        raise InvalidModelName(
            f"invalid model name {name!r}: use 1-64 of a-z, 0-9, '_' and '-', starting alphanumeric"
        )
    return name


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Manifest(BaseModel):
    """What a model version is, how it was made and how well it did."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str
    version: int = 0  # assigned by the store at publish time
    task: Task = "classification"
    labels: list[str]
    base_model: str
    max_seq_length: int = Field(ge=1)
    created_at: str = Field(default_factory=utc_now)
    inputs: list[str] = Field(default_factory=lambda: ["input_ids", "attention_mask"])
    pad_token_id: int = 0
    tokenizer_file: str = "tokenizer.json"
    files: dict[str, str] = Field(default_factory=dict, description="relative path -> sha256")
    metrics: dict[str, Any] = Field(default_factory=dict)
    recipe: dict[str, Any] = Field(default_factory=dict)
    parity: dict[str, Any] = Field(default_factory=dict)
    # Extra ONNX files of the same version (e.g. {"int8": "model.int8.onnx"}).
    variants: dict[str, str] = Field(default_factory=dict)

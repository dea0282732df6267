"""The manifest that describes one published model version (``manifest.json``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.errors import InvalidModelName

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
# The same network with dynamically quantized int8 weights (see app/training/export.py).
INT8_FILE = "model.int8.onnx"
# The same network in half precision, for GPUs (float32 inputs and outputs kept).
FP16_FILE = "model.fp16.onnx"
FP32: Final = "fp32"
INT8: Final = "int8"
FP16: Final = "fp16"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

Task = Literal["classification", "reply", "embedding"]


def check_name(name: str) -> str:
    """Refuse names that are not plain identifiers (no dots, slashes or path tricks)."""
    if not NAME_RE.fullmatch(name):
        raise InvalidModelName(
            f"invalid model name {name!r}: use 1-64 of a-z, 0-9, '_' and '-', starting alphanumeric"
        )
    return name


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Variant(BaseModel):
    """One ONNX file of a version: the same network at another numeric precision."""

    model_config = ConfigDict(extra="allow")

    file: str
    # Scored on the version's held-out rows through ONNX Runtime, as serving runs the file:
    # accuracy, macro_f1, n. Empty when the version was built without held-out rows.
    eval: dict[str, Any] = Field(default_factory=dict)


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
    # The ONNX files of this version by precision ("fp32", "int8", "fp16"). Older manifests list
    # none: their only file is MODEL_FILE, in fp32 (see ``variant_files``).
    variants: dict[str, Variant] = Field(default_factory=dict)
    # Embedding models (task "embedding"): the length of their vectors and how token vectors
    # became one ("mean": attention-masked mean, then L2 normalisation, inside the graph).
    dimension: int | None = Field(None, ge=1)
    pooling: str | None = None

    @field_validator("variants", mode="before")
    @classmethod
    def _plain_file_names(cls, value: object) -> object:
        # The field once held bare file names ({"int8": "model.int8.onnx"}); still read them.
        if isinstance(value, dict):
            return {k: {"file": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    def variant_files(self) -> dict[str, str]:
        """Each variant's file, fp32 always included (``MODEL_FILE`` unless stated)."""
        files = {name: variant.file for name, variant in self.variants.items()}
        files.setdefault(FP32, MODEL_FILE)
        return files

    def variant_accuracy(self, name: str) -> float | None:
        """The held-out accuracy recorded for variant ``name``, or None if none was."""
        variant = self.variants.get(name)
        accuracy = variant.eval.get("accuracy") if variant is not None else None
        return float(accuracy) if isinstance(accuracy, int | float) else None

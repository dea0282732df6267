"""Model references as callers write them: ``name`` or ``name@version``."""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import InvalidModelName
from app.store.manifest import check_name


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int | None = None

    @classmethod
    def parse(cls, ref: str) -> ModelRef:
        name, sep, version = ref.partition("@")
        if sep and not version.isdigit():
            raise InvalidModelName(f"invalid model version in {ref!r}: expected name@<integer>")
        return cls(check_name(name), int(version) if sep else None)

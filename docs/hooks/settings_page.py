"""The manual's configuration page, written from ``app.config.Settings`` when the site builds.

An mkdocs hook (``hooks:`` in mkdocs.yml): ``on_files`` adds ``configuration.md`` to the site,
rendered from the fields themselves (name, type, constraints, default, description), so the
page cannot drift from the code and a setting added to ``Settings`` appears without anyone
touching the docs. A field without a description stops the build (and tests/unit/
test_settings_page.py), naming the field. ``python docs/hooks/settings_page.py`` prints it.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
import textwrap
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings, NoDecode

PAGE = "configuration.md"
# Fields above the first `# -- title ---` comment in the class body.
FIRST_SECTION = "Serving"
_SECTION = re.compile(r"^\s*# -- (?P<title>.+?) -*$")
_FIELD = re.compile(r"^    (?P<name>[a-z_][a-z0-9_]*)\s*:")

_INTRO = """\
# Configuration

<!-- Generated from app/config.py and app/settings/ by docs/hooks/settings_page.py at build
     time: edit the Settings fields' descriptions there, not this page. -->

Settings are read once, at start, from environment variables `{prefix}<NAME>`
(pydantic-settings, `{module}`), then passed down; nothing reads the environment later.
This page is generated from those fields when the site builds, so it lists every setting
the code has, with its type, default and description.

- Booleans are `true` / `false` (also `1` / `0`, `yes` / `no`).
- Lists are comma-separated (`A,B`) or a JSON list; objects (rates, slots) are JSON.
- A value the service cannot use stops the start with one line naming the variable, e.g.
  `textserve: invalid setting: TEXTSERVE_MAX_BATCH_SIZE='0': Input should be greater than or
  equal to 1`.
- In Kubernetes the settings live in the ConfigMap `textserve-config` (`k8s/base`); the
  deployment checks assert that every `TEXTSERVE_*` there is a real setting.
"""


class MissingDescription(ValueError):
    """A setting without ``Field(description=...)``: the page would say nothing about it."""


@dataclass(frozen=True)
class SettingDoc:
    """One row of the page."""

    field: str
    section: str
    variables: tuple[str, ...]
    type: str
    default: str
    description: str


def settings_docs(settings: type[BaseSettings]) -> list[SettingDoc]:
    """Every field of ``settings`` in declaration order, each under its source section."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    sections = _sections(settings)
    missing = [n for n, f in settings.model_fields.items() if not (f.description or "").strip()]
    if missing:
        raise MissingDescription(
            f"{settings.__name__} fields without Field(description=...): {', '.join(missing)}"
        )
    return [
        SettingDoc(
            field=name,
            section=sections.get(name, FIRST_SECTION),
            variables=_variables(prefix, name, info),
            type=_type(info),
            default=_default(info),
            description=" ".join(str(info.description).split()),
        )
        for name, info in settings.model_fields.items()
    ]


def render_page(settings: type[BaseSettings] | None = None) -> str:
    """The whole configuration page, as Markdown."""
    if settings is None:
        from app.config import Settings

        settings = Settings
    docs = settings_docs(settings)
    out = [
        _INTRO.format(
            prefix=settings.model_config.get("env_prefix", ""),
            module=_relative(settings),
        )
    ]
    for section in dict.fromkeys(d.section for d in docs):
        out += [
            f"\n## {section}\n",
            "| variable | type | default | description |",
            "|---|---|---|---|",
        ]
        out += [_row(d) for d in docs if d.section == section]
    return "\n".join(out) + "\n"


def _row(doc: SettingDoc) -> str:
    names = "<br>".join(f"`{v}`" for v in doc.variables)
    cells = (names, doc.type, doc.default, doc.description)
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _sections(settings: type[BaseSettings]) -> dict[str, str]:
    """Field name → the title of the ``# -- title ---`` comment above it in the class body."""
    found: dict[str, str] = {}
    for cls in reversed(settings.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseSettings)) or cls is BaseSettings:
            continue
        section = FIRST_SECTION
        # Dedented: a class defined inside a function (a test's) reads like a module's.
        for line in textwrap.dedent("".join(inspect.getsourcelines(cls)[0])).splitlines():
            if heading := _SECTION.match(line):
                title = heading.group("title").strip()
                section = title[:1].upper() + title[1:]
            elif (field := _FIELD.match(line)) and field.group("name") in settings.model_fields:
                found[field.group("name")] = section
    return found


def _variables(prefix: str, name: str, info: FieldInfo) -> tuple[str, ...]:
    own = f"{prefix}{name}".upper()
    alias = info.validation_alias
    choices = alias.choices if isinstance(alias, AliasChoices) else [alias] if alias else []
    # Other environment names the field is read from (e.g. RAY_ADDRESS); not the field name.
    extra = [c for c in choices if isinstance(c, str) and c.isupper() and c != own]
    return (own, *extra)


def _type(info: FieldInfo) -> str:
    text = _describe(info.annotation, split=NoDecode in info.metadata)
    limits = [_limit(m) for m in info.metadata]
    return ", ".join([text, *(limit for limit in limits if limit)])


def _describe(annotation: Any, *, split: bool = False) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        inner = _describe(rest[0], split=split) if len(rest) == 1 else " or ".join(map(str, rest))
        return f"{inner} (optional)"
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (tuple, list):
        item = _describe(args[0]) if args else "value"
        return f"list of {item}s, comma-separated or JSON" if split else f"JSON list of {item}s"
    if origin is dict:
        return f"JSON object of {_describe(args[1])}s" if len(args) == 2 else "JSON object"
    simple = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        Path: "path",
        SecretStr: "secret string",
    }
    return simple.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _limit(constraint: object) -> str | None:
    bounds = {
        annotated_types.Ge: ("≥", "ge"),
        annotated_types.Gt: (">", "gt"),
        annotated_types.Le: ("≤", "le"),
        annotated_types.Lt: ("<", "lt"),
    }
    for kind, (sign, attr) in bounds.items():
        if isinstance(constraint, kind):
            return f"{sign} {getattr(constraint, attr)}"
    return None


def _default(info: FieldInfo) -> str:
    if info.default is not PydanticUndefined:
        value = info.default
    elif info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    else:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple | list):
        return f"`{','.join(map(str, value))}`" if value else "empty"
    if isinstance(value, dict):
        return f"`{json.dumps(value, separators=(',', ':'))}`"
    if value == "":
        return "empty"
    return f"`{value}`"


def _relative(settings: type[BaseSettings]) -> str:
    source = Path(inspect.getsourcefile(settings) or "")
    parts = source.parts
    return "/".join(parts[parts.index("app") :]) if "app" in parts else source.name


# -- the mkdocs hook -------------------------------------------------------------------------


def on_files(files: Any, config: Any) -> Any:
    """Add the generated page to the site's files (mkdocs' ``on_files`` event)."""
    from mkdocs.structure.files import File

    # Document the checkout being built, whatever else the environment has installed.
    root = str(Path(config.config_file_path).resolve().parent)
    if sys.path[:1] != [root]:
        sys.path.insert(0, root)
    # `mkdocs serve` rebuilds when the settings change (`watch:`): read the new fields, the
    # sections first, since app.config composes them.
    for name in sorted(n for n in sys.modules if n.startswith("app.settings.")):
        importlib.reload(sys.modules[name])
    if "app.config" in sys.modules:
        importlib.reload(sys.modules["app.config"])
    files.append(File.generated(config, PAGE, content=render_page()))
    return files


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.stdout.write(render_page())

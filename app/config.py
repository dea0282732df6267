"""Service settings: read once from the environment (prefix ``TEXTSERVE_``) and passed down.

``Settings`` composes one class per section (app/settings/); the manual's configuration page
is generated from them (docs/hooks/settings_page.py), section by section.
"""

from __future__ import annotations

import re

from pydantic_settings import SettingsConfigDict

from app.settings.cluster import ClusterSettings
from app.settings.jobs import JobSettings
from app.settings.knowledge import KnowledgeSettings
from app.settings.monitor import MonitorSettings
from app.settings.replies import ReplySettings
from app.settings.security import SecuritySettings
from app.settings.serving import DEFAULT_PROVIDERS, ServingSettings
from app.settings.values import STREAM_NAME

__all__ = ["DEFAULT_PROVIDERS", "STREAM_NAME", "Settings", "settings_problems"]


# Bases run from the last section to the first: pydantic lists the fields of later bases
# first, so the serving section leads, as the manual's page does.
class Settings(
    ClusterSettings,
    KnowledgeSettings,
    MonitorSettings,
    SecuritySettings,
    ReplySettings,
    JobSettings,
    ServingSettings,
):
    """Every knob of the service. Each field is also the env var ``TEXTSERVE_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="TEXTSERVE_", frozen=True, extra="ignore")


def settings_problems(exc: Exception) -> list[str]:
    """One line per problem of settings that failed to load, each naming its variable.

    For a person reading a failed start, and for a log pipeline: pydantic's own report is a
    multi-line box naming fields, not the variables that set them.
    """
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    if isinstance(exc, ValidationError):
        lines = []
        for error in exc.errors(include_url=False):
            loc = error.get("loc") or ()
            if not loc:  # a rule across fields: its message names the variables
                lines.append(str(error.get("msg", "")).removeprefix("Value error, "))
                continue
            name = f"TEXTSERVE_{str(loc[0]).upper()}"
            lines.append(f"{name}={error.get('input')!r}: {error.get('msg')}")
        return lines
    if isinstance(exc, SettingsError):  # a value that is not the JSON its field needs
        found = re.search(r'field "(\w+)"', str(exc))
        name = f"TEXTSERVE_{found.group(1).upper()}" if found else "a setting"
        return [f"{name}: not valid JSON ({exc.__cause__ or exc})"]
    return [str(exc)]

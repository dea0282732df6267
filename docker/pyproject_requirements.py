"""Print the requirements of the project and the given extras, one a line, from pyproject.toml.

The Dockerfile installs these before it copies the source, so a code change does not
reinstall every dependency (layer caching).

    python3 docker/pyproject_requirements.py pyproject.toml gpu,train > requirements.txt
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    out = list(project["dependencies"])
    optional = project.get("optional-dependencies", {})
    for extra in (e for arg in extras for e in arg.split(",") if e):
        if extra not in optional:
            raise SystemExit(f"no extra {extra!r} in {pyproject}; have {sorted(optional)}")
        out += optional[extra]
    return out


if __name__ == "__main__":
    print("\n".join(requirements(Path(sys.argv[1]), sys.argv[2:])))

"""API keys: parsed from a file or an environment variable, kept only as SHA-256 digests.

One key per line (or per ``;`` in the environment variable)::

    # name:scopes:secret
    ci-bot:infer:3f9c...                   a plain secret, hashed as soon as it is read
    ops:admin,metrics:sha256:9b74c9897...  the hex SHA-256 of the secret, for files at rest

Blank lines and ``#`` comments are skipped. A plain secret must be at least
``MIN_SECRET_CHARS`` long: short keys can be guessed faster than rate limits slow them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SCOPES = ("infer", "admin", "metrics")
MIN_SECRET_CHARS = 16
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class KeysError(ValueError):
    """The key configuration is malformed; the service refuses to start with it."""


@dataclass(frozen=True)
class ApiKey:
    """One caller: a name for logs and rate limits, its scopes, and its secret's digest."""

    name: str
    scopes: frozenset[str]
    digest: bytes


def digest(secret: str) -> bytes:
    """The SHA-256 of a secret, the only form in which keys are kept."""
    return hashlib.sha256(secret.encode("utf-8")).digest()


class KeyRing:
    """The configured keys; empty means the service runs open."""

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self._keys = tuple(keys)
        names = [k.name for k in self._keys]
        if len(set(names)) != len(names):
            raise KeysError("API key names must be unique")
        digests = [k.digest for k in self._keys]
        if len(set(digests)) != len(digests):
            raise KeysError("two API keys have the same secret")

    @property
    def open(self) -> bool:
        return not self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, secret: str) -> ApiKey | None:
        """The key whose digest matches, compared in constant time against every key."""
        presented = digest(secret)
        found = None
        # No early exit: the time taken says nothing about which key (or prefix) matched.
        for key in self._keys:
            if hmac.compare_digest(key.digest, presented):
                found = key
        return found


def parse_entry(entry: str, where: str) -> ApiKey:
    """One ``name:scopes:secret`` entry."""
    parts = entry.split(":", 2)
    if len(parts) != 3:
        raise KeysError(f"{where}: expected name:scopes:secret")
    name, scope_list, secret = (p.strip() for p in parts)
    if not _NAME.match(name):
        raise KeysError(f"{where}: key name {name!r} must be 1-64 letters, digits, '_.-'")
    scopes = frozenset(s.strip() for s in scope_list.split(",") if s.strip())
    unknown = scopes - set(SCOPES)
    if not scopes or unknown:
        raise KeysError(f"{where}: scopes must be among {', '.join(SCOPES)}; got {scope_list!r}")
    if secret.startswith("sha256:"):
        hex_digest = secret.removeprefix("sha256:").lower()
        if not _HEX_DIGEST.match(hex_digest):
            raise KeysError(f"{where}: sha256: must be followed by 64 hex digits")
        return ApiKey(name, scopes, bytes.fromhex(hex_digest))
    if len(secret) < MIN_SECRET_CHARS:
        raise KeysError(f"{where}: the secret of {name!r} is shorter than {MIN_SECRET_CHARS}")
    return ApiKey(name, scopes, digest(secret))


def parse_keys(text: str, source: str) -> list[ApiKey]:
    """Every entry of a file's text or of the environment variable (``;`` also separates)."""
    keys = []
    for number, line in enumerate(re.split(r"[\n;]", text), start=1):
        entry = line.strip()
        if entry and not entry.startswith("#"):
            # The entry itself is never echoed: it may hold a secret.
            keys.append(parse_entry(entry, f"{source} entry {number}"))
    return keys


def load_keys(file: Path | None, inline: str | None) -> KeyRing:
    """Keys from ``file`` (a mounted Kubernetes Secret, say) and from ``inline`` together."""
    keys: list[ApiKey] = []
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise KeysError(f"cannot read the API keys file {file}: {exc.strerror}") from exc
        keys += parse_keys(text, str(file))
    if inline:
        keys += parse_keys(inline, "TEXTSERVE_API_KEYS")
    return KeyRing(keys)

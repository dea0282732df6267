"""Parsing and looking up API keys."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from app.security.keys import KeyRing, KeysError, load_keys, parse_keys

SECRET = "s3cret-key-0123456789"


def test_plain_and_hashed_entries_match_their_secret(tmp_path: Path) -> None:
    hashed = hashlib.sha256(b"another-secret-abcdef").hexdigest()
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# comment\n\nci:infer:{SECRET}\nops:admin,metrics:sha256:{hashed}\n")
    ring = load_keys(keys_file, "bot:infer:third-secret-0123456")
    assert len(ring) == 3
    ci = ring.lookup(SECRET)
    assert ci is not None and ci.name == "ci" and ci.scopes == {"infer"}
    ops = ring.lookup("another-secret-abcdef")
    assert ops is not None and ops.scopes == {"admin", "metrics"}
    assert ring.lookup("third-secret-0123456") is not None
    assert ring.lookup("wrong") is None
    # Only the digest is kept.
    assert SECRET not in repr(ci)


def test_semicolons_separate_inline_entries() -> None:
    keys = parse_keys(f"a:infer:{SECRET}1; b:admin:{SECRET}2", "env")
    assert [k.name for k in keys] == ["a", "b"]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("no-colons", "name:scopes:secret"),
        (f"ci:root:{SECRET}", "scopes must be among"),
        (f"ci::{SECRET}", "scopes must be among"),
        ("ci:infer:short", "shorter than"),
        ("ci:infer:sha256:abc", "64 hex digits"),
        (f"../x:infer:{SECRET}", "key name"),
    ],
)
def test_malformed_entries_are_refused_without_echoing_the_secret(entry: str, problem: str) -> None:
    with pytest.raises(KeysError, match=problem) as info:
        parse_keys(entry, "env")
    assert SECRET not in str(info.value)


def test_duplicate_names_or_secrets_are_refused() -> None:
    with pytest.raises(KeysError, match="unique"):
        KeyRing(parse_keys(f"a:infer:{SECRET}1;a:infer:{SECRET}2", "env"))
    with pytest.raises(KeysError, match="same secret"):
        KeyRing(parse_keys(f"a:infer:{SECRET};b:admin:{SECRET}", "env"))


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeysError, match="cannot read"):
        load_keys(tmp_path / "absent", None)


def test_no_keys_is_open_mode() -> None:
    assert load_keys(None, None).open
    assert load_keys(None, "").open

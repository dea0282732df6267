"""The model store: atomic publish, checksums, the active pointer, refusing bad versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.errors import CorruptModel, InvalidModelName, ModelNotFound
from app.store.manifest import MANIFEST_FILE, MODEL_FILE, Manifest
from app.store.versions import ModelStore, sha256_file
from tests.support.tiny_model import publish_tiny_classifier


def test_publish_assigns_versions_checksums_and_activates(store: ModelStore) -> None:
    first = publish_tiny_classifier(store, seed=1)
    second = publish_tiny_classifier(store, seed=2, activate=False)
    assert (first.version, second.version) == (1, 2)
    assert store.versions("sentiment") == [1, 2]
    assert store.active_version("sentiment") == 1
    folder = store.version_dir("sentiment", 2)
    on_disk = json.loads((folder / MANIFEST_FILE).read_text())
    assert on_disk["version"] == 2
    assert set(on_disk["files"]) == {MODEL_FILE, "tokenizer.json"}
    for rel, digest in on_disk["files"].items():
        assert sha256_file(folder / rel) == digest
    assert store.names() == ["sentiment"]
    # No temporary publish folders are left behind.
    assert [p.name for p in (store.root / "sentiment").iterdir() if p.name.startswith(".pub")] == []


def test_bad_checksum_is_refused_and_previous_version_stays_active(store: ModelStore) -> None:
    publish_tiny_classifier(store, seed=1)
    publish_tiny_classifier(store, seed=2, activate=False)
    model = store.version_dir("sentiment", 2) / MODEL_FILE
    model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CorruptModel, match="checksum mismatch"):
        store.set_active("sentiment", 2)
    assert store.active_version("sentiment") == 1


def test_missing_file_is_refused(store: ModelStore) -> None:
    publish_tiny_classifier(store, seed=1)
    publish_tiny_classifier(store, seed=2, activate=False)
    (store.version_dir("sentiment", 2) / "tokenizer.json").unlink()
    with pytest.raises(CorruptModel, match=r"missing file tokenizer\.json"):
        store.set_active("sentiment", 2)
    assert store.active_version("sentiment") == 1


def test_unreadable_manifest_is_corrupt(store: ModelStore) -> None:
    publish_tiny_classifier(store)
    (store.version_dir("sentiment", 1) / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(CorruptModel, match="unreadable manifest"):
        store.verify("sentiment", 1)


def test_manifest_pointing_outside_its_folder_is_refused(store: ModelStore) -> None:
    publish_tiny_classifier(store)
    path = store.version_dir("sentiment", 1) / MANIFEST_FILE
    data = json.loads(path.read_text())
    data["files"]["../../../etc/passwd"] = "0" * 64
    path.write_text(json.dumps(data))
    with pytest.raises(CorruptModel, match="outside"):
        store.verify("sentiment", 1)


def test_publish_without_model_file_leaves_nothing(store: ModelStore, tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "tokenizer.json").write_text("{}")
    manifest = Manifest(name="broken", labels=["a"], base_model="x", max_seq_length=8)
    with pytest.raises(CorruptModel, match="missing"):
        store.publish(staging, manifest)
    assert store.versions("broken") == []


def test_interrupted_publish_is_cleaned_up(store: ModelStore) -> None:
    publish_tiny_classifier(store)
    partial = store.root / "sentiment" / ".publish-crashed"
    partial.mkdir()
    (partial / MODEL_FILE).write_bytes(b"half a model")
    assert store.versions("sentiment") == [1]
    assert partial in store.cleanup_partial()
    assert not partial.exists()
    assert store.active_version("sentiment") == 1


@pytest.mark.parametrize("name", ["../etc", "a/b", ".hidden", "", "UPPER", "x" * 65, "_recipes"])
def test_names_that_could_escape_the_store_are_refused(store: ModelStore, name: str) -> None:
    with pytest.raises(InvalidModelName):
        store.versions(name)


def test_unknown_version_is_not_found(store: ModelStore) -> None:
    publish_tiny_classifier(store)
    with pytest.raises(ModelNotFound):
        store.read_manifest("sentiment", 7)
    assert store.active_version("nothing") is None

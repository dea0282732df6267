"""The on-disk model store: ``<root>/<name>/<version>/`` plus an ``active`` pointer per name.

Every mutation is atomic on a POSIX filesystem: a version is assembled in a hidden temporary
folder beside its final place, verified, then renamed; the pointer is written to a temporary
file and renamed over the old one. A reader therefore sees either the old or the new state.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from app.errors import CorruptModel, ModelNotFound
from app.store.manifest import MANIFEST_FILE, MODEL_FILE, Manifest, check_name, utc_now

ACTIVE_FILE = "active"
HISTORY_FILE = "history.jsonl"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class ModelStore:
    """Reads and writes model versions under one root folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- reading ---------------------------------------------------------------------------
    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith((".", "_")) and self.versions(p.name)
        )

    def versions(self, name: str) -> list[int]:
        folder = self.root / check_name(name)
        if not folder.is_dir():
            return []
        return sorted(
            int(p.name)
            for p in folder.iterdir()
            if p.is_dir() and p.name.isdigit() and (p / MANIFEST_FILE).is_file()
        )

    def version_dir(self, name: str, version: int) -> Path:
        return self.root / check_name(name) / str(int(version))

    def read_manifest(self, name: str, version: int) -> Manifest:
        path = self.version_dir(name, version) / MANIFEST_FILE
        if not path.is_file():
            raise ModelNotFound(f"model {name!r} has no version {version}")
        try:
            return Manifest.model_validate_json(path.read_text())
        except ValueError as exc:
            raise CorruptModel(f"{name}@{version}: unreadable manifest: {exc}") from exc

    def verify(self, name: str, version: int) -> Manifest:
        """Check every file against the manifest's sha256; raise ``CorruptModel`` if any differ."""
        manifest = self.read_manifest(name, version)
        folder = self.version_dir(name, version)
        if MODEL_FILE not in manifest.files:
            raise CorruptModel(f"{name}@{version}: manifest lists no {MODEL_FILE}")
        for variant, rel in manifest.variant_files().items():
            # A variant's file is loaded as the model: it must be checksummed like one.
            if rel not in manifest.files:
                raise CorruptModel(f"{name}@{version}: {variant} file {rel} has no checksum")
        for rel, expected in manifest.files.items():
            path = (folder / rel).resolve()
            if folder.resolve() not in path.parents:
                raise CorruptModel(f"{name}@{version}: file {rel!r} points outside its folder")
            if not path.is_file():
                raise CorruptModel(f"{name}@{version}: missing file {rel}")
            if sha256_file(path) != expected:
                raise CorruptModel(f"{name}@{version}: checksum mismatch for {rel}")
        return manifest

    def active_version(self, name: str) -> int | None:
        path = self.root / check_name(name) / ACTIVE_FILE
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    # -- writing ---------------------------------------------------------------------------
    def publish(self, staging: Path, manifest: Manifest) -> Manifest:
        """Move a built model folder into the store as the next version of ``manifest.name``.

        ``staging`` holds ``model.onnx``, the file of every other variant the manifest names
        (``model.int8.onnx``) and the tokenizer files. Checksums are computed here,
        the folder is verified, and only then renamed into place. Returns the final manifest.
        """
        name = check_name(manifest.name)
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        if not (staging / MODEL_FILE).is_file():
            raise CorruptModel(f"cannot publish {name}: {MODEL_FILE} missing from {staging}")
        for variant, rel in manifest.variant_files().items():
            if not (staging / rel).is_file():
                raise CorruptModel(f"cannot publish {name}: {variant} file {rel} missing")
        tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".publish-"))
        # mkdtemp makes the folder private (0700); serving replicas may run as another user.
        tmp.chmod(0o755)
        try:
            files: dict[str, str] = {}
            for src in sorted(staging.rglob("*")):
                if src.is_file() and src.name != MANIFEST_FILE:
                    rel = src.relative_to(staging).as_posix()
                    dst = tmp / rel
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)
                    files[rel] = sha256_file(dst)
            # Version numbers are taken under a lock so two publishers never collide.
            with _NameLock(folder):
                version = max(self.versions(name), default=0) + 1
                final = manifest.model_copy(update={"version": version, "files": files})
                (tmp / MANIFEST_FILE).write_text(final.model_dump_json(indent=2))
                self._verify_folder(tmp, final)
                os.replace(tmp, folder / str(version))
                _fsync_dir(folder)
            return final
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def set_active(self, name: str, version: int, *, reason: str = "activate") -> Manifest:
        """Point ``name`` at ``version`` after verifying it; the old pointer stays on failure.

        Each activation is appended to ``<name>/history.jsonl`` (``reason`` "rollback"
        marks a step back), which is what ``rollback_target`` reads.
        """
        manifest = self.verify(name, version)
        folder = self.root / check_name(name)
        with _NameLock(folder):
            _write_atomic(folder / ACTIVE_FILE, f"{int(version)}\n")
            entry = {"version": int(version), "at": utc_now(), "reason": reason}
            with (folder / HISTORY_FILE).open("a") as fh:
                fh.write(json.dumps(entry) + "\n")
        return manifest

    def history(self, name: str) -> list[dict[str, Any]]:
        """Every activation of ``name``, oldest first (unreadable lines are skipped)."""
        path = self.root / check_name(name) / HISTORY_FILE
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            return []
        entries: list[dict[str, Any]] = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn last line after a crash
            if isinstance(entry, dict) and isinstance(entry.get("version"), int):
                entries.append(entry)
        return entries

    def rollback_target(self, name: str) -> int | None:
        """The version that was active before the current one, or None.

        The history is replayed as a stack: an activation pushes its version, a rollback
        pops one, so rolling back twice steps back twice rather than toggling.
        """
        stack: list[int] = []
        for entry in self.history(name):
            if entry.get("reason") == "rollback":
                if stack:
                    stack.pop()
            elif not stack or stack[-1] != entry["version"]:
                stack.append(entry["version"])
        active = self.active_version(name)
        if active is not None and (not stack or stack[-1] != active):
            stack.append(active)  # activated before history was kept, or by hand
        return stack[-2] if len(stack) >= 2 else None

    def cleanup_partial(self) -> list[Path]:
        """Remove folders left by interrupted publishes (a crash between copy and rename)."""
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        for tmp in self.root.glob("*/.publish-*"):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
        return removed

    def _verify_folder(self, folder: Path, manifest: Manifest) -> None:
        for rel, expected in manifest.files.items():
            if sha256_file(folder / rel) != expected:
                raise CorruptModel(f"{manifest.name}: {rel} changed while publishing")
        json.loads((folder / MANIFEST_FILE).read_text())


class _NameLock:
    """An advisory lock on a model's folder, held while a version number is chosen."""

    def __init__(self, folder: Path) -> None:
        self._path = folder / ".lock"
        self._fd = -1

    def __enter__(self) -> None:
        import fcntl

        self._fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        import fcntl

        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)

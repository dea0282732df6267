"""What only the local store does: crash leftovers, compaction, the IVF index, threads."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from app.knowledge.local import LocalVectorStore
from app.knowledge.matrix import MatrixIndex
from app.knowledge.segments import write_atomic
from app.knowledge.vectors import ChunkVector, DocumentChunks

DIM = 16


def random_unit(rng: np.random.Generator, n: int) -> npt.NDArray[np.float32]:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    unit: npt.NDArray[np.float32] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return unit


def doc(doc_id: str, vectors: np.ndarray) -> DocumentChunks:
    return DocumentChunks(
        doc_id, [ChunkVector(f"{doc_id}#{i}", f"{doc_id} {i}", v) for i, v in enumerate(vectors)]
    )


def test_files_left_by_a_crash_before_commit_are_removed_on_open(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    store = LocalVectorStore(tmp_path)
    store.create_collection("c", "m", "1", DIM)
    store.upsert("c", [doc("a", random_unit(rng, 3))])
    query = random_unit(rng, 1)[0]
    before = store.search("c", query, 5)
    committed = {p.name for p in (tmp_path / "c").iterdir()}
    store.close()
    # What a crash between the segment's rename and the SQLite commit leaves behind, and a
    # crash in the middle of writing a segment:
    write_atomic(tmp_path / "c" / "seg-orphan.npy", random_unit(rng, 4))
    (tmp_path / "c" / "seg-partial.npy.tmp").write_bytes(b"\x93NUMPY")
    again = LocalVectorStore(tmp_path)
    assert {p.name for p in (tmp_path / "c").iterdir()} == committed
    assert again.search("c", query, 5) == before
    assert again.count("c") == 3
    again.close()


def test_replaces_compact_the_segments_without_losing_anything(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    store = LocalVectorStore(tmp_path)
    store.create_collection("c", "m", "1", DIM)
    store.upsert("c", [doc(f"keep{i}", random_unit(rng, 2)) for i in range(50)])
    for _ in range(30):  # 30 writes of 100 chunks that each replace the last
        store.upsert("c", [doc("churn", random_unit(rng, 100))])
    files = list((tmp_path / "c").iterdir())
    assert len(files) < 30  # dead vectors were compacted away, not kept forever
    query = random_unit(rng, 1)[0]
    expected = store.search("c", query, 20)
    assert store.count("c") == 200
    store.close()
    again = LocalVectorStore(tmp_path)
    assert again.search("c", query, 20) == expected
    again.close()


def test_ivf_index_takes_over_beyond_the_threshold_and_stays_accurate() -> None:
    rng = np.random.default_rng(2)
    centres = random_unit(rng, 40)
    data = centres[rng.integers(0, 40, 4000)] + 0.3 * random_unit(rng, 4000)
    data = (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)
    exact = MatrixIndex(DIM)
    ann = MatrixIndex(DIM, ann_min_rows=3000, nprobe=8)
    for index in (exact, ann):
        index.add(np.arange(2000, dtype=np.int64), data[:2000])
    assert not ann.uses_ann
    for index in (exact, ann):
        index.add(np.arange(2000, 4000, dtype=np.int64), data[2000:])
        index.remove(np.arange(0, 4000, 7, dtype=np.int64))  # deletes reach the IVF lists
    assert ann.uses_ann and not exact.uses_ann
    queries = random_unit(rng, 50)
    recall = []
    for q in queries:
        want = set(exact.search(q, 10)[0].tolist())
        got = ann.search(q, 10)[0].tolist()
        assert not {i for i in got if i % 7 == 0}  # no deleted row comes back
        recall.append(len(want & set(got)) / 10)
    assert np.mean(recall) >= 0.9
    ann.remove(np.arange(4000, dtype=np.int64))
    assert not ann.uses_ann and len(ann) == 0


def test_concurrent_writers_and_readers(tmp_path: Path) -> None:
    store = LocalVectorStore(tmp_path)
    store.create_collection("c", "m", "1", DIM)
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        rng = np.random.default_rng(worker)
        try:
            for i in range(20):
                store.upsert("c", [doc(f"w{worker}-{i % 5}", random_unit(rng, 3))])
                store.search("c", random_unit(rng, 1)[0], 5)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count("c") == 4 * 5 * 3
    store.close()


def test_bad_collection_names_are_refused(tmp_path: Path) -> None:
    store = LocalVectorStore(tmp_path)
    for name in ("../x", "", "a/b", ".hidden"):
        with pytest.raises(Exception, match="invalid collection name"):
            store.create_collection(name, "m", "1", DIM)
    store.close()

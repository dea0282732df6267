"""An in-memory vector index: exact inner product over a dense float32 matrix, and an IVF
index (faiss ``IndexIVFFlat``) once the matrix is large enough that exact search is slow.

Not thread-safe by itself: ``LocalVectorStore`` serialises every call under its lock.

Why IVF and not HNSW: measured on this project's 2-core machine, building a faiss HNSW graph
took 59 s for 20k x 384 vectors (usearch: 85 s), about 5 minutes for 100k, and HNSW graphs
cannot drop a vector (faiss) or only mark it (usearch). An inverted-file index trains its
centroids in seconds, removes ids in place, and scores the lists it probes exactly, so a
document replaced or deleted never needs a rebuild. See docs/knowledge-bases.md for recall.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from app.knowledge.vectors import Vector

log = logging.getLogger(__name__)

Ids = npt.NDArray[np.int64]


def top_k_exact(matrix: Vector, query: Vector, k: int) -> tuple[npt.NDArray[np.intp], Vector]:
    """Positions and scores of the ``k`` rows of highest inner product, best first; ties go
    to the lower position so results are deterministic."""
    scores = matrix @ query
    k = min(k, scores.shape[0])
    if k == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.float32)
    if k < scores.shape[0]:
        candidates = np.argpartition(-scores, k - 1)[:k]
    else:
        candidates = np.arange(scores.shape[0])
    order = np.lexsort((candidates, -scores[candidates]))
    best = candidates[order]
    return best, scores[best]


class IvfIndex:
    """faiss ``IndexIVFFlat`` over inner product, keyed by row id.

    ``nlist`` = 2·√n centroids trained on a sample of 40 vectors per centroid; ``nprobe``
    lists are scanned per query (recall against exact search: docs/knowledge-bases.md).
    Retrained when the rows grow to four times what the centroids were trained on, as the
    lists then grow uneven.
    """

    def __init__(self, matrix: Vector, ids: Ids, nprobe: int, seed: int = 0) -> None:
        import faiss  # a default dependency, imported here so exact search never loads it

        n, dimension = matrix.shape
        # faiss wants at least 39 training vectors per centroid.
        self.nlist = max(1, min(int(2 * math.sqrt(n)), n // 40))
        quantizer = faiss.IndexFlatIP(dimension)
        self.index: Any = faiss.IndexIVFFlat(
            quantizer, dimension, self.nlist, faiss.METRIC_INNER_PRODUCT
        )
        rng = np.random.default_rng(seed)
        sample = matrix[np.sort(rng.choice(n, size=min(n, 40 * self.nlist), replace=False))]
        self.index.train(np.ascontiguousarray(sample))
        self.index.add_with_ids(np.ascontiguousarray(matrix), ids)
        self.index.nprobe = min(nprobe, self.nlist)
        self.trained_rows = n
        # The quantizer must outlive the IVF index that points at it.
        self._quantizer = quantizer

    def add(self, vectors: Vector, ids: Ids) -> None:
        self.index.add_with_ids(np.ascontiguousarray(vectors), ids)

    def remove(self, ids: Ids) -> None:
        self.index.remove_ids(ids)

    def search(self, query: Vector, k: int) -> tuple[Ids, Vector]:
        scores, ids = self.index.search(query.reshape(1, -1), k)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)


class MatrixIndex:
    """Row-id keyed vectors in a dense matrix that grows by doubling; a removed row is
    replaced by the last one, so the matrix never holds holes and search reads only live rows.
    """

    def __init__(self, dimension: int, ann_min_rows: int = 0, nprobe: int = 32) -> None:
        self.dimension = dimension
        self.ann_min_rows = ann_min_rows  # 0: never build the approximate index
        self.nprobe = nprobe
        self._matrix: Vector = np.zeros((0, dimension), dtype=np.float32)
        self._ids: Ids = np.zeros(0, dtype=np.int64)
        self._size = 0
        self._position: dict[int, int] = {}
        self._ann: IvfIndex | None = None

    def __len__(self) -> int:
        return self._size

    @property
    def uses_ann(self) -> bool:
        return self._ann is not None

    @property
    def matrix(self) -> Vector:
        return self._matrix[: self._size]

    @property
    def ids(self) -> Ids:
        return self._ids[: self._size]

    def add(self, ids: Ids, vectors: Vector) -> None:
        if not len(ids):
            return
        needed = self._size + len(ids)
        if needed > self._matrix.shape[0]:
            capacity = max(needed, 2 * self._matrix.shape[0], 1024)
            grown = np.zeros((capacity, self.dimension), dtype=np.float32)
            grown[: self._size] = self.matrix
            grown_ids = np.zeros(capacity, dtype=np.int64)
            grown_ids[: self._size] = self.ids
            self._matrix, self._ids = grown, grown_ids
        self._matrix[self._size : needed] = vectors
        self._ids[self._size : needed] = ids
        for offset, row_id in enumerate(ids.tolist()):
            self._position[row_id] = self._size + offset
        self._size = needed
        if self._ann is not None:
            if self._size > 4 * self._ann.trained_rows:
                self._ann = None  # retrained below on the whole matrix
            else:
                self._ann.add(vectors, ids)
        self._maybe_build_ann()

    def remove(self, ids: Ids) -> None:
        for row_id in ids.tolist():
            position = self._position.pop(row_id, None)
            if position is None:
                continue
            last = self._size - 1
            if position != last:
                moved = int(self._ids[last])
                self._matrix[position] = self._matrix[last]
                self._ids[position] = moved
                self._position[moved] = position
            self._size = last
        if self._ann is not None and len(ids):
            if self._size < self.ann_min_rows // 2:
                self._ann = None  # small again: exact search is fast and exact
            else:
                self._ann.remove(ids)

    def search(
        self, query: Vector, k: int, allowed: npt.NDArray[np.bool_] | None = None
    ) -> tuple[Ids, Vector]:
        """Row ids and scores of the best ``k`` rows; ``allowed`` (per position) restricts the
        search to matching rows, which is always exact: a filter is usually selective."""
        if allowed is not None:
            positions = np.flatnonzero(allowed)
            best, scores = top_k_exact(self.matrix[positions], query, k)
            return self.ids[positions[best]], scores
        if self._ann is not None:
            return self._ann.search(query, k)
        best, scores = top_k_exact(self.matrix, query, k)
        return self.ids[best], scores

    def _maybe_build_ann(self) -> None:
        if self._ann is None and self.ann_min_rows and self._size >= self.ann_min_rows:
            log.info("building an IVF index over %d vectors", self._size)
            self._ann = IvfIndex(self.matrix, self.ids.copy(), self.nprobe)

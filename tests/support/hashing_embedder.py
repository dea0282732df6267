"""A real, deterministic embedder for knowledge-base tests: hashed bag of words.

Each lower-cased word (and each pair of neighbouring words) adds 1 to one of ``dimension``
buckets picked by a stable hash; the vector is L2-normalised, so inner products are cosine
similarities and texts sharing words score higher. No model file, same output everywhere.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

_WORD = re.compile(r"\w+")
_STOP = frozenset(
    "a an and are as at be by do for from how i in is it my of on or the to what".split()
)


class HashingEmbedder:
    """Implements ``app.knowledge.ingest.Embedder``; ``calls`` counts texts embedded."""

    def __init__(self, name: str = "embedding", version: str = "1", dimension: int = 256) -> None:
        self.name = name
        self.version = version
        self.dimension = dimension
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            words = [w for w in _WORD.findall(text.lower()) if w not in _STOP]
            for feature in words + [f"{a} {b}" for a, b in itertools.pairwise(words)]:
                digest = hashlib.blake2b(f"{self.version}:{feature}".encode(), digest_size=8)
                out[row, int.from_bytes(digest.digest(), "little") % self.dimension] += 1.0
            norm = float(np.linalg.norm(out[row]))
            out[row] = out[row] / norm if norm else out[row]
        return out

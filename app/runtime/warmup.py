"""Which batch shapes an engine runs at warm-up, so that real traffic meets no first-time shape.

ORT (and, on a GPU, the CUDA kernels and the memory arena) pays on the first run of a new
shape: buffers planned and allocated, kernels picked. Two short texts used to be the whole
warm-up, so the first full batch of long texts paid that cost under real load. The shapes
here span the batcher's limits: one short row (a lone request), a full batch of short rows,
the longest rows at the largest batch the token budget allows, one longest row, and points
between; ``count`` of them, largest-coverage first, bounds the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.runtime.batch_jobs import BatchLimits

# The width of a "short" text in tokens: typical of a chat message or a review title.
SHORT_TOKENS = 16


@dataclass(frozen=True)
class Shape:
    rows: int
    tokens: int  # per row, padded

    @property
    def padded_tokens(self) -> int:
        return self.rows * self.tokens


def warmup_shapes(limits: BatchLimits, max_length: int, count: int) -> list[Shape]:
    """Up to ``count`` distinct shapes within ``limits`` and the model's ``max_length``."""
    longest = max(1, max_length)
    short = min(SHORT_TOKENS, longest)
    middle = max(short, (short + longest) // 2)
    full = limits.max_batch_size
    half = max(1, full // 2)
    wanted = [
        (1, short),
        (full, short),
        (full, longest),
        (1, longest),
        (half, middle),
        (full, middle),
        (half, short),
        (half, longest),
    ]
    shapes: list[Shape] = []
    for rows, tokens in wanted:
        # The batcher never builds a run over the token budget: neither does warm-up.
        rows = max(1, min(rows, limits.max_batch_tokens // tokens))
        shape = Shape(rows, tokens)
        if shape not in shapes:
            shapes.append(shape)
    return shapes[: max(0, count)]


__all__ = ["SHORT_TOKENS", "Shape", "warmup_shapes"]

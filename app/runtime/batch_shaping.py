"""Which queued rows run together: anchored on the oldest, a window of similar lengths."""

from __future__ import annotations

from app.runtime.batch_jobs import BatchLimits, Row


def take_batch(pool: list[Row], limits: BatchLimits) -> list[Row]:
    """Remove and return the next run's rows: the oldest row and those nearest it in length."""
    anchor_job = pool[0].job
    own = [i for i, r in enumerate(pool) if r.job is anchor_job]
    if len(own) >= limits.max_batch_size:
        # A request that fills a batch by itself runs alone: mixing it with others would
        # spread its rows over more runs and multiply its latency. Its own rows are still
        # shaped by length: successive passes take windows from its shortest row upwards.
        own.sort(key=lambda i: pool[i].length)
        lo, hi = best_window([pool[i].length for i in own], 0, limits)
        taken = set(own[lo : hi + 1])
        batch = [pool[i] for i in sorted(taken)]
        pool[:] = [r for i, r in enumerate(pool) if i not in taken]
        return batch
    order = sorted(range(len(pool)), key=lambda i: pool[i].length)
    lengths = [pool[i].length for i in order]
    lo, hi = best_window(lengths, order.index(0), limits)
    picked = set(order[lo : hi + 1])
    # The anchor first, then the rest in queue order: the batch's row order is irrelevant
    # to the model, but keeping it stable makes runs reproducible.
    batch = [pool[i] for i in sorted(picked)]
    pool[:] = [r for i, r in enumerate(pool) if i not in picked]
    return batch


def best_window(lengths: list[int], anchor: int, limits: BatchLimits) -> tuple[int, int]:
    """The run to make next: a window ``[lo, hi]`` of the length-sorted rows holding ``anchor``.

    Chosen to maximise useful tokens per unit of cost, where a run of ``n`` rows padded to
    width ``w`` costs ``overhead_tokens + n * w``. Taking every queued row (what arrival-order
    batchers do) pads short texts to the longest one; taking one row at a time pays the fixed
    per-run cost each time. Between the two, the best window depends on the spread of lengths
    queued and on how large the fixed cost is on this hardware (``overhead_tokens``, measured
    at warm-up: small on a CPU, large on a GPU, where it pushes towards full batches).
    """
    prefix = [0]
    for n in lengths:
        prefix.append(prefix[-1] + n)
    size, budget = limits.max_batch_size, limits.max_batch_tokens
    best, best_lo, best_hi = -1.0, anchor, anchor
    for hi in range(anchor, min(len(lengths), anchor + size)):
        width = lengths[hi]
        most = min(size, max(1, budget // max(width, 1)))
        if hi - anchor + 1 > most:
            break  # wider windows only get longer from here
        for lo in range(anchor, max(-1, hi - most), -1):
            rows = hi - lo + 1
            gain = (prefix[hi + 1] - prefix[lo]) / (limits.overhead_tokens + rows * width)
            # Ties go to the larger batch: same efficiency, fewer runs.
            if gain > best or (gain == best and rows > best_hi - best_lo + 1):
                best, best_lo, best_hi = gain, lo, hi
    return best_lo, best_hi

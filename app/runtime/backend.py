"""The one ONNX Runtime backend: every session is built here, and every batch scored here.

Serving (``InferenceEngine``), export parity, evaluation and the comparison of a candidate with
the active version all open their ONNX files with ``create_session`` and run them through
``score_batch``: the same provider options, threads, padding and output handling, so what a
version scores offline is what it scores when served.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from app.runtime.threadname import children_named
from app.runtime.tokenizer import IntArray, TextTokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionOptions:
    """What the runtime needs from the settings to build a session."""

    providers: tuple[str, ...]
    intra_op_threads: int = 0
    inter_op_threads: int = 1
    allow_spinning: bool = False
    cuda_device_id: int = 0
    cuda_mem_limit_bytes: int = 0  # 0: no limit beyond the device's memory
    # One arena for every CUDA session of the process (see ``shared_cuda_arena``), so that the
    # memory limit is a budget for all models and versions together, hot swaps included.
    cuda_shared_arena: bool = True
    # Log ORT's errors only: offline scoring has no use for the graph optimizer's notes.
    quiet: bool = False


CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# Rows per run when scoring a data set offline (``score_texts``).
OFFLINE_BATCH = 64


def cuda_options(options: SessionOptions) -> dict[str, str]:
    """CUDA provider options, each chosen for a server whose batch shapes change every run."""
    chosen = {
        "device_id": str(options.cuda_device_id),
        # Grow the memory arena by what a run asks for, not by powers of two: a rare long batch
        # would otherwise reserve twice its size for the rest of the process's life.
        "arena_extend_strategy": "kSameAsRequested",
        # Copies on the compute stream: a run never reads a batch still being copied in.
        "do_copy_in_default_stream": "1",
        # Transformers have no convolutions: skip cuDNN's exhaustive search on first runs.
        "cudnn_conv_algo_search": "DEFAULT",
    }
    if options.cuda_mem_limit_bytes:
        chosen["gpu_mem_limit"] = str(options.cuda_mem_limit_bytes)
    return chosen


def _with_options(provider: str, options: SessionOptions) -> str | tuple[str, dict[str, str]]:
    return (provider, cuda_options(options)) if provider == CUDA else provider


# kSameAsRequested in OrtArenaCfg's numbering (0 is kNextPowerOfTwo), as in ``cuda_options``.
_SAME_AS_REQUESTED = 1
# Devices whose shared arena is registered in this process's ORT environment, or failed to be.
_shared_arenas: dict[int, bool] = {}
_shared_lock = threading.Lock()


def shared_arena_config(options: SessionOptions) -> dict[str, int]:
    """The ``OrtArenaCfg`` of the process-wide CUDA arena: ``cuda_mem_limit_bytes`` as its
    ceiling (0: ORT's default, the device), grown by what a run asks for."""
    config = {"arena_extend_strategy": _SAME_AS_REQUESTED}
    if options.cuda_mem_limit_bytes:
        config["max_mem"] = options.cuda_mem_limit_bytes
    return config


def session_config(options: SessionOptions, providers: Sequence[str]) -> dict[str, str]:
    """Session config entries for a session on ``providers`` (in order of preference)."""
    entries: dict[str, str] = {}
    if not options.allow_spinning:
        # Idle ORT threads busy-wait by default; on a small machine they steal the cores the
        # event loop and tokenizer need (measured: ~2x CPU per text with spinning on).
        entries["session.intra_op.allow_spinning"] = "0"
        entries["session.inter_op.allow_spinning"] = "0"
    if CUDA in providers and options.cuda_shared_arena:
        # Take device memory from the allocator registered in ORT's environment (one per
        # process, ``register_shared_cuda_arena``) instead of a new arena per session.
        entries["session.use_env_allocators"] = "1"
    return entries


def register_shared_cuda_arena(options: SessionOptions) -> bool:
    """Register the process's one CUDA arena for ``options.cuda_device_id``, once.

    Every session made with ``session.use_env_allocators`` then shares it: three models, a
    second session per model and the outgoing version of a hot swap all draw on one budget
    of ``cuda_mem_limit_bytes``, where ``gpu_mem_limit`` alone caps each session's own arena.
    False where ORT cannot (a build without CUDA): sessions keep their own arenas.
    """
    device = options.cuda_device_id
    with _shared_lock:
        if device not in _shared_arenas:
            info = ort.OrtMemoryInfo(
                "Cuda", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, device, ort.OrtMemType.DEFAULT
            )
            try:
                ort.create_and_register_allocator_v2(
                    CUDA, info, cuda_options(options), ort.OrtArenaCfg(shared_arena_config(options))
                )
            except (RuntimeError, ValueError) as exc:
                log.warning("no shared CUDA arena (%s); each session gets its own", exc)
                _shared_arenas[device] = False
            else:
                log.info("shared CUDA arena on device %d: %s", device, shared_arena_config(options))
                _shared_arenas[device] = True
        return _shared_arenas[device]


def run_bound(
    session: ort.InferenceSession,
    feeds: dict[str, np.ndarray],
    output_names: list[str],
    device: str,
    device_id: int = 0,
) -> list[np.ndarray]:
    """One run through IO binding: outputs stay in ``device`` memory ORT allocates once per
    shape, and come back in one copy, instead of ``run()`` allocating and synchronising per
    output. On a GPU this is where a small model's time goes; on the CPU it changes nothing
    but is the same code path, so the tests exercise it.
    """
    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, value)
    for name in output_names:
        binding.bind_output(name, device, device_id)
    session.run_with_iobinding(binding)
    outputs: list[np.ndarray] = binding.copy_outputs_to_cpu()
    return outputs


@dataclass
class LoadedSession:
    """An open model file: its session, the provider it really runs on and its IO names."""

    session: ort.InferenceSession
    provider: str
    unavailable: list[str]
    input_names: list[str]
    output_names: list[str]


def create_session(model_path: Path, options: SessionOptions) -> LoadedSession:
    """Open ``model_path`` on the first available provider of ``options.providers``.

    Providers that this build of ONNX Runtime cannot offer are returned in ``unavailable`` so
    the caller can log and count them once, instead of silently running elsewhere.
    """
    available = set(ort.get_available_providers())
    wanted = [p for p in options.providers if p in available]
    unavailable = [p for p in options.providers if p not in available]
    if not wanted:
        wanted = [CPU]
    so = ort.SessionOptions()
    if options.quiet:
        so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = options.intra_op_threads
    so.inter_op_num_threads = options.inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Batches vary in shape every run; the memory-pattern planner only helps fixed shapes.
    so.enable_mem_pattern = False
    shared = CUDA in wanted and options.cuda_shared_arena
    if shared and not register_shared_cuda_arena(options):
        options = replace(options, cuda_shared_arena=False)
    for key, value in session_config(options, wanted).items():
        so.add_session_config_entry(key, value)
    with children_named("ts-ort"):  # its thread pools, as top -H shows them
        session = ort.InferenceSession(
            str(model_path), sess_options=so, providers=[_with_options(p, options) for p in wanted]
        )
    in_use = session.get_providers()
    # A CUDA provider that failed to initialise (no driver, no device) is dropped by ORT:
    # report what the session really uses.
    for p in wanted:
        if p not in in_use and p not in unavailable:
            unavailable.append(p)
    return LoadedSession(
        session=session,
        provider=in_use[0],
        unavailable=unavailable,
        input_names=[i.name for i in session.get_inputs()],
        output_names=[o.name for o in session.get_outputs()],
    )


def cpu_session(model_path: Path) -> LoadedSession:
    """A CPU session for offline scoring (export parity, evaluation, version comparison)."""
    return create_session(model_path, SessionOptions((CPU,), quiet=True))


def pad_batch(
    rows: list[IntArray], pad_token_id: int, input_names: list[str]
) -> dict[str, IntArray]:
    """Stack ``rows`` into right-padded arrays for the model's inputs.

    ``input_ids`` padded with ``pad_token_id``, ``attention_mask`` 1 on real tokens, and
    ``token_type_ids`` all 0 when the model takes them; inputs it does not name are left out.
    """
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_token_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    feeds = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in input_names:
        feeds["token_type_ids"] = np.zeros_like(ids)
    return {k: v for k, v in feeds.items() if k in input_names}


def score_batch(
    loaded: LoadedSession,
    rows: list[IntArray],
    pad_token_id: int,
    output_names: list[str] | None = None,
    *,
    bound_device: str | None = None,
    device_id: int = 0,
) -> list[np.ndarray]:
    """Run one batch of token id rows: each of ``output_names`` (default: all), row for row.

    ``bound_device`` (``"cuda"``): run through IO binding on that device (see ``run_bound``).
    No lock: ORT sessions take concurrent runs, which serving's ``streams > 1`` relies on.
    """
    feeds = pad_batch(rows, pad_token_id, loaded.input_names)
    names = output_names if output_names is not None else loaded.output_names
    if bound_device is not None:
        return run_bound(loaded.session, feeds, names, bound_device, device_id)
    return [np.asarray(o) for o in loaded.session.run(names, feeds)]


def score_texts(
    loaded: LoadedSession,
    tokenizer: TextTokenizer,
    texts: Sequence[str],
    output_names: list[str] | None = None,
    batch_size: int = OFFLINE_BATCH,
) -> list[np.ndarray]:
    """Every output of ``texts`` scored in batches, rows in the order of ``texts``.

    Tokenized, truncated and padded as serving does it; texts of similar length share a
    batch, so that little of the work goes on padding.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if not texts:
        raise ValueError("no texts to score")
    rows = [e.ids for e in tokenizer.encode(list(texts))]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    out: list[np.ndarray] = []
    for first in range(0, len(order), batch_size):
        picked = order[first : first + batch_size]
        got = score_batch(loaded, [rows[i] for i in picked], tokenizer.pad_token_id, output_names)
        if not out:
            out = [np.empty((len(rows), *g.shape[1:]), dtype=g.dtype) for g in got]
        for whole, part in zip(out, got, strict=True):
            whole[picked] = part
    return out

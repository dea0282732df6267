"""ONNX Runtime session creation with execution providers chosen from settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from app.runtime.threadname import children_named

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


CUDA = "CUDAExecutionProvider"


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
        wanted = ["CPUExecutionProvider"]
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = options.intra_op_threads
    so.inter_op_num_threads = options.inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Batches vary in shape every run; the memory-pattern planner only helps fixed shapes.
    so.enable_mem_pattern = False
    if not options.allow_spinning:
        # Idle ORT threads busy-wait by default; on a small machine they steal the cores the
        # event loop and tokenizer need (measured: ~2x CPU per text with spinning on).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
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

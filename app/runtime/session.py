"""ONNX Runtime session creation with execution providers chosen from settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionOptions:
    """What the runtime needs from the settings to build a session."""

    providers: tuple[str, ...]
    intra_op_threads: int = 0
    inter_op_threads: int = 1
    allow_spinning: bool = False


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
    session = ort.InferenceSession(str(model_path), sess_options=so, providers=wanted)
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

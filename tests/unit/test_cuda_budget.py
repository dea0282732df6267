"""One CUDA memory budget per process: the plan is built and checked here, on the CPU."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from app.config import Settings
from app.runtime.backend import (
    CPU,
    CUDA,
    SessionOptions,
    register_shared_cuda_arena,
    session_config,
    shared_arena_config,
)
from app.service import engine_config

GIB = 1024**3


def test_cuda_sessions_draw_on_the_shared_arena() -> None:
    options = SessionOptions((CUDA, CPU), cuda_mem_limit_bytes=6 * GIB)
    assert session_config(options, [CUDA, CPU])["session.use_env_allocators"] == "1"
    # The budget is the arena's ceiling, grown by what a run asks for (kSameAsRequested).
    assert shared_arena_config(options) == {"arena_extend_strategy": 1, "max_mem": 6 * GIB}
    # ORT takes the plan as it is.
    ort.OrtArenaCfg(shared_arena_config(options))


def test_no_limit_leaves_the_ceiling_to_ort() -> None:
    assert shared_arena_config(SessionOptions((CUDA,))) == {"arena_extend_strategy": 1}


@pytest.mark.parametrize(
    ("providers", "shared"),
    [([CPU], True), ([CUDA, CPU], False)],
)
def test_cpu_sessions_and_opted_out_ones_keep_their_own_arena(
    providers: list[str], shared: bool
) -> None:
    options = SessionOptions(tuple(providers), cuda_shared_arena=shared)
    entries = session_config(options, providers)
    assert "session.use_env_allocators" not in entries
    assert entries["session.intra_op.allow_spinning"] == "0"


def test_the_settings_reach_the_session_options() -> None:
    settings = Settings(cuda_mem_limit_mb=2048, cuda_shared_arena=False)
    session = engine_config(settings).session
    assert session.cuda_mem_limit_bytes == 2 * GIB
    assert session.cuda_shared_arena is False
    assert engine_config(Settings()).session.cuda_shared_arena is True


@pytest.mark.skipif(CUDA in ort.get_available_providers(), reason="this build has CUDA")
def test_a_build_without_cuda_declines_the_shared_arena_once() -> None:
    """The real ORT call, on a CPU build: refused cleanly, sessions keep their own arenas."""
    options = SessionOptions((CUDA,), cuda_device_id=7)
    assert register_shared_cuda_arena(options) is False
    assert register_shared_cuda_arena(options) is False  # remembered, not retried

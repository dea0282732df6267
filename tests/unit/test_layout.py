"""Processes x runs in flight x ORT threads from the settings: nothing oversubscribes."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.runtime.layout import (
    AUTO_THREADS_PER_STREAM,
    Layout,
    cgroup_cpu_limit,
    plan,
    usable_cores,
)


@pytest.mark.parametrize("cores", [1, 2, 3, 4, 8, 16, 64])
@pytest.mark.parametrize("workers", [1, 2])
def test_auto_fills_the_cores_without_oversubscribing(cores: int, workers: int) -> None:
    layout = plan(workers, 0, 0, cores=cores)
    assert layout.workers == workers
    assert layout.streams >= 1 and layout.threads >= 1
    # Each process gets its share of the cores, all of it, and never more.
    assert layout.streams * layout.threads == max(1, cores // workers)


def test_two_cores_measured_best_is_two_single_thread_runs() -> None:
    assert plan(1, 0, 0, cores=2) == Layout(1, 2, AUTO_THREADS_PER_STREAM)


def test_given_streams_split_the_cores_between_them() -> None:
    assert plan(1, 1, 0, cores=2) == Layout(1, 1, 2)
    assert plan(1, 4, 0, cores=16) == Layout(1, 4, 4)
    assert plan(2, 1, 0, cores=8) == Layout(2, 1, 4)


def test_given_threads_set_how_many_streams_fit() -> None:
    assert plan(1, 0, 2, cores=8) == Layout(1, 4, 2)


def test_a_gpu_gets_one_stream_per_process() -> None:
    assert plan(1, 0, 0, cores=16, gpu=True).streams == 1


def test_an_explicit_layout_is_kept_even_when_it_oversubscribes() -> None:
    """An operator may know better (hyperthreads, a dedicated box): the settings are obeyed."""
    assert plan(1, 3, 2, cores=2) == Layout(1, 3, 2)


def test_a_container_cpu_quota_caps_the_cores(tmp_path: Path) -> None:
    """A Kubernetes CPU limit is a quota: the pod still sees every core of the node."""
    (tmp_path / "cpu.max").write_text("200000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 2.0
    assert usable_cores(tmp_path) <= 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("150000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(v1) == 1.5
    assert usable_cores(v1) <= 2  # 1.5 CPUs: two threads may share them
    assert cgroup_cpu_limit(tmp_path / "nothing") is None

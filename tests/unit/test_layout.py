"""Processes x threads from one setting: nothing oversubscribes the cores."""

from __future__ import annotations

import pytest

from app.runtime.layout import AUTO_THREADS_PER_WORKER, Layout, plan


@pytest.mark.parametrize("cores", [1, 2, 3, 4, 8, 16, 64])
def test_auto_never_runs_more_threads_than_cores(cores: int) -> None:
    layout = plan(0, 0, cores=cores)
    assert layout.workers >= 1 and layout.threads >= 1
    assert layout.workers * layout.threads <= max(cores, 1)
    assert layout.threads <= max(AUTO_THREADS_PER_WORKER, cores // layout.workers)


def test_workers_given_split_the_cores_between_them() -> None:
    assert plan(1, 0, cores=2) == Layout(1, 2)
    assert plan(2, 0, cores=2) == Layout(2, 1)
    assert plan(4, 0, cores=16) == Layout(4, 4)


def test_threads_given_set_how_many_workers_fit() -> None:
    assert plan(0, 1, cores=2) == Layout(2, 1)
    assert plan(0, 4, cores=16) == Layout(4, 4)


def test_explicit_layout_is_kept_even_when_it_oversubscribes() -> None:
    """An operator may know better (hyperthreads, a dedicated box); the setting is obeyed."""
    assert plan(3, 2, cores=2) == Layout(3, 2)

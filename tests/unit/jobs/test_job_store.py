"""The job store on a real SQLite file: atomic transitions, pagination, events, counts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.errors import JobNotFound
from app.jobs.records import JobRecord
from app.jobs.store import JobStore, default_url, new_id


def job(**overrides: object) -> JobRecord:
    base: dict[str, object] = {
        "id": new_id("ftjob"),
        "model": "m",
        "task": "classification",
        "training_file": "file-1",
        "validation_file": None,
        "base_model": "packaged",
        "hyperparameters": {},
        "promote": "if_better",
        "state": "queued",
        "created_at": time.time(),
    }
    base.update(overrides)
    return JobRecord.model_validate(base)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[JobStore]:
    store = JobStore(default_url(tmp_path / "var"))
    yield store
    store.close()


def test_sqlite_runs_in_wal_mode(db: JobStore) -> None:
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_only_one_of_many_claimers_wins_a_queued_job(db: JobStore) -> None:
    record = db.add_job(job())
    wins: list[bool] = []

    def claim() -> None:
        wins.append(db.transition(record.id, ("queued",), "running", owner="x"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1
    assert db.get_job(record.id).state == "running"
    # A finished job is never moved back by a late transition.
    assert db.transition(record.id, ("running",), "succeeded")
    assert not db.transition(record.id, ("queued", "running"), "cancelled")
    assert db.get_job(record.id).state == "succeeded"


def test_jobs_list_newest_first_with_a_cursor(db: JobStore) -> None:
    ids = [db.add_job(job()).id for _ in range(5)]
    page, more = db.list_jobs(2)
    assert [j.id for j in page] == ids[::-1][:2]
    assert more
    page, more = db.list_jobs(2, after=page[-1].id)
    assert [j.id for j in page] == ids[::-1][2:4]
    assert more
    page, more = db.list_jobs(2, after=page[-1].id)
    assert [j.id for j in page] == ids[:1]
    assert not more
    with pytest.raises(JobNotFound):
        db.list_jobs(2, after="ftjob-missing")


def test_events_are_read_after_a_cursor_and_counts_cover_every_state(db: JobStore) -> None:
    record = db.add_job(job())
    first = db.add_event(record.id, "state", "created", data={"state": "queued"})
    second = db.add_event(record.id, "progress", "step 1", data={"loss": float("nan")})
    assert [e.id for e in db.events(record.id)] == [first.id, second.id]
    assert [e.message for e in db.events(record.id, after=first.id)] == ["step 1"]
    counts = db.count_by_state()
    assert counts["queued"] == 1
    assert counts["running"] == 0
    assert len(counts) == 6


def test_a_second_store_on_the_same_file_sees_everything(tmp_path: Path) -> None:
    url = default_url(tmp_path / "var")
    one = JobStore(url)
    record = one.add_job(job(error={"code": "x", "message": "y"}))
    one.close()
    two = JobStore(url)
    again = two.get_job(record.id)
    assert again.error is not None
    assert again.error.code == "x"
    assert again == record
    two.close()

"""The job store on a real SQLite file and a real PostgreSQL: atomic transitions and claims,
pagination, events, counts, cancels seen by another store, an unreachable database."""

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


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return default_url(tmp_path / "var")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def db(url: str) -> Iterator[JobStore]:
    store = JobStore(url)
    yield store
    store.close()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    db = JobStore(default_url(tmp_path / "var"))
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    db.close()


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
    [later] = db.events(record.id, after=first.id)
    assert later.message == "step 1"
    assert later.data == {"loss": None}  # a diverged loss is kept, as null
    counts = db.count_by_state()
    assert counts["queued"] == 1
    assert counts["running"] == 0
    assert len(counts) == 6


def test_a_second_store_on_the_same_database_sees_everything(url: str) -> None:
    one = JobStore(url)
    record = one.add_job(job(error={"code": "x", "message": "y"}))
    one.close()
    two = JobStore(url)
    again = two.get_job(record.id)
    assert again.error is not None
    assert again.error.code == "x"
    assert again == record
    two.close()


def test_claims_from_two_stores_take_each_queued_job_once_oldest_first(url: str) -> None:
    one, two = JobStore(url), JobStore(url)
    ids = [one.add_job(job()).id for _ in range(6)]
    claimed: list[str] = []
    lock = threading.Lock()

    def claim(store: JobStore, owner: str) -> None:
        while (record := store.claim_next(owner, "local", time.time())) is not None:
            assert record.state == "running"
            assert record.owner == owner
            with lock:
                claimed.append(record.id)

    threads = [threading.Thread(target=claim, args=(s, f"o{i}")) for i, s in enumerate((one, two))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)
    assert one.count_by_state()["running"] == 6
    assert two.claim_next("o9", "local", time.time()) is None
    one.close()
    two.close()


def test_a_cancel_written_by_one_store_is_read_by_another(url: str) -> None:
    one, two = JobStore(url), JobStore(url)
    running = one.add_job(job())
    other = one.add_job(job())
    assert one.claim_next("a", "local", time.time()) is not None
    two.update_job(running.id, cancel_requested=True)
    assert one.cancel_requested([running.id, other.id]) == {running.id}
    assert one.cancel_requested([]) == set()
    one.close()
    two.close()

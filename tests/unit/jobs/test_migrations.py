"""The job database's Alembic migrations on a real SQLite file and a real PostgreSQL: an empty
database reaches the models' schema, an older schema (what ``create_all`` made before
migrations, never stamped) upgrades with its rows kept, and stores opened at the same moment
on an empty database all come up."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from app.jobs import migrate
from app.jobs.store import JobStore, default_url
from app.jobs.tables import Base


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        (tmp_path / "var").mkdir()
        return default_url(tmp_path / "var")
    return str(request.getfixturevalue("postgres_url"))


def test_an_empty_database_is_migrated_to_the_models_schema(url: str) -> None:
    JobStore(url).close()
    engine = create_engine(url)
    try:
        assert migrate.current(engine) == migrate.head()
        with engine.connect() as conn:
            # Nothing the models declare is missing from, or different in, the migrated schema.
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        engine.dispose()


def test_a_schema_made_by_create_all_before_migrations_upgrades_and_keeps_its_rows(
    url: str,
) -> None:
    engine = create_engine(url)
    # The schema of the last release without migrations: the models less the claim index.
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_jobs_state_seq"))
        conn.execute(
            text(
                "INSERT INTO jobs (id, model, task, training_file, base_model, hyperparameters,"
                " resources, promote, state, created_at, progress, result, cancel_requested)"
                " VALUES ('ftjob-old', 'm', 'classification', 'file-1', 'packaged', '{}', '{}',"
                " 'never', 'queued', :now, '{}', '{}', false)"
            ),
            {"now": time.time()},
        )
    assert migrate.current(engine) is None

    store = JobStore(url)
    assert store.get_job("ftjob-old").state == "queued"
    assert migrate.current(engine) == migrate.head()
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("jobs")}
    assert "ix_jobs_state_seq" in indexes
    claimed = store.claim_next("me", "local", time.time())
    assert claimed is not None
    assert claimed.id == "ftjob-old"
    store.close()
    engine.dispose()


def test_stores_opened_at_the_same_moment_on_an_empty_database_all_come_up(url: str) -> None:
    start = threading.Barrier(4)
    stores: list[JobStore] = []
    failures: list[BaseException] = []

    def open_store() -> None:
        start.wait()
        try:
            stores.append(JobStore(url))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == []
    assert len(stores) == 4
    for store in stores:
        assert store.count_by_state()["queued"] == 0
        store.close()


def test_db_upgrade_command_migrates_and_names_an_unreachable_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from app.cli import cli

    monkeypatch.setenv("TEXTSERVE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("TEXTSERVE_JOBS_DB_URL", raising=False)
    first = CliRunner().invoke(cli, ["db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert f"empty -> {migrate.head()}" in first.output
    again = CliRunner().invoke(cli, ["db", "upgrade"])
    assert f"{migrate.head()} -> {migrate.head()}" in again.output
    # Port 1 on loopback: refused at once.
    monkeypatch.setenv("TEXTSERVE_JOBS_DB_URL", "postgresql+psycopg://x@127.0.0.1:1/x")
    failed = CliRunner().invoke(cli, ["db", "upgrade"])
    assert failed.exit_code == 1
    assert "cannot migrate: TEXTSERVE_JOBS_DB_URL" in failed.output

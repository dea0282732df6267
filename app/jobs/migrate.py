"""Bring the job database's schema to the newest Alembic revision, safely from many replicas.

Every replica migrates at start (and ``textserve db upgrade`` does it by hand). Replicas that
start at once on an empty database must not race: on PostgreSQL the upgrade runs under a
session-level ``pg_advisory_lock``, on SQLite under an exclusive lock on a file beside the
database (SQLite's own write lock does not span the several transactions of a migration). The
loser waits, then finds the schema at head and does nothing.

A database made before migrations existed (by ``create_all``: tables, no ``alembic_version``)
is stamped with the first revision, which is exactly that schema, and upgraded from there.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The revision that equals the schema ``create_all`` made before migrations existed.
BASELINE = "0001"
# Any constant both sides agree on; "txsv" "jobs" in ASCII, so other users of the
# database's advisory locks are unlikely to collide with it.
ADVISORY_LOCK_KEY = 0x7478_7376_6A6F_6273
# Alembic keeps the running migration in module globals (``alembic.context``): two upgrades in
# one process, even of different databases, must not overlap.
_IN_PROCESS = threading.Lock()


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate ``engine``'s database to ``revision`` (default: the newest), under a lock."""
    with _IN_PROCESS, _migration_lock(engine) as conn:
        unstamped = MigrationContext.configure(conn).get_current_revision() is None
        if unstamped and inspect(conn).has_table("jobs"):
            command.stamp(alembic_config(conn), BASELINE)
            conn.commit()
        command.upgrade(alembic_config(conn), revision)
        conn.commit()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            conn.commit()
            try:
                yield conn
            finally:
                conn.rollback()  # a failed migration leaves its transaction aborted
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
                conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        with engine.connect() as conn:  # nobody else can see this database
            yield conn
        return
    with open(f"{database}.migrate-lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

"""Engine, sessions and schema upgrades of the registry database.

SQLite is the embedded default; any SQLAlchemy URL works (PostgreSQL for scale-out).
On SQLite every connection runs in WAL mode with foreign keys enforced and a busy
timeout, and a writing session opens with ``BEGIN IMMEDIATE`` so that two processes
changing state serialise at the start of their transactions instead of failing
half-way with "database is locked" when a reader upgrades to a writer.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, MetaData, create_engine, event, text
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

BUSY_TIMEOUT_SECONDS = 30.0

# Stable constraint names so Alembic migrations can name (and later alter) every constraint.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every registry table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


_engines: dict[str, Engine] = {}
_upgraded: set[str] = set()
_lock = threading.Lock()


def _default_url() -> str:
    from enclave.settings import get_settings

    return get_settings().registry_url


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # noqa: ANN001 - DBAPI types
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin
        # (the documented pysqlite recipe), so BEGIN IMMEDIATE can be emitted below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # noqa: ANN001
        if conn.get_execution_options().get("sqlite_immediate", True):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for ``url`` (default: the configured registry)."""
    url = url or _default_url()
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                database = url.split("///", 1)[-1] if "///" in url else ""
                if database and database != ":memory:":
                    Path(database).parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_SECONDS})
                _configure_sqlite(engine)
            else:
                engine = create_engine(url, pool_pre_ping=True)
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every pooled connection (tests that delete a data root call this)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _upgraded.clear()


@contextmanager
def session_scope(url: str | None = None, *, readonly: bool = False) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any error.

    Writers (the default) take the database write lock at BEGIN on SQLite and the audit head
    row lock on other databases, so writers run one at a time; pass ``readonly=True`` for
    queries so readers never block writers.
    """
    engine = get_engine(url)
    if engine.dialect.name == "sqlite":
        engine = engine.execution_options(sqlite_immediate=not readonly)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    session = factory()
    try:
        if not readonly and engine.dialect.name != "sqlite":
            # The same one-writer-at-a-time rule as SQLite's BEGIN IMMEDIATE: every write takes the
            # audit chain's head row first (each state change appends to the chain anyway), so
            # check-then-insert rules (one vote each, next uid) cannot race on PostgreSQL either.
            session.execute(text("SELECT id FROM audit_head WHERE id = 1 FOR UPDATE"))
        yield session
        if not readonly:
            session.commit()
        # A read-only session is simply closed: its transaction ends without expiring the
        # objects read, so callers may use them after the block.
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str | None = None):  # noqa: ANN201 - alembic Config
    """An Alembic configuration pointing at ``enclave/migrations`` and ``url``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parent.parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", (url or _default_url()).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Bring the registry at ``url`` to ``revision`` (``alembic upgrade head``)."""
    from alembic import command

    url = url or _default_url()
    command.upgrade(alembic_config(url), revision)
    with _lock:
        _upgraded.add(url)


def ensure_schema(url: str | None = None) -> str:
    """Upgrade the registry once per process; returns the URL used."""
    url = url or _default_url()
    if url not in _upgraded:
        upgrade(url)
    return url

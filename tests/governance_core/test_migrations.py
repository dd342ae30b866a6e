"""The Alembic migrations build exactly the schema the models declare (drift fails here)."""
from __future__ import annotations

import sqlite3

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from enclave.registry import models  # noqa: F401 - every table on the metadata
from enclave.registry.base import Base, alembic_config, dispose_engines, get_engine, upgrade


def _diff(url):
    with get_engine(url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def test_migrated_schema_matches_the_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    try:
        assert _diff(url) == [], "models changed without a migration: regenerate enclave/migrations/versions"
    finally:
        dispose_engines()


def test_upgrade_is_idempotent_and_reaches_head(tmp_path):
    path = tmp_path / "registry.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    upgrade(url)
    dispose_engines()
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    con = sqlite3.connect(path)
    assert con.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    triggers = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert {"audit_events_no_update", "audit_events_no_delete"} <= triggers
    con.close()


def test_downgrade_to_base_and_back(tmp_path):
    from alembic import command

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    upgrade(url)
    try:
        assert _diff(url) == []
    finally:
        dispose_engines()

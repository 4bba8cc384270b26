"""Alembic migrations: head equals the ORM schema; newer databases are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from latestore import PrecomputedVectors, Store
from latestore.errors import SchemaVersionError
from latestore.migrations.runner import VERSION_TABLE, current_revision, head_revision, upgrade
from latestore.store.fulltext import FTS_TABLE
from latestore.store.schema import Base
from latestore.store.sql import to_url


def test_upgrade_to_head_gives_exactly_the_orm_schema(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with engine.begin() as conn:
        upgrade(conn)
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                # The full-text index (FTS5 table and its shadow tables) is made by SQL
                # the ORM does not describe: see latestore.store.fulltext.
                "include_name": lambda name, kind, parent: (
                    not (kind == "table" and (name == VERSION_TABLE or name.startswith(FTS_TABLE)))
                ),
            },
        )
        assert compare_metadata(context, Base.metadata) == []
        tables = {
            r[0] for r in conn.execute(text("select name from sqlite_master where type='table'"))
        }
    assert VERSION_TABLE in tables and "alembic_version" not in tables


def test_store_open_applies_migrations(store_url: str) -> None:
    with Store.open(store_url, PrecomputedVectors(dim=4)):
        pass
    engine = create_engine(to_url(store_url))
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()


def test_newer_database_is_refused(store_url: str) -> None:
    with Store.open(store_url, PrecomputedVectors(dim=4)):
        pass
    engine = create_engine(to_url(store_url))
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999_from_the_future'"))
    with pytest.raises(SchemaVersionError, match="newer latestore"):
        Store.open(store_url, PrecomputedVectors(dim=4))

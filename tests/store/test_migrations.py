"""Alembic migrations: head equals the ORM schema; newer databases are refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from latestore import PrecomputedVectors, Store
from latestore.errors import SchemaVersionError
from latestore.migrations.runner import (
    HEAD_REVISION,
    VERSION_TABLE,
    at_head,
    current_revision,
    head_revision,
    upgrade,
)
from latestore.store.fulltext_sqlite import FTS_TABLE
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


def test_the_fast_head_check_agrees_with_alembic(store_url: str) -> None:
    # Opening a store already at head skips Alembic entirely (at_head reads one row),
    # so HEAD_REVISION must be Alembic's head and at_head must track the real state.
    assert head_revision() == HEAD_REVISION
    engine = create_engine(to_url(store_url))
    with engine.connect() as conn:
        assert not at_head(conn)  # no version table yet
    with Store.open(store_url, PrecomputedVectors(dim=4)):
        pass
    with engine.connect() as conn:
        assert at_head(conn)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0003_page_windows'"))
    with engine.connect() as conn:
        assert not at_head(conn)


def test_opening_a_current_store_does_not_import_alembic(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with Store.open(db, PrecomputedVectors(dim=4)):
        pass
    code = (
        "import sys; from latestore import Store, PrecomputedVectors; "
        f"Store.open({str(db)!r}, PrecomputedVectors(dim=4)).close(); "
        "print(sorted(m for m in ('alembic', 'mako') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stderr

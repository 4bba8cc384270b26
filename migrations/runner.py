"""Apply latestore's Alembic migrations at open, on the store's own connection."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from latestore.errors import SchemaVersionError

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "latestore_alembic_version"
SCRIPT_LOCATION = Path(__file__).resolve().parent
# The newest revision in versions/ (a test checks it against Alembic's own head). Opening
# a store that is already there reads one row, without importing Alembic and Mako
# (about a second of a CLI command's start).
HEAD_REVISION = "0009_fulltext_statistics"


def at_head(connection: Connection) -> bool:
    """Is the database at :data:`HEAD_REVISION`? Plain SQL, no Alembic."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return False
    found = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return found == [HEAD_REVISION]


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Bring the database to ``revision``; refuse one written by newer code.

    The caller commits: Alembic runs inside the connection's transaction.
    """
    from alembic import command
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    current = current_revision(connection)
    if current is not None and current not in {rev.revision for rev in script.walk_revisions()}:
        raise SchemaVersionError(
            f"database schema revision {current!r} is unknown to this latestore "
            f"(newest known: {script.get_current_head()!r}); it was probably written by a "
            "newer latestore: upgrade the package"
        )
    command.upgrade(alembic_config(connection), revision)

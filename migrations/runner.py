"""Apply latestore's Alembic migrations at open, on the store's own connection."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from latestore.errors import SchemaVersionError

VERSION_TABLE = "latestore_alembic_version"
SCRIPT_LOCATION = Path(__file__).resolve().parent


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Bring the database to ``revision``; refuse one written by newer code.

    The caller commits: Alembic runs inside the connection's transaction.
    """
    script = ScriptDirectory.from_config(alembic_config())
    current = current_revision(connection)
    if current is not None and current not in {rev.revision for rev in script.walk_revisions()}:
        raise SchemaVersionError(
            f"database schema revision {current!r} is unknown to this latestore "
            f"(newest known: {script.get_current_head()!r}); it was probably written by a "
            "newer latestore: upgrade the package"
        )
    command.upgrade(alembic_config(connection), revision)

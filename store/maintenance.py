"""When the sync layer snapshots the derived index and prunes the change log.

Policy only: the mechanics (writing a snapshot, replaying changes) are in
:mod:`latestore.store.sync`, the SQL in :mod:`latestore.store.writes`. Both steps run
after a write has committed, so neither can lose or expose part of one.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from latestore.errors import StoreBusyError
from latestore.store.context import StoreContext
from latestore.store.writes import prune_changes

log = logging.getLogger("latestore")


def maybe_snapshot(ctx: StoreContext) -> None:
    """Snapshot once enough tokens changed. Call with the index lock held for writing."""
    total = ctx.sync.index.vectors.total_tokens
    due = max(ctx.config.snapshot_every_tokens, ctx.config.snapshot_every_fraction * total)
    if ctx.sync.tokens_since_snapshot >= due:
        ctx.sync.save()


def maybe_prune_changes(ctx: StoreContext) -> None:
    """Bound the change log: keep the last ``change_log_keep`` changes, and every
    change since the snapshot that the next open will replay from."""
    if not ctx.index_loaded:
        return  # what the snapshot holds is known once the index is loaded
    sync = ctx.sync
    with ctx.index_lock.write():
        through = sync.applied_change - ctx.config.change_log_keep
        if sync.snapshot_path is not None:
            through = min(through, sync.snapshot_change)
        if through - sync.pruned_through < max(1, ctx.config.change_log_keep // 4):
            return
    try:
        with ctx.write_lock, Session(ctx.engine) as session, session.begin():
            session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
            prune_changes(session, through)
    except (SQLAlchemyError, StoreBusyError) as exc:
        # Housekeeping only: the write that triggered it is committed; retry next time.
        log.warning("latestore: change log not pruned this time (%s)", exc)
        return
    with ctx.index_lock.write():
        sync.pruned_through = max(sync.pruned_through, through)

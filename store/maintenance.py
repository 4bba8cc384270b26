"""When the derived index is snapshotted and the change log pruned: the policy the
database runs after each committed write (:meth:`Database.write`).

Policy only: the mechanics (writing a snapshot, replaying changes) are in
:mod:`latestore.store.sync`, the SQL in :mod:`latestore.store.writes`. Both steps run
after a write has committed, so neither can lose or expose part of one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from latestore.errors import StoreBusyError
from latestore.models import StoreConfig
from latestore.store.sync import IndexSync
from latestore.store.writes import prune_changes

if TYPE_CHECKING:
    from latestore.store.database import Database

log = logging.getLogger("latestore")


def maybe_snapshot(sync: IndexSync, config: StoreConfig) -> None:
    """Snapshot once enough tokens changed. Call with the index lock held for writing."""
    total = sync.index.vectors.total_tokens
    every = config.maintenance
    due = max(every.snapshot_every_tokens, every.snapshot_every_fraction * total)
    if sync.tokens_since_snapshot >= due:
        sync.save()


def maybe_prune_changes(db: Database) -> None:
    """Bound the change log: keep the last ``change_log_keep`` changes, and every
    change since the snapshot that the next open will replay from."""
    derived = db.derived
    if not derived.loaded:
        return  # what the snapshot holds is known once the index is loaded
    sync, keep = derived.sync, db.config.maintenance.change_log_keep
    with derived.lock.write():
        through = sync.applied_change - keep
        if sync.snapshot_path is not None:
            through = min(through, sync.snapshot_change)
        if through - sync.pruned_through < max(1, keep // 4):
            return
    try:
        with db.write(change=False) as tx:
            prune_changes(tx.session, through)
    except (SQLAlchemyError, StoreBusyError) as exc:
        # Housekeeping only: the write that triggered it is committed; retry next time.
        log.warning("latestore: change log not pruned this time (%s)", exc)
        return
    with derived.lock.write():
        sync.pruned_through = max(sync.pruned_through, through)

"""Adding, replacing and deleting pages: one SQL transaction per batch, then the index.

The upsert plan is made twice. A first look, outside the write lock, decides what to
encode (encoding may take minutes, and other writers must not wait for it). The plan
that counts is made again under the lock, because another writer may have added,
changed or deleted the same pages in the meantime; pages that changed are encoded
with the lock released and the plan is made once more.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from latestore.deprecation import warn_deprecated
from latestore.errors import DuplicateExternalIdError, InvalidInputError
from latestore.index.codec import as_stored
from latestore.models import Page, WrittenPages
from latestore.store.compact import write_codes
from latestore.store.database import Database, WriteTransaction
from latestore.store.encoded import PRECOMPUTED, PageEncoding, ProgressCallback
from latestore.store.encoder_slot import EncoderSlot
from latestore.store.filters import matching_page_ids
from latestore.store.page_encoding import encode_missing
from latestore.store.schema import PageRow
from latestore.store.sql import chunks
from latestore.store.validation import check_unique_external_ids, storable
from latestore.store.writes import PreparedPage, delete_pages, write_pages

# Pages per transaction when add_pages streams an iterable.
STREAM_BATCH = 256


class StoredState(NamedTuple):
    """What the database holds for one external id."""

    page_id: int
    content_hash: str
    metadata: dict[str, Any]


class UpsertPlan(NamedTuple):
    """The pages of one batch as the database stands: which exist, which must be written."""

    stored: dict[str, StoredState]  # external id -> its stored page
    to_write: list[int]  # positions in the batch not stored identically

    def page_ids(self, items: list[Page]) -> list[int | None]:
        """The stored page id of each item, None for new ones."""
        return [
            self.stored[p.external_id].page_id if p.external_id in self.stored else None
            for p in items
        ]


def plan_upsert(session: Session, items: list[Page], hashes: list[str]) -> UpsertPlan:
    wanted = [p.external_id for p in items if p.external_id is not None]
    stored: dict[str, StoredState] = {}
    for chunk in chunks(wanted):
        rows = session.execute(
            select(PageRow.external_id, PageRow.id, PageRow.content_hash, PageRow.meta).where(
                PageRow.external_id.in_(chunk)
            )
        )
        for external_id, page_id, content_hash, meta in rows:
            stored[external_id] = StoredState(int(page_id), content_hash, meta)
    to_write = []
    for i, page in enumerate(items):
        found = stored.get(page.external_id) if page.external_id is not None else None
        if found is None or found.content_hash != hashes[i] or found.metadata != page.metadata:
            to_write.append(i)
    return UpsertPlan(stored, to_write)


def refuse_stored(plan: UpsertPlan) -> None:
    """For adds that must not replace: fail if any external id is stored already."""
    taken = sorted(plan.stored)
    if taken:
        raise DuplicateExternalIdError(
            f"external ids already stored: {taken[:10]} (use upsert_pages to replace pages)",
            external_ids=taken,
        )


def add_stream(
    db: Database,
    encoders: EncoderSlot,
    pages: Iterator[Page],
    size: int,
    batch_size: int | None,
    on_progress: ProgressCallback | None,
    upsert: bool | None,
) -> WrittenPages:
    """Read, encode and commit ``size`` pages at a time; memory is bounded by the batch."""
    ids = WrittenPages()
    seen: set[str] = set()
    while chunk := list(itertools.islice(pages, size)):
        named = [p.external_id for p in chunk if isinstance(p, Page) and p.external_id]
        repeated = seen.intersection(named)
        if repeated:
            raise DuplicateExternalIdError(
                f"external ids repeated in one add_pages call: {sorted(repeated)[:10]} "
                f"(the {len(ids)} pages before this batch are stored)",
                external_ids=sorted(repeated),
            )
        seen.update(named)
        progress = None
        if on_progress is not None:
            base, read = len(ids), len(ids) + len(chunk)
            progress = functools.partial(_shifted, on_progress, base, read)
        ids.extend_with(add_batch(db, encoders, chunk, batch_size, progress, upsert))
    return ids


def add_batch(
    db: Database,
    encoders: EncoderSlot,
    items: list[Page],
    batch_size: int | None,
    on_progress: ProgressCallback | None,
    upsert: bool | None,
) -> WrittenPages:
    """One transaction: all of ``items`` or nothing. Returns their page ids in order."""
    db.check_open()
    for item in items:
        if not isinstance(item, Page):
            raise InvalidInputError(f"add_pages takes Page objects, got {type(item).__name__}")
    check_unique_external_ids([p.external_id for p in items])
    hashes = [p.content_hash() for p in items]
    with db.session() as session:
        plan = plan_upsert(session, items, hashes)
    if upsert is False:
        refuse_stored(plan)
    elif upsert is None and plan.stored:
        warn_deprecated(
            f"add_pages met {len(plan.stored)} external ids already stored and replaced or "
            "kept them; the next release refuses them: call upsert_pages to replace pages"
        )
    if not plan.to_write:
        # Everything is stored identically: a read-only call, complete as of that read,
        # so it need not wait for the write lock.
        if on_progress is not None:
            on_progress(len(items), len(items))
        return _written(plan, items)
    vectors: dict[int, PageEncoding] = {}
    while True:
        encode_missing(db, encoders, vectors, items, plan.to_write, batch_size, on_progress)
        with db.write() as tx:
            plan = plan_upsert(tx.session, items, hashes)
            if upsert is False:
                refuse_stored(plan)
            ids = plan.page_ids(items)
            if not plan.to_write or any(i not in vectors for i in plan.to_write):
                tx.discard()  # nothing left to write, or pages changed meanwhile
            else:
                _write(db, encoders, tx, items, hashes, plan.to_write, ids, vectors)
        if plan.to_write and tx.discarded:
            continue  # pages changed meanwhile: encode them with the lock released
        break
    if on_progress is not None:
        on_progress(len(items), len(items))
    return _written(plan, items, ids)


def _write(
    db: Database,
    encoders: EncoderSlot,
    tx: WriteTransaction,
    items: list[Page],
    hashes: list[str],
    to_write: list[int],
    ids: list[int | None],
    vectors: dict[int, PageEncoding],
) -> None:
    """Write ``items[i]`` for each ``i`` in ``to_write`` in ``tx``; fills in their ids."""
    prepared = [_prepared(db, items[i], hashes[i], ids[i], vectors[i]) for i in to_write]
    encoders.adopt(tx, {p.encoded_with or "" for p in prepared} - {PRECOMPUTED})
    new_ids = write_pages(tx.session, prepared, tx.change_no)
    compact = db.config.storage.tier != "full"  # code rows written beside the pages
    codes = write_codes(tx.session, db.config, new_ids, prepared) if compact else None
    for i, page_id in zip(to_write, new_ids, strict=True):
        ids[i] = page_id

    def stored() -> list[Any]:
        # The index must hold what SQL holds (int8 is lossy), exactly as a reopen would
        # load it, or results would shift after a restart.
        return codes if codes is not None else [as_stored(p.vectors, db.dtype) for p in prepared]

    tx.changed(new_ids, stored)


def _written(
    plan: UpsertPlan, items: list[Page], ids: list[int | None] | None = None
) -> WrittenPages:
    """The batch's ids and counts, from the plan its transaction acted on."""
    found = plan.page_ids(items) if ids is None else ids
    updated = sum(1 for i in plan.to_write if items[i].external_id in plan.stored)
    return WrittenPages(
        (int(i) for i in found if i is not None),
        added=len(plan.to_write) - updated,
        updated=updated,
        unchanged=len(items) - len(plan.to_write),
    )


def _prepared(
    db: Database, page: Page, content_hash: str, existing_id: int | None, enc: PageEncoding
) -> PreparedPage:
    return PreparedPage(
        page=page,
        vectors=enc.vectors,
        content_hash=content_hash,
        existing_id=existing_id,
        # compact-only keeps no full-precision copy: the code rows are all there is
        storage_dtype="none" if db.config.storage.tier == "compact-only" else db.dtype,
        text_tokens=enc.text_tokens,
        tokens_dropped=enc.tokens_dropped,
        encoded_with=enc.encoded_with,
        window_rows=enc.window_rows,
    )


def delete_selected(
    db: Database,
    page_ids: list[int],
    external_ids: list[str],
    filter: Mapping[str, Any] | None,
) -> int:
    """Delete the union of the selections in one transaction; returns how many went.

    The filter and external ids are resolved inside the transaction, after the write
    lock is taken, so the pages removed are those that match when the delete commits.
    """
    with db.write() as tx:
        selected = list(page_ids)
        # An id with NUL was never stored (and PostgreSQL cannot be asked about it).
        for chunk in chunks([e for e in external_ids if storable(e)]):
            query = select(PageRow.id).where(PageRow.external_id.in_(chunk))
            selected += tx.session.execute(query).scalars().all()
        if filter is not None:
            selected += matching_page_ids(tx.session, filter)
        removed = delete_pages(tx.session, sorted(set(selected)), tx.change_no)
        if not removed:
            tx.discard()  # nothing to delete: the change number rolls back too
        tx.changed(removed)
    return len(removed)


def _shifted(report: ProgressCallback, base: int, read: int, done: int, _total: int) -> None:
    report(base + done, read)

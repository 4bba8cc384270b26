"""Window rows for pages written before they were recorded (revision 0008).

A windowed page encoded before ``ls_pages.window_rows`` existed scores as the union of
its windows even under best-window scoring: the index does not know where its windows
end. Its rows per window follow from what SQL already records (its kept text tokens,
``text_tokens - tokens_dropped``) and the encoder's layout (window span, stride and the
special tokens each window keeps), *provided* the vectors are exactly each window's
kept tokens. That is checked by arithmetic: the derived counts must add up to the
page's stored vector count. A skiplist that removed a token, or pooling, breaks the sum,
and such a page keeps NULL (one segment, the union): never a wrong split. Only pages
encoded with the store's current encoder are derived (``encoded_with``).

:func:`record_window_rows` runs at the end of ``Store.reencode`` (``latestore reindex
--re-encode``), with the encoder loaded; it writes a change per page so that every
process's index picks the windows up.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update

from latestore.encoders.windows import as_windowed, window_vector_counts
from latestore.errors import InvalidInputError
from latestore.store.database import Database
from latestore.store.schema import ChangeRow, PageRow, StoreRow

BATCH = 1000


def window_layout(encoder: Any) -> tuple[int, int, int] | None:
    """``(span, stride, specials per window)`` of a text encoder whose stored rows are
    each window's kept tokens, in order; None for any other (pooled, windows off,
    images)."""
    windowed = as_windowed(encoder)
    if windowed is None or not windowed.windowing.enabled:
        return None
    if getattr(encoder, "pool_factor", 1) != 1:
        return None
    span = getattr(encoder, "_span", None)
    build = getattr(encoder, "_window", None)
    stride = windowed.windowing.stride
    if not isinstance(span, int) or not callable(build) or stride is None:
        return None
    # The special tokens and marker a window keeps: those of a window with no text.
    specials = sum(bool(k) for k in build([], 0, 0)[1])
    return span, stride, specials


def record_window_rows(db: Database, encoder: Any) -> int:
    """Derive and record the window rows of the store's pages that lack them; returns
    how many pages got some."""
    layout = window_layout(encoder)
    if layout is None:
        return 0
    span, stride, specials = layout
    recorded, last_id = 0, 0
    while True:
        with db.session() as session:
            rows = session.execute(
                select(PageRow.id, PageRow.text_tokens, PageRow.tokens_dropped, PageRow.n_tokens)
                .where(
                    PageRow.window_rows.is_(None),
                    PageRow.text_tokens.is_not(None),
                    PageRow.tokens_dropped.is_not(None),
                    PageRow.encoded_with == encoder.fingerprint,
                    PageRow.id > last_id,
                )
                .order_by(PageRow.id)
                .limit(BATCH)
            ).all()
        if not rows:
            return recorded
        last_id = int(rows[-1][0])
        found: dict[int, list[int]] = {}
        for page_id, text_tokens, dropped, n_tokens in rows:
            kept = (text_tokens or 0) - (dropped or 0)  # neither is NULL (the filter)
            counts = window_vector_counts(kept, span, stride, specials)
            if len(counts) > 1 and sum(counts) == n_tokens:
                found[int(page_id)] = counts
        if found:
            _write(db, found)
            recorded += len(found)


def _write(db: Database, found: dict[int, list[int]]) -> None:
    with db.write() as tx:
        for page_id, counts in found.items():
            # Only a page still without rows: another writer may have replaced it.
            tx.session.execute(
                update(PageRow)
                .where(PageRow.id == page_id, PageRow.window_rows.is_(None))
                .values(window_rows=counts, change_no=tx.change_no)
            )
        tx.session.execute(
            insert(ChangeRow),
            [{"change_no": tx.change_no, "page_id": p, "op": "add"} for p in found],
        )
        # No tx.changed: the index re-reads these pages, their window rows included.


def record_window_scoring(db: Database, mode: str) -> None:
    """Record ``mode`` as the store's ``window_scoring`` (what later opens use) and
    score with it from now on in this process."""
    if mode not in ("best", "union"):
        raise InvalidInputError(f"window_scoring must be 'best' or 'union', got {mode!r}")
    with db.write(change=False) as tx:  # a setting: no page changes
        row = tx.session.get(StoreRow, 1)
        assert row is not None
        row.config = {**row.config, "window_scoring": mode}
    db.config = db.config.updated({"window_scoring": mode})
    db.derived.set_window_scoring(mode, db.config)

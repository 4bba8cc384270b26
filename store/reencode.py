"""Re-encoding a store's pages with new window settings or a new encoder revision, and
what encoding cut.

A store keeps the window settings its pages were encoded with (stores from before
windows: off, pages truncated to one window). :func:`reencode_store` switches them:

* every page whose vectors did not come from the target encoder is re-encoded, a
  batch per SQL transaction, each batch committed with a change number like any write,
  so searches see every page either old or new, and both are the same model;
* a page changed or deleted by another writer while its batch was encoding is left to
  that writer (its content hash is checked under the write lock);
* pages record the fingerprint they were encoded with, so after a crash the same call
  resumes where it stopped;
* the store's recorded fingerprint and window settings change last, in the
  transaction that finds no page left to do. Until then the store opens with its old
  settings; a writer that opened it before the switch is refused afterwards
  (:func:`check_encoded_with`) instead of mixing settings.

A store recorded with an earlier *revision* of its encoder (a latestore fix changed the
vectors of that model, see ``encoders.base.revised_fingerprint``) opens with the new
one, which records its fingerprint with the first write (:func:`check_encoded_with`,
in that write's transaction) or re-encode; its older pages are the pages a re-encode
does (``pages_pending_reencode`` until then).

Pages given as vectors by the caller (``"precomputed"``) are kept as they are. Stores
from before revision 0003 did not mark them: there, a page the encoder cannot read (no
text for a text model) is kept and marked, and one it can read is re-encoded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from latestore.encoders import Encoder, PageContent
from latestore.encoders.windows import WindowSettings, as_windowed
from latestore.errors import EncoderError, EncoderMismatchError, InvalidInputError
from latestore.index.codec import as_stored, to_storage
from latestore.store.maintenance import maybe_snapshot
from latestore.store.schema import ChangeRow, PageRow, PageVectorsRow, StoreRow
from latestore.store.validation import checked_vectors
from latestore.store.writes import next_change

if TYPE_CHECKING:
    from latestore.store import Store

__all__ = [
    "PRECOMPUTED",
    "PageEncoding",
    "ReencodeReport",
    "check_encoded_with",
    "encode_counted",
    "encoding_summary",
    "pages_not_encoded_by",
    "reencode_store",
]

PRECOMPUTED = "precomputed"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class PageEncoding:
    """A page's vectors, what its encoder cut (None: unknown) and whose vectors they are."""

    vectors: npt.NDArray[np.floating]
    text_tokens: int | None
    tokens_dropped: int | None
    encoded_with: str
    # Rows per window (EncodedPage.window_rows): None for one window, or unknown.
    window_rows: tuple[int, ...] | None = None

    def checked(self, dim: int, dtype: str, label: str) -> PageEncoding:
        return replace(self, vectors=checked_vectors(self.vectors, dim, dtype, label))


# What re-encoding a page reads: its content, and what tells a later change apart.
_SOURCE_COLUMNS = (
    PageRow.id,
    PageRow.text,
    PageRow.image,
    PageRow.image_path,
    PageRow.content_hash,
    PageRow.n_tokens,
)


def encode_counted(encoder: Encoder, contents: Sequence[PageContent]) -> list[PageEncoding]:
    """Encode pages, with cut counts where the encoder reads in windows."""
    windowed = as_windowed(encoder)
    if windowed is not None:
        return [
            PageEncoding(
                p.vectors, p.text_tokens, p.tokens_dropped, encoder.fingerprint, p.window_rows
            )
            for p in windowed.encode_pages_with_counts(contents)
        ]
    return [
        PageEncoding(v, None, None, encoder.fingerprint) for v in encoder.encode_pages(contents)
    ]


def check_encoded_with(
    session: Session, fingerprints: set[str], supersedes: tuple[str, ...] = ()
) -> str | None:
    """Refuse to write vectors from an encoder the store no longer records.

    Called inside a write transaction, after the store's write lock is taken: another
    process may have re-encoded the store with new settings since this one opened it.
    Vectors of a later revision of the recorded encoder (whose ``supersedes`` lists the
    recorded fingerprint) are written, and the store records that revision in the same
    transaction; its fingerprint is returned then (None otherwise).
    """
    if not fingerprints:
        return None
    recorded = session.execute(
        select(StoreRow.encoder_fingerprint).where(StoreRow.id == 1)
    ).scalar_one()
    if len(fingerprints) == 1 and recorded in supersedes:
        (later,) = fingerprints
        session.execute(update(StoreRow).where(StoreRow.id == 1).values(encoder_fingerprint=later))
        return later
    if fingerprints - {recorded}:
        raise EncoderMismatchError(
            f"the store's encoder settings changed (fingerprint {recorded}) since it was "
            "opened here, probably by `latestore reindex --re-encode`; reopen the store"
        )
    return None


def pages_not_encoded_by(session: Session, fingerprint: str) -> int:
    """Pages whose vectors ``fingerprint``'s encoder did not make (caller-given kept)."""
    pending = _pending(fingerprint)
    return int(session.execute(select(func.count(PageRow.id)).where(pending)).scalar_one())


@dataclass
class ReencodeReport:
    """What :func:`reencode_store` did."""

    pages_reencoded: int = 0
    pages_kept: int = 0  # vectors given by the caller, left as they are
    pages_skipped: int = 0  # changed or deleted by another writer meanwhile
    # Pages from before revision 0008 whose window rows were derived and recorded.
    pages_windows_recorded: int = 0
    tokens_before: int = 0
    tokens_after: int = 0
    fingerprint_before: str = ""
    fingerprint_after: str = ""
    windowing: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pending(fingerprint: str) -> Any:
    return or_(
        PageRow.encoded_with.is_(None),
        (PageRow.encoded_with != fingerprint) & (PageRow.encoded_with != PRECOMPUTED),
    )


def target_encoder(
    encoder: Encoder, settings: WindowSettings | Literal["current"] | None
) -> Encoder:
    """``encoder`` with ``settings`` (default: windows on; ``"current"``: as it is), or as
    it is if it has none."""
    windowed = as_windowed(encoder)
    if settings == "current":
        return encoder
    if windowed is None:
        if settings is not None:
            raise EncoderError(f"encoder {encoder.name!r} does not read pages in windows")
        return encoder
    target: Any = windowed.with_windowing(settings or WindowSettings())
    return target  # type: ignore[no-any-return]


def _content(text: str | None, image: bytes | None, image_path: str | None) -> PageContent:
    picture = None
    if image is not None or image_path is not None:
        from latestore.store.images import load_image

        picture = load_image(image if image is not None else Path(str(image_path)))
    return PageContent(text=text, image=picture)


def reencode_store(
    store: Store,
    target: Encoder,
    *,
    batch_size: int,
    on_progress: Progress | None = None,
) -> ReencodeReport:
    """Re-encode every page not yet encoded by ``target``; then record ``target``.

    ``target`` must be the store's model (same dim); only its settings may differ.
    """
    if target.dim != store.dim:
        raise EncoderMismatchError(f"re-encoding needs dim {store.dim}, got {target.dim}")
    if store.config.tier != "full":
        # The batches below rewrite ls_page_vectors only; a compact store's code rows
        # would go stale (not yet supported: see docs/compact-tier.md).
        raise InvalidInputError(f"re-encoding a {store.config.tier!r}-tier store is not supported")
    report = ReencodeReport(fingerprint_before=store.encoder_fingerprint)
    pending = _pending(target.fingerprint)
    with Session(store._ctx.engine) as session:
        total = int(session.execute(select(func.count(PageRow.id)).where(pending)).scalar_one())
        report.pages_kept = int(
            session.execute(
                select(func.count(PageRow.id)).where(PageRow.encoded_with == PRECOMPUTED)
            ).scalar_one()
        )
    last_id = 0
    while True:
        with Session(store._ctx.engine) as session:
            rows = session.execute(
                select(*_SOURCE_COLUMNS)
                .where(pending, PageRow.id > last_id)
                .order_by(PageRow.id)
                .limit(batch_size)
            ).all()
        if not rows:
            break
        last_id = int(rows[-1].id)
        _reencode_batch(store, target, [tuple(r) for r in rows], report, final=False)
        if on_progress is not None:
            on_progress(min(report.pages_reencoded + report.pages_skipped, total), total)
    _finish(store, target, report)
    return report


def _reencode_batch(
    store: Store,
    target: Encoder,
    rows: list[tuple[Any, ...]],
    report: ReencodeReport,
    *,
    final: bool,
    session: Session | None = None,
) -> None:
    """Encode ``rows`` (id, text, image, image_path, content_hash, n_tokens) and write
    them in one transaction, or in ``session`` when the caller holds one."""
    dtype = store._ctx.sync.dtype
    encoded = _encode_readable(target, [_content(r[1], r[2], r[3]) for r in rows])
    given = [int(r[0]) for r, e in zip(rows, encoded, strict=True) if e is None]
    rows = [r for r, e in zip(rows, encoded, strict=True) if e is not None]
    encodings = [
        e.checked(store.dim, dtype, f"page {r[0]}")
        for e, r in zip([e for e in encoded if e is not None], rows, strict=True)
    ]
    if session is not None:
        written = _write(session, rows, encodings, dtype, next_change(session))
        _mark_given(session, given)
        change_no = written[0]
    else:
        with store._ctx.write_lock, Session(store._ctx.engine) as own, own.begin():
            own.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
            written = _write(own, rows, encodings, dtype, next_change(own))
            _mark_given(own, given)
            change_no = written[0]
    report.pages_kept += len(given)
    ids, before, after = written[1], written[2], written[3]
    report.pages_reencoded += len(ids)
    report.pages_skipped += len(rows) - len(ids)
    report.tokens_before += before
    report.tokens_after += after
    if not final:
        _apply(store, change_no, ids, encodings, rows)


def _encode_readable(target: Encoder, contents: list[PageContent]) -> list[PageEncoding | None]:
    """Encodings, None for a page the encoder cannot read (no text for a text model)."""
    try:
        encoded: list[PageEncoding | None] = list(encode_counted(target, contents))
    except EncoderError:
        # Only in stores from before revision 0003, where caller-given vectors were not
        # marked: find the pages that cannot be read, one by one.
        encoded = []
        for content in contents:
            try:
                encoded.append(encode_counted(target, [content])[0])
            except EncoderError:
                encoded.append(None)
    if len(encoded) != len(contents):
        raise EncoderError(f"encoder returned {len(encoded)} results for {len(contents)} pages")
    return encoded


def _mark_given(session: Session, page_ids: list[int]) -> None:
    """Pages the encoder cannot read hold vectors the caller gave: say so, and keep them."""
    if page_ids:
        session.execute(
            update(PageRow).where(PageRow.id.in_(page_ids)).values(encoded_with=PRECOMPUTED)
        )


def _write(
    session: Session,
    rows: list[tuple[Any, ...]],
    encodings: list[PageEncoding],
    dtype: str,
    change_no: int,
) -> tuple[int, list[int], int, int]:
    """Replace the vectors of the rows still as they were read; (change, ids, tokens)."""
    ids = [int(r[0]) for r in rows]
    current = dict(
        session.execute(select(PageRow.id, PageRow.content_hash).where(PageRow.id.in_(ids))).all()
    )
    # A page upserted or deleted meanwhile was written by that writer; leave it.
    keep = [i for i, r in enumerate(rows) if current.get(int(r[0])) == r[4]]
    done = [ids[i] for i in keep]
    if not done:
        return change_no, [], 0, 0
    for i in keep:
        e = encodings[i]
        session.execute(
            update(PageRow)
            .where(PageRow.id == ids[i])
            .values(
                n_tokens=len(e.vectors),
                text_tokens=e.text_tokens,
                tokens_dropped=e.tokens_dropped,
                window_rows=None if e.window_rows is None else list(e.window_rows),
                encoded_with=e.encoded_with,
                change_no=change_no,
            )
        )
    session.execute(delete(PageVectorsRow).where(PageVectorsRow.page_id.in_(done)))
    session.execute(
        insert(PageVectorsRow),
        [
            {
                "page_id": ids[i],
                "n_tokens": len(encodings[i].vectors),
                "data": to_storage(encodings[i].vectors, dtype),
            }
            for i in keep
        ],
    )
    session.execute(
        insert(ChangeRow),
        [
            {"change_no": change_no, "page_id": p, "op": op}
            for op in ("delete", "add")
            for p in done
        ],
    )
    before = sum(int(rows[i][5]) for i in keep)
    after = sum(len(encodings[i].vectors) for i in keep)
    return change_no, done, before, after


def _apply(
    store: Store,
    change_no: int,
    ids: list[int],
    encodings: list[PageEncoding],
    rows: list[tuple[Any, ...]],
) -> None:
    by_id = {int(r[0]): e for r, e in zip(rows, encodings, strict=True)}
    with store._ctx.index_lock.write():
        # As add_pages does: the index holds exactly what SQL holds (int8 is lossy).
        stored = [as_stored(by_id[p].vectors, store._ctx.sync.dtype) for p in ids]
        store._ctx.sync.applied_own(change_no, ids, stored)
        maybe_snapshot(store._ctx)


def _finish(store: Store, target: Encoder, report: ReencodeReport) -> None:
    """Re-encode what other writers added meanwhile, and record ``target``, atomically."""
    pending = _pending(target.fingerprint)
    record = None
    windowed = as_windowed(target)
    if windowed is not None:
        record = windowed.windowing.as_options()
    with store._ctx.write_lock, Session(store._ctx.engine) as session, session.begin():
        session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
        rows = session.execute(select(*_SOURCE_COLUMNS).where(pending)).all()
        if rows:
            _reencode_batch(
                store, target, [tuple(r) for r in rows], report, final=True, session=session
            )
        session.execute(
            update(StoreRow)
            .where(StoreRow.id == 1)
            .values(encoder_fingerprint=target.fingerprint, encoder_windowing=record)
        )
    with store._ctx.index_lock.write():
        # Changes made inside the final transaction are read back from SQL.
        store._ctx.sync.catch_up()
        maybe_snapshot(store._ctx)
    report.fingerprint_after = target.fingerprint
    report.windowing = record


def encoding_summary(session: Session, current: str | None = None) -> dict[str, Any]:
    """What encoding cut, over the whole store: pages truncated and tokens dropped.

    ``pages_uncounted`` are pages whose cut is unknown: encoded before latestore counted
    (re-encode to count them), by an encoder that does not count, or the caller's own
    vectors. ``pages_pending_reencode`` are those not encoded by ``current`` (default:
    the recorded encoder).
    """
    store_row = session.execute(select(StoreRow)).scalar_one()
    truncated, dropped, counted, text_tokens = session.execute(
        select(
            func.count(PageRow.id).filter(PageRow.tokens_dropped > 0),
            func.coalesce(func.sum(PageRow.tokens_dropped), 0),
            func.count(PageRow.tokens_dropped),
            func.coalesce(func.sum(PageRow.text_tokens), 0),
        )
    ).one()
    fingerprint = current or store_row.encoder_fingerprint
    # Encoded with other settings than the store's: a re-encode still to finish.
    behind = PageRow.encoded_with.is_not(None) & PageRow.encoded_with.not_in(
        [fingerprint, PRECOMPUTED]
    )
    pages, stale = session.execute(
        select(func.count(PageRow.id), func.count(PageRow.id).filter(behind))
    ).one()
    return {
        "windowing": store_row.encoder_windowing or {"windows": False},
        "pages_truncated": int(truncated),
        "tokens_dropped": int(dropped or 0),
        "text_tokens": int(text_tokens or 0),
        "pages_uncounted": int(pages) - int(counted),
        "pages_pending_reencode": int(stale),
    }

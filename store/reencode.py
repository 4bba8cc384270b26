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
  (:func:`~latestore.store.encoder_slot.check_encoded_with`) instead of mixing settings.

A store recorded with an earlier *revision* of its encoder (a latestore fix changed the
vectors of that model, see ``encoders.base.revised_fingerprint``) opens with the new
one, which records its fingerprint with the first write (``EncoderSlot.adopt``,
in that write's transaction) or re-encode; its older pages are the pages a re-encode
does (``pages_pending_reencode`` until then).

Pages given as vectors by the caller (``"precomputed"``) are kept as they are. Stores
from before revision 0003 did not mark them: there, a page the encoder cannot read (no
text for a text model) is kept and marked, and one it can read is re-encoded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from latestore.encoders import Encoder, PageContent
from latestore.encoders.windows import WindowSettings, as_windowed
from latestore.errors import EncoderError, EncoderMismatchError, InvalidInputError
from latestore.index.codec import as_stored, to_storage
from latestore.store.database import Database, WriteTransaction
from latestore.store.encoded import PRECOMPUTED, PageEncoding, encode_counted, not_encoded_by
from latestore.store.schema import ChangeRow, PageRow, PageVectorsRow, StoreRow

__all__ = [
    "ReencodeReport",
    "encoding_summary",
    "reencode_store",
    "target_encoder",
]

Progress = Callable[[int, int], None]


# What re-encoding a page reads: its content, and what tells a later change apart.
_SOURCE_COLUMNS = (
    PageRow.id,
    PageRow.text,
    PageRow.image,
    PageRow.image_path,
    PageRow.content_hash,
    PageRow.n_tokens,
)


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
    db: Database,
    target: Encoder,
    fingerprint_before: str,
    *,
    batch_size: int,
    on_progress: Progress | None = None,
) -> ReencodeReport:
    """Re-encode every page not yet encoded by ``target``; then record ``target``.

    ``target`` must be the store's model (same dim); only its settings may differ.
    """
    if target.dim != db.dim:
        raise EncoderMismatchError(f"re-encoding needs dim {db.dim}, got {target.dim}")
    if db.config.storage.tier != "full":
        # The batches below rewrite ls_page_vectors only; a compact store's code rows
        # would go stale (not yet supported: see docs/compact-tier.md).
        raise InvalidInputError(
            f"re-encoding a {db.config.storage.tier!r}-tier store is not supported"
        )
    report = ReencodeReport(fingerprint_before=fingerprint_before)
    pending = not_encoded_by(target.fingerprint)
    with db.session() as session:
        total = int(session.execute(select(func.count(PageRow.id)).where(pending)).scalar_one())
        report.pages_kept = int(
            session.execute(
                select(func.count(PageRow.id)).where(PageRow.encoded_with == PRECOMPUTED)
            ).scalar_one()
        )
    last_id = 0
    while True:
        with db.session() as session:
            rows = session.execute(
                select(*_SOURCE_COLUMNS)
                .where(pending, PageRow.id > last_id)
                .order_by(PageRow.id)
                .limit(batch_size)
            ).all()
        if not rows:
            break
        last_id = int(rows[-1].id)
        # Encoded before the write lock is taken: other writers do not wait for it.
        encoded = _encode_batch(db, target, [tuple(r) for r in rows])
        with db.write() as tx:
            _write_batch(tx, db.dtype, encoded, report, apply=True)
        if on_progress is not None:
            on_progress(min(report.pages_reencoded + report.pages_skipped, total), total)
    _finish(db, target, report)
    return report


class _Encoded(NamedTuple):
    """A batch encoded: the rows the encoder read, their encodings, and the pages it
    could not read (caller-given vectors, kept)."""

    rows: list[tuple[Any, ...]]
    encodings: list[PageEncoding]
    given: list[int]


def _encode_batch(db: Database, target: Encoder, rows: list[tuple[Any, ...]]) -> _Encoded:
    """Encode ``rows`` (id, text, image, image_path, content_hash, n_tokens)."""
    encoded = _encode_readable(target, [_content(r[1], r[2], r[3]) for r in rows])
    given = [int(r[0]) for r, e in zip(rows, encoded, strict=True) if e is None]
    rows = [r for r, e in zip(rows, encoded, strict=True) if e is not None]
    encodings = [
        e.checked(db.dim, db.dtype, f"page {r[0]}")
        for e, r in zip([e for e in encoded if e is not None], rows, strict=True)
    ]
    return _Encoded(rows, encodings, given)


def _write_batch(
    tx: WriteTransaction, dtype: str, batch: _Encoded, report: ReencodeReport, *, apply: bool
) -> None:
    """Write an encoded batch in ``tx``. ``apply``: the derived index takes the new
    vectors as they are; else it reads the transaction's changes back from SQL."""
    ids, before, after = _write(tx.session, batch.rows, batch.encodings, dtype, tx.change_no)
    _mark_given(tx.session, batch.given)
    report.pages_kept += len(batch.given)
    report.pages_reencoded += len(ids)
    report.pages_skipped += len(batch.rows) - len(ids)
    report.tokens_before += before
    report.tokens_after += after
    if apply:
        by_id = {int(r[0]): e for r, e in zip(batch.rows, batch.encodings, strict=True)}
        # The index holds exactly what SQL holds (int8 is lossy).
        tx.changed(ids, lambda: [as_stored(by_id[p].vectors, dtype) for p in ids])


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
) -> tuple[list[int], int, int]:
    """Replace the vectors of the rows still as they were read; (ids, tokens before,
    tokens after)."""
    ids = [int(r[0]) for r in rows]
    current = dict(
        session.execute(select(PageRow.id, PageRow.content_hash).where(PageRow.id.in_(ids))).all()
    )
    # A page upserted or deleted meanwhile was written by that writer; leave it.
    keep = [i for i, r in enumerate(rows) if current.get(int(r[0])) == r[4]]
    done = [ids[i] for i in keep]
    if not done:
        return [], 0, 0
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
    return done, before, after


def _finish(db: Database, target: Encoder, report: ReencodeReport) -> None:
    """Re-encode what other writers added meanwhile, and record ``target``, atomically."""
    pending = not_encoded_by(target.fingerprint)
    record = None
    windowed = as_windowed(target)
    if windowed is not None:
        record = windowed.windowing.as_options()
    with db.write() as tx:
        rows = tx.session.execute(select(*_SOURCE_COLUMNS).where(pending)).all()
        if rows:
            # Changes made in this final transaction are read back from SQL once it
            # commits (no tx.changed): the index catches up.
            encoded = _encode_batch(db, target, [tuple(r) for r in rows])
            _write_batch(tx, db.dtype, encoded, report, apply=False)
        tx.session.execute(
            update(StoreRow)
            .where(StoreRow.id == 1)
            .values(encoder_fingerprint=target.fingerprint, encoder_windowing=record)
        )
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

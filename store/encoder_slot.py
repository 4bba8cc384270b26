"""The store's encoder: loaded on first use, its fingerprint, and revision adoption.

A store opened without an encoder loads its recorded one on first use, so deleting,
listing or searching by vectors never pays for a (possibly multi-GB) model. The slot
also keeps the fingerprint the store records, as this process last saw or wrote it: a
write with a later revision of the encoder records that revision in its own
transaction (:meth:`EncoderSlot.adopt`), and the slot moves once that write commits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from latestore.encoders import Encoder, superseded_by
from latestore.errors import EncoderMismatchError
from latestore.store.encoded import pages_not_encoded_by
from latestore.store.schema import StoreRow

if TYPE_CHECKING:
    from latestore.store.database import WriteTransaction

log = logging.getLogger("latestore")


class EncoderSlot:
    """Holds the encoder (or what loads it) and the fingerprint the store records."""

    def __init__(
        self, engine: Engine, encoder: Encoder | Callable[[], Encoder], fingerprint: str
    ) -> None:
        self._engine = engine
        self._encoder = encoder if isinstance(encoder, Encoder) else None
        self._load = encoder if not isinstance(encoder, Encoder) else None
        self._lock = threading.Lock()
        self.fingerprint = fingerprint
        if self._encoder is not None:
            self._take(self._encoder)

    def get(self) -> Encoder:
        """The encoder, loading the recorded one on first use.

        Raises EncoderMismatchError if the recorded encoder cannot be loaded or no
        longer matches the store's fingerprint.
        """
        with self._lock:
            if self._encoder is None:
                assert self._load is not None
                self._encoder = self._take(self._load())
            return self._encoder

    @property
    def loaded(self) -> Encoder | None:
        """The encoder if it is loaded already (nothing is loaded to answer)."""
        return self._encoder

    def replace(self, encoder: Encoder) -> None:
        """Use ``encoder`` from now on; the store records its fingerprint already (the
        re-encode that made every page with it recorded it last)."""
        with self._lock:
            self._encoder = encoder
        self.fingerprint = encoder.fingerprint

    def adopt(self, tx: WriteTransaction, fingerprints: set[str]) -> None:
        """In a write transaction about to store vectors made by ``fingerprints``: refuse
        them if the store no longer records that encoder, or record a later revision of
        it in the same transaction (the slot follows once the write commits)."""
        # The encoder made these vectors, so it is loaded: its earlier revisions.
        earlier = superseded_by(self.get()) if fingerprints else ()
        adopted = check_encoded_with(tx.session, fingerprints, earlier)
        if adopted is not None:
            tx.on_commit(lambda: setattr(self, "fingerprint", adopted))

    def _take(self, encoder: Encoder) -> Encoder:
        """Warn if ``encoder`` is a later revision of the store's (encoder_for let it
        through). Nothing is written: queries encode alike in both revisions, and the
        store records the new one with its first write (:meth:`adopt`) or re-encode."""
        if encoder.fingerprint != self.fingerprint:
            with Session(self._engine) as session:
                pending = pages_not_encoded_by(session, encoder.fingerprint)
            note = getattr(encoder, "revision_note", "") or "a latestore fix changed its vectors"
            log.warning(
                "latestore: this store was encoded by an earlier revision of %s (%s); %d "
                "pages keep their old vectors until `latestore reindex --re-encode` "
                "(Store.reencode, with the store's window settings) re-encodes them",
                encoder.name,
                note,
                pending,
            )
        return encoder


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

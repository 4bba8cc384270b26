"""The public Store: add, search, update and delete pages of late-interaction vectors.

A thin facade over three owners of state: the :class:`~latestore.store.database.Database`
(SQL, and the one write entry point that applies each commit to the derived index),
the :class:`~latestore.store.derived_index.DerivedIndex` and the
:class:`~latestore.store.encoder_slot.EncoderSlot`. The work is done by modules with
one job each: :mod:`~latestore.store.page_writer` (adds, upserts, deletes),
:mod:`~latestore.store.searcher` (one search call), :mod:`~latestore.store.reader`
(reading pages back), :mod:`~latestore.store.page_encoding` (pages and queries into
vectors), :mod:`~latestore.store.sync` and :mod:`~latestore.store.maintenance` (the
derived index and its upkeep), and :mod:`~latestore.store.opening` (open and migrate).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self, overload

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, make_url
from sqlalchemy.exc import DatabaseError, InterfaceError

from latestore.deprecation import warn_deprecated
from latestore.encoders import Encoder
from latestore.encoders.windows import WindowSettings
from latestore.errors import InvalidInputError, InvalidVectorError, StoreUnavailableError
from latestore.models import Page, SearchHit, StoreConfig, StoredPage, StoreStats, WrittenPages
from latestore.store import page_encoding, page_writer, reader, searcher
from latestore.store.database import Database
from latestore.store.derived_index import DerivedIndex
from latestore.store.encoded import ProgressCallback
from latestore.store.encoder_slot import EncoderSlot
from latestore.store.fulltext import engine_analyzer, for_dialect
from latestore.store.opening import (
    check_options,
    create_row,
    encoder_for,
    merged_config,
    migrate,
    new_store_config,
    new_store_encoder,
    new_store_row,
    stored_row,
)
from latestore.store.page_encoding import Query
from latestore.store.reencode import (
    ReencodeReport,
    encoding_summary,
    reencode_store,
    target_encoder,
)
from latestore.store.request import HybridOptions, SearchTuning, search_request
from latestore.store.schema import StoreRow
from latestore.store.sql import default_index_dir, make_engine, sqlite_file, to_url
from latestore.store.sync import IndexSync
from latestore.store.validation import MAX_PAGE_ID, checked_external_ids, checked_ids

log = logging.getLogger("latestore")

MAX_K = searcher.MAX_K
STREAM_BATCH = page_writer.STREAM_BATCH
QUERY_TIME_FIELDS = searcher.QUERY_TIME_FIELDS


class Store:
    """A late-interaction retrieval store.

    Examples
    --------
    >>> from latestore import Store, Page
    >>> with Store.open("pages.db") as store:                       # doctest: +SKIP
    ...     store.add_pages([Page(text="ColBERT scores with MaxSim.")])
    ...     hits = store.search("how does ColBERT score?", k=5)
    """

    # What keeps the derived index in step with SQL. A distributed coordinator swaps in
    # one that follows the change number and holds no vectors (latestore.distributed).
    sync_class: type[IndexSync] = IndexSync

    def __init__(
        self,
        engine: Engine,
        encoder: Encoder | Callable[[], Encoder],
        row: StoreRow,
        config: StoreConfig,
        index_dir: Path | None,
        *,
        load_index: bool = True,
        index: IndexSource | None = None,
    ) -> None:
        # Three owners of the store's state: the encoder slot, the derived index, and the
        # database (whose one write entry point applies each commit to the index).
        self._encoders = EncoderSlot(engine, encoder, row.encoder_fingerprint)
        self._db = Database(
            engine,
            config,
            row.dim,
            row.vector_dtype,
            for_dialect(engine.dialect.name, config.storage.text_analyzer),
            self._derived_index(engine, row, config, index_dir, index),
        )
        self.encoder_name = row.encoder_name
        self.dim = row.dim
        self.store_uuid = row.store_uuid
        self._engine = engine
        if load_index:
            self._db.derived.sync  # noqa: B018 - load now: open reports damage, searches start warm

    @classmethod
    def _derived_index(
        cls,
        engine: Engine,
        row: StoreRow,
        config: StoreConfig,
        index_dir: Path | None,
        source: IndexSource | None = None,
    ) -> DerivedIndex:
        """The derived index this store ranks with, not loaded yet (it loads on first
        use): the local one, or what ``source`` builds (``Store.open(index=...)``, e.g. a
        ``latestore.distributed.ShardedIndex``)."""
        if source is None:
            return DerivedIndex(
                functools.partial(_load_index, engine, row, index_dir, cls.sync_class), config
            )

        def load(settings: StoreConfig) -> tuple[IndexSync, str]:
            return source.load(engine, row, settings, index_dir)

        return DerivedIndex(load, config)

    @property
    def config(self) -> StoreConfig:
        """The store's settings (recorded ones merged with those given at open)."""
        return self._db.config

    @config.setter
    def config(self, value: StoreConfig) -> None:
        self._db.config = value

    @property
    def opened_from(self) -> str:
        """How the derived index was loaded: "snapshot", "snapshot+replay" or "rebuilt"."""
        derived = self._db.derived
        derived.sync  # noqa: B018 - loads it if the store was opened without it
        assert derived.opened_from is not None
        return derived.opened_from

    @property
    def _sync(self) -> IndexSync:
        return self._db.derived.sync

    @property
    def encoder(self) -> Encoder:
        """The store's encoder, loaded on first use when Store.open was not given one.

        Raises EncoderMismatchError if the recorded encoder cannot be loaded or no
        longer matches the store's fingerprint.
        """
        return self._encoders.get()

    @property
    def encoder_fingerprint(self) -> str:
        """The encoder fingerprint the store records."""
        return self._encoders.fingerprint

    @encoder_fingerprint.setter
    def encoder_fingerprint(self, value: str) -> None:
        self._encoders.fingerprint = value

    # -- lifecycle -------------------------------------------------------------
    @classmethod
    def open(
        cls,
        target: str | Path,
        encoder: Encoder | str | Path | None = None,
        *,
        config: StoreConfig | None = None,
        index_dir: str | Path | None = None,
        encoder_options: Mapping[str, Any] | None = None,
        load_index: bool = True,
        index: IndexSource | None = None,
    ) -> Store:
        """Open (creating if needed) the store at a SQLite path or SQLAlchemy URL.

        ``encoder`` defaults to the offline MiniLM model for a new store, and to the
        encoder recorded in the store for an existing one, loaded when first needed (a
        text query or new pages). Opening with an encoder whose fingerprint differs from
        the store's raises EncoderMismatchError. ``encoder_options`` (``device``,
        ``dtype``, ``batch_size``...) go to the loader whenever latestore loads the
        encoder itself: by name, by folder, or the store's recorded one.

        ``load_index=False`` defers loading the derived index (every page's vectors, or
        a snapshot) to the first call that needs it: a search, ``stats`` or
        ``reindex``. Adds, deletes and reads by id then touch SQL only, which is what
        the CLI's delete does.

        ``index`` builds the derived index in place of the local one: a
        ``latestore.distributed.ShardedIndex`` keeps it on Ray shard actors.
        """
        url = to_url(target)
        engine = make_engine(url)
        if config is not None:  # a new store's analyzer must exist on this backend
            engine_analyzer(engine.dialect.name, config.storage.text_analyzer)
        resolved: Encoder | Callable[[], Encoder]
        try:
            migrate(engine)
            row = stored_row(engine)
            created = False
            if row is None:
                resolved = new_store_encoder(encoder, encoder_options)
                cfg = new_store_config(config)
                mine = new_store_row(resolved, cfg)
                row = create_row(engine, mine)
                created = row.store_uuid == mine.store_uuid
            if not created:  # existing, or created by another process a moment ago
                recorded = row
                options = dict(encoder_options or {})
                check_options(row, options)  # now, not when the model loads
                resolved = (
                    encoder_for(row, encoder, options)
                    if encoder is not None
                    else lambda: encoder_for(recorded, None, options)
                )
                cfg = merged_config(row, config)
            directory = Path(index_dir) if index_dir is not None else default_index_dir(url)
            return cls(engine, resolved, row, cfg, directory, load_index=load_index, index=index)
        except (DatabaseError, InterfaceError) as exc:
            engine.dispose()
            shown = make_url(url).render_as_string(hide_password=True)
            raise StoreUnavailableError(
                f"cannot use {shown} as a store: {exc.orig or exc}"
            ) from exc
        except BaseException:
            engine.dispose()
            raise

    def close(self) -> None:
        """Snapshot the derived index and release the database."""
        self._db.close()

    @property
    def closed(self) -> bool:
        return self._db.closed

    @property
    def url(self) -> str:
        """The database's SQLAlchemy URL, its password hidden."""
        return self._db.engine.url.render_as_string(hide_password=True)

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, or None for a server database."""
        return sqlite_file(self._db.engine.url.render_as_string(hide_password=False))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writes ----------------------------------------------------------------
    def add_pages(
        self,
        pages: Iterable[Page],
        *,
        batch_size: int | None = None,
        on_progress: ProgressCallback | None = None,
        upsert: bool | None = None,
        commit_every: int | None = None,
    ) -> WrittenPages:
        """Encode and store new pages; returns their page ids, in order, as a
        :class:`~latestore.WrittenPages` list that also counts added/updated/unchanged.

        Pages whose ``external_id`` is already stored: ``upsert=False`` refuses them
        (DuplicateExternalIdError, nothing written); ``upsert=True`` is
        :meth:`upsert_pages`. Left out, such pages are still replaced (or kept when
        unchanged) as in earlier releases, with a DeprecationWarning: the next release
        refuses them. Call :meth:`upsert_pages` to replace pages on purpose.

        Atomicity and memory:

        * a list or tuple is written in **one transaction**: an invalid page aborts the
          whole call and nothing is written. Its vectors are all held until the commit.
        * any other iterable (a generator, a reader over a file) is **streamed**: read,
          encoded and committed ``commit_every`` pages at a time (default
          ``STREAM_BATCH``), so memory is bounded by the batch, not the input. An error
          stops the call; the batches before it stay committed, and re-running the same
          input skips them (identical pages are not encoded again).
        * ``commit_every`` given with a list streams it the same way.

        ``on_progress(done, total)`` is called as pages are encoded; when streaming,
        ``total`` is the number of pages read so far.
        """
        return self._write(pages, batch_size, on_progress, upsert, commit_every)

    def upsert_pages(
        self,
        pages: Iterable[Page],
        *,
        batch_size: int | None = None,
        on_progress: ProgressCallback | None = None,
        commit_every: int | None = None,
    ) -> WrittenPages:
        """Add pages, replacing in place (same page id) those whose ``external_id`` is
        stored; unchanged pages (content and metadata) are left alone and not encoded.
        Atomicity and memory as :meth:`add_pages`."""
        return self._write(pages, batch_size, on_progress, True, commit_every)

    def _write(
        self,
        pages: Iterable[Page],
        batch_size: int | None,
        on_progress: ProgressCallback | None,
        upsert: bool | None,
        commit_every: int | None,
    ) -> WrittenPages:
        self._db.check_open()
        if commit_every is not None and (
            isinstance(commit_every, bool) or not isinstance(commit_every, int) or commit_every < 1
        ):
            raise InvalidInputError(
                f"commit_every must be a positive integer, got {commit_every!r}"
            )
        if isinstance(pages, list | tuple) and commit_every is None:
            return page_writer.add_batch(
                self._db, self._encoders, list(pages), batch_size, on_progress, upsert
            )
        try:
            stream = iter(pages)
        except TypeError as exc:
            raise InvalidInputError(f"add_pages takes an iterable of Page objects: {exc}") from exc
        size = commit_every or STREAM_BATCH
        return page_writer.add_stream(
            self._db, self._encoders, stream, size, batch_size, on_progress, upsert
        )

    def delete(
        self,
        ids: Iterable[int] = (),
        *,
        external_ids: Iterable[str] = (),
        filter: Mapping[str, Any] | None = None,
    ) -> int:
        """Delete pages by id and/or external id; returns how many are gone.

        One transaction. Ids that are not stored are ignored. ``filter`` is
        deprecated here: use :meth:`delete_where`.
        """
        self._db.check_open()
        page_ids = [i for i in checked_ids(ids, "delete") if 0 < i <= MAX_PAGE_ID]
        wanted_external = checked_external_ids(external_ids, "delete")
        if filter is not None:
            warn_deprecated("delete(filter=...) is deprecated; use delete_where(filter)")
            _check_filter_for_delete(filter)
        return page_writer.delete_selected(self._db, page_ids, wanted_external, filter)

    def delete_where(self, filter: Mapping[str, Any]) -> int:
        """Delete the pages matching ``filter``; returns how many are gone.

        The filter is evaluated inside the delete's own transaction, so the pages that
        match it when the delete commits are the ones removed. An empty filter is
        refused rather than taken to mean every page.
        """
        self._db.check_open()
        _check_filter_for_delete(filter)
        return page_writer.delete_selected(self._db, [], [], filter)

    # -- search ----------------------------------------------------------------
    @overload
    def search(
        self,
        query: str | npt.NDArray[np.floating],
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        *,
        exhaustive: bool = False,
        mode: str | None = None,
        phrase: str | None = None,
        lexical_text: str | None = None,
        tuning: SearchTuning | None = None,
        hybrid: HybridOptions | None = None,
        **deprecated: Any,
    ) -> list[SearchHit]: ...

    @overload
    def search(
        self,
        query: Sequence[Query],
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        *,
        exhaustive: bool = False,
        mode: str | None = None,
        phrase: str | None = None,
        lexical_text: Sequence[str | None] | None = None,
        tuning: SearchTuning | None = None,
        hybrid: HybridOptions | None = None,
        **deprecated: Any,
    ) -> list[list[SearchHit]]: ...

    def search(
        self,
        query: Query | Sequence[Query],
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        *,
        exhaustive: bool = False,
        mode: str | None = None,
        phrase: str | None = None,
        lexical_text: str | Sequence[str | None] | None = None,
        tuning: SearchTuning | None = None,
        hybrid: HybridOptions | None = None,
        **deprecated: Any,
    ) -> list[SearchHit] | list[list[SearchHit]]:
        """Rank pages for one query: its hits, best first.

        A query is text or an ``(n_tokens, dim)`` array. ``filter`` restricts the pages
        before ranking (see :mod:`latestore.store.filters`). ``exhaustive=True`` scores
        every allowed page exactly: the ground truth the approximate pipeline is tuned
        against. ``mode`` is ``"maxsim"``, ``"lexical"`` (the full-text index) or
        ``"hybrid"`` (both, fused); default: the ``search_mode`` setting. ``phrase`` is a
        phrase every hit must contain. ``lexical_text`` gives the words of a query given
        as vectors. See :mod:`latestore.store.search_modes`.

        ``tuning`` (:class:`~latestore.SearchTuning`: ``k_per_token``, ``nprobe``,
        ``n_rerank``, ``widen_above_tokens``, ``exhaustive_max_tokens``,
        ``device_exact``, ``device_precision``) and ``hybrid``
        (:class:`~latestore.HybridOptions`: ``fusion``, ``lexical_weight``, ``rrf_k``,
        ``depth``) change the store's query-time settings for this call. Several
        queries at once: :meth:`search_many`. Deprecated spellings (``exact=``, the
        settings as loose keywords, ``search_mode=``, a list of queries) still work,
        with a warning (docs/deprecations.md).
        """
        if not isinstance(query, str | np.ndarray | Iterable):
            raise InvalidInputError(f"a query is text or an array of vectors, got {query!r:.80}")
        if isinstance(query, np.ndarray) and query.ndim < 2:
            raise InvalidVectorError(
                f"query vectors must be 2-D (tokens, dim), got shape {query.shape}"
            )
        texts = [lexical_text] if isinstance(lexical_text, str) else lexical_text
        options: dict[str, Any] = {
            "exhaustive": exhaustive,
            "mode": mode,
            "phrase": phrase,
            "lexical_text": texts,
            "tuning": tuning,
            "hybrid": hybrid,
        }
        if isinstance(query, str) or (isinstance(query, np.ndarray) and query.ndim == 2):
            return self.search_many([query], k, filter, **options, **deprecated)[0]
        warn_deprecated("search() with several queries is deprecated; use search_many()")
        return self.search_many(list(query), k, filter, **options, **deprecated)

    def search_many(
        self,
        queries: Sequence[Query],
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        *,
        exhaustive: bool = False,
        mode: str | None = None,
        phrase: str | None = None,
        lexical_text: Sequence[str | None] | None = None,
        tuning: SearchTuning | None = None,
        hybrid: HybridOptions | None = None,
        **deprecated: Any,
    ) -> list[list[SearchHit]]:
        """Rank pages for each query, in one pass over the index: a list of hits per query.

        Arguments as :meth:`search`; ``lexical_text`` has one entry per query.
        """
        self._db.check_open()
        request = search_request(
            self._db.config,
            queries,
            k,
            filter,
            exhaustive=exhaustive,
            mode=mode,
            phrase=phrase,
            lexical_text=lexical_text,
            tuning=tuning,
            hybrid=hybrid,
            legacy=deprecated,
        )
        return searcher.search(self._db, self._encoders, request)

    # -- reads -----------------------------------------------------------------
    def page_ids(self, filter: Mapping[str, Any] | None = None) -> list[int]:
        """Ids of the stored pages matching ``filter`` (every page without one), ascending."""
        self._db.check_open()
        return reader.page_ids(self._db, filter)

    def pages(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        document_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[StoredPage]:
        """Stored pages in page-id order: those matching ``filter`` and ``document_id``,
        ``limit`` of them after skipping ``offset``. Selected and paged in SQL."""
        self._db.check_open()
        return reader.list_pages(self._db, filter, document_id, limit, offset)

    @overload
    def get(self, page_id: int) -> StoredPage: ...

    @overload
    def get(self, page_id: Iterable[int]) -> list[StoredPage]: ...

    def get(self, page_id: int | Iterable[int]) -> StoredPage | list[StoredPage]:
        """The page with this id; PageNotFoundError if it is not stored.

        A list of ids still works, deprecated: use :meth:`get_many`.
        """
        self._db.check_open()
        if not isinstance(page_id, Iterable) or isinstance(page_id, str | bytes):
            return reader.get_many(self._db, [page_id], "get")[0]  # type: ignore[list-item]
        warn_deprecated("get() with several ids is deprecated; use get_many()")
        return reader.get_many(self._db, page_id, "get")  # type: ignore[arg-type]

    def get_many(self, page_ids: Iterable[int]) -> list[StoredPage]:
        """Pages by id, in the order asked; PageNotFoundError (``.page_ids``) if any is
        missing."""
        self._db.check_open()
        return reader.get_many(self._db, page_ids)  # type: ignore[arg-type]

    def get_by_external_id(self, external_id: str) -> StoredPage:
        """The page with this external id; PageNotFoundError if there is none."""
        self._db.check_open()
        return reader.get_by_external_ids(self._db, [external_id])[0]

    def get_by_external_ids(self, external_ids: Iterable[str]) -> list[StoredPage]:
        """Pages by external id, in the order asked; PageNotFoundError if any is missing."""
        self._db.check_open()
        return reader.get_by_external_ids(self._db, external_ids)  # type: ignore[arg-type]

    def page_vectors(self, page_id: int) -> npt.NDArray[np.float32]:
        """A page's stored token vectors, float32 ``(n_tokens, dim)``, as SQL holds them
        (int8 stores: dequantised). For export, and for explaining a ranking."""
        self._db.check_open()
        return reader.page_vectors(self._db, [page_id], "page_vectors")[0]

    def page_vectors_many(self, page_ids: Iterable[int]) -> list[npt.NDArray[np.float32]]:
        """Several pages' stored token vectors in one read, in the order asked;
        PageNotFoundError (``.page_ids``) if any is missing."""
        self._db.check_open()
        return reader.page_vectors(self._db, page_ids)  # type: ignore[arg-type]

    def scoring_windows(self, page_ids: Iterable[int]) -> dict[int, list[int]]:
        """Rows per window of the pages among ``page_ids`` that score as their best
        window (``StoreConfig.window_scoring="best"``); the others score over all rows.
        What ``latestore.explain.explain(windows=...)`` takes."""
        self._db.check_open()
        if self.config.search.window_scoring != "best":
            return {}
        from latestore.store.sync import window_rows_of

        return window_rows_of(self._db.engine, list(page_ids))

    def set_window_scoring(self, mode: Literal["best", "union"]) -> None:
        """Record how pages of several windows score (``StoreConfig.window_scoring``):
        later opens use it, and this store does from now on."""
        self._db.check_open()
        from latestore.store.window_backfill import record_window_scoring

        record_window_scoring(self._db, mode)

    def encode_queries(self, queries: Sequence[str]) -> list[npt.NDArray[np.float32]]:
        """Query texts as search encodes them: checked float32 ``(n_tokens, dim)`` arrays,
        one batch. Pass them back to :meth:`search` to rank without encoding again."""
        self._db.check_open()
        if isinstance(queries, str) or not all(isinstance(q, str) for q in queries):
            raise InvalidInputError("encode_queries takes a list of query texts")
        return page_encoding.query_vectors(self._encoders, self.dim, list(queries))

    def count(self) -> int:
        """Pages in the store, counted in SQL."""
        self._db.check_open()
        return reader.count(self._db)

    def image(self, page_id: int) -> bytes | None:
        """The stored image bytes of a page (or None for text pages)."""
        self._db.check_open()
        return reader.image(self._db, page_id)

    def stats(self) -> StoreStats:
        """Pages, tokens, encoder, index and where ranking runs."""
        self._db.check_open()
        derived = self._db.derived
        with derived.lock.write():
            derived.sync.catch_up()
            stats = reader.stats(self._db, self.encoder_name, self.encoder_fingerprint)
            return derived.sync.describe(stats)

    # -- maintenance -----------------------------------------------------------
    def reindex(self) -> None:
        """Rebuild the derived candidate index from the vectors in SQL and snapshot it.

        Raises IndexSnapshotError when the snapshot cannot be written (the rebuilt index
        still serves this process): saving it is what reindex is asked for.
        """
        self._db.check_open()
        derived = self._db.derived
        with derived.lock.write():
            sync = derived.sync
            sync.catch_up()
            sync.rebuild()
            sync.save(strict=True)

    def reencode(
        self,
        windowing: WindowSettings | Literal["current"] | None = None,
        *,
        batch_size: int = 256,
        on_progress: ProgressCallback | None = None,
    ) -> ReencodeReport:
        """Re-encode every page with new window settings (default: windows on, the
        library's defaults; ``"current"``: the store's own, as after a new encoder
        revision), ``batch_size`` pages per transaction; then record them.

        Resumable: after a crash, the same call re-encodes only the pages not yet done.
        Pages stored with caller-given vectors are kept. See :mod:`latestore.store.reencode`.
        """
        self._db.check_open()
        target = target_encoder(self.encoder, windowing)
        report = reencode_store(
            self._db,
            target,
            self.encoder_fingerprint,
            batch_size=batch_size,
            on_progress=on_progress,
        )
        from latestore.store.window_backfill import record_window_rows

        report.pages_windows_recorded = record_window_rows(self._db, target)
        self._encoders.replace(target)
        report.summary = self.encoding()
        return report

    def text_analyzer(self) -> str:
        """The full-text analyzer of page text, as this backend runs it."""
        self._db.check_open()
        return self._db.lexical.describe()

    def encoding(self) -> dict[str, Any]:
        """Window settings and what encoding cut: pages truncated, tokens dropped."""
        self._db.check_open()
        # A later encoder revision, loaded but not yet recorded by a write, counts its
        # own pages as current (see EncoderSlot).
        loaded = self._encoders.loaded
        with self._db.session() as session:
            return encoding_summary(session, None if loaded is None else loaded.fingerprint)


class IndexSource(Protocol):
    """Builds a store's derived index and fills it (``Store.open(..., index=...)``)."""

    def load(
        self, engine: Engine, row: StoreRow, config: StoreConfig, index_dir: Path | None
    ) -> tuple[IndexSync, str]:
        """The synced index, and how it was loaded (as ``Store.opened_from`` reports)."""
        ...


def _load_index(
    engine: Engine,
    row: StoreRow,
    index_dir: Path | None,
    sync_class: type[IndexSync],
    config: StoreConfig,
) -> tuple[IndexSync, str]:
    """Build the derived index and fill it from SQL (and a snapshot)."""
    from latestore.index.late_index import LateInteractionIndex  # torch: only when needed

    if config.storage.tier != "full":
        from latestore.store.compact import load_compact_index

        return load_compact_index(
            engine, row.dim, row.store_uuid, row.vector_dtype, config, index_dir
        )
    scratch = _scratch_dir(index_dir) if config.memory.vector_cache == "disk" else None
    index = LateInteractionIndex.from_config(row.dim, row.vector_dtype, config, scratch)
    sync = sync_class(engine, index, row.store_uuid, row.vector_dtype, index_dir)
    return sync, sync.load()


def _check_filter_for_delete(filter: Mapping[str, Any]) -> None:
    if not isinstance(filter, Mapping):
        raise InvalidInputError(f"a filter is a mapping, got {type(filter).__name__}")
    if not filter:
        raise InvalidInputError("an empty filter would delete every page; refusing")


def _scratch_dir(index_dir: Path | None) -> Path | None:
    """The index folder for mapped vector files, or the system temp folder if unusable."""
    if index_dir is None:
        return None
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("latestore: vector scratch files go to the temp folder (%s)", exc)
        return None
    return index_dir

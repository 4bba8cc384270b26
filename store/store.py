"""The public Store: add, search, update and delete pages of late-interaction vectors."""

from __future__ import annotations

import functools
import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError
from sqlalchemy import ColumnElement, Engine, func, make_url, select
from sqlalchemy.exc import DatabaseError, InterfaceError, SQLAlchemyError
from sqlalchemy.orm import Session

from latestore.encoders import Encoder, PageContent
from latestore.encoders.windows import WindowSettings
from latestore.errors import (
    DuplicateExternalIdError,
    EncoderError,
    InvalidInputError,
    InvalidVectorError,
    PageNotFoundError,
    StoreBusyError,
    StoreClosedError,
    StoreUnavailableError,
)
from latestore.filters import FilterCompiler
from latestore.fulltext import LexicalSearch, engine_analyzer
from latestore.hits import hydrate
from latestore.index.codec import as_stored
from latestore.index.late_index import LateInteractionIndex
from latestore.models import Page, SearchHit, StoreConfig, StoredPage
from latestore.opening import (
    create_row,
    encoder_for,
    merged_config,
    migrate,
    new_store_encoder,
    new_store_row,
    stored_row,
)
from latestore.reencode import (
    PRECOMPUTED,
    PageEncoding,
    ReencodeReport,
    check_encoded_with,
    encode_counted,
    encoding_summary,
    reencode_store,
    target_encoder,
)
from latestore.rwlock import ReadWriteLock
from latestore.schema import MetadataKeyRow, PageRow, StoreRow
from latestore.search_modes import ModeSearch, as_hits
from latestore.sql import default_index_dir, make_engine, to_url
from latestore.sync import IndexSync
from latestore.validation import (
    MAX_PAGE_ID,
    check_query_texts,
    check_unique_external_ids,
    checked_external_ids,
    checked_ids,
    checked_vectors,
)
from latestore.writes import (
    PreparedPage,
    chunks,
    delete_pages,
    next_change,
    prune_changes,
    write_pages,
)

log = logging.getLogger("latestore")

Query = str | npt.NDArray[np.floating]
ProgressCallback = Callable[[int, int], None]
MAX_K = 10_000
# Pages per transaction when add_pages streams an iterable.
STREAM_BATCH = 256
QUERY_TIME_FIELDS = (
    "k_per_token",
    "nprobe",
    "n_rerank",
    "exhaustive_max_tokens",
    "device_exact",
    "device_precision",
    "search_mode",
    "fusion",
    "lexical_weight",
    "rrf_k",
    "hybrid_depth",
)


class Store:
    """A late-interaction retrieval store.

    Examples
    --------
    >>> from latestore import Store, Page
    >>> with Store.open("pages.db") as store:                       # doctest: +SKIP
    ...     store.add_pages([Page(text="ColBERT scores with MaxSim.")])
    ...     hits = store.search("how does ColBERT score?", k=5)
    """

    def __init__(
        self,
        engine: Engine,
        encoder: Encoder | Callable[[], Encoder],
        row: StoreRow,
        config: StoreConfig,
        index_dir: Path | None,
    ) -> None:
        self._engine = engine
        # A store opened without an encoder loads its recorded one on first use: deleting,
        # listing or searching by vectors never pays for a (possibly multi-GB) model.
        self._encoder = encoder if isinstance(encoder, Encoder) else None
        self._load_encoder = encoder if not isinstance(encoder, Encoder) else None
        self._encoder_lock = threading.Lock()
        self.encoder_name = row.encoder_name
        self.encoder_fingerprint = row.encoder_fingerprint
        self.config = config
        self.dim = row.dim
        self.store_uuid = row.store_uuid
        # _index_lock guards the in-memory index: searches share it, updates take it
        # alone. _write_lock serialises this process's SQL write transactions; it is
        # separate so a writer queued behind another process's write lock (up to the
        # busy timeout) does not stall searches here.
        self._index_lock = ReadWriteLock()
        self._write_lock = threading.Lock()
        self._closed = False
        memory_dtype = config.memory_dtype or row.vector_dtype
        index = LateInteractionIndex(
            row.dim,
            memory_dtype,
            config.index_params(),
            vectors_on_disk=config.vector_cache == "disk",
            scratch_dir=_scratch_dir(index_dir) if config.vector_cache == "disk" else None,
            candidate_search=config.candidate_search,
            device_budget_bytes=config.device_budget_mb << 20,
            device_memory_share=config.device_memory_share,
        )
        self._sync = IndexSync(engine, index, row.store_uuid, row.vector_dtype, index_dir)
        self._lexical = LexicalSearch(engine.dialect.name, config.text_analyzer)
        self.opened_from = self._sync.load()

    @property
    def encoder(self) -> Encoder:
        """The store's encoder, loaded on first use when Store.open was not given one.

        Raises EncoderMismatchError if the recorded encoder cannot be loaded or no
        longer matches the store's fingerprint.
        """
        with self._encoder_lock:
            if self._encoder is None:
                assert self._load_encoder is not None
                self._encoder = self._load_encoder()
            return self._encoder

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
    ) -> Store:
        """Open (creating if needed) the store at a SQLite path or SQLAlchemy URL.

        ``encoder`` defaults to the offline MiniLM model for a new store, and to the
        encoder recorded in the store for an existing one, loaded when first needed (a
        text query or new pages). Opening with an encoder whose fingerprint differs from
        the store's raises EncoderMismatchError. ``encoder_options`` (``device``,
        ``dtype``, ``batch_size``...) go to the loader whenever latestore loads the
        encoder itself: by name, by folder, or the store's recorded one.
        """
        url = to_url(target)
        engine = make_engine(url)
        if config is not None:  # a new store's analyzer must exist on this backend
            engine_analyzer(engine.dialect.name, config.text_analyzer)
        resolved: Encoder | Callable[[], Encoder]
        try:
            migrate(engine)
            row = stored_row(engine)
            created = False
            if row is None:
                resolved = new_store_encoder(encoder, encoder_options)
                cfg = config or StoreConfig()
                mine = new_store_row(resolved, cfg)
                row = create_row(engine, mine)
                created = row.store_uuid == mine.store_uuid
            if not created:  # existing, or created by another process a moment ago
                recorded = row
                options = dict(encoder_options or {})
                resolved = (
                    encoder_for(row, encoder, options)
                    if encoder is not None
                    else lambda: encoder_for(recorded, None, options)
                )
                cfg = merged_config(row, config)
            directory = Path(index_dir) if index_dir is not None else default_index_dir(url)
            return cls(engine, resolved, row, cfg, directory)
        except (DatabaseError, InterfaceError) as exc:
            engine.dispose()
            raise StoreUnavailableError(
                f"cannot use {_shown(url)} as a store: {exc.orig or exc}"
            ) from exc
        except BaseException:
            engine.dispose()
            raise

    def close(self) -> None:
        """Snapshot the derived index and release the database."""
        with self._index_lock.write():
            if self._closed:
                return
            try:
                self._sync.save()
            finally:
                self._closed = True
                self._sync.index.vectors.clear()  # a closed store may live on: free its vectors
                self._sync.head.close()
                self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("the store is closed")

    # -- writes ----------------------------------------------------------------
    def add_pages(
        self,
        pages: Iterable[Page],
        *,
        batch_size: int | None = None,
        on_progress: ProgressCallback | None = None,
        upsert: bool = True,
        commit_every: int | None = None,
    ) -> list[int]:
        """Encode and store pages; returns their page ids, in order.

        A page whose ``external_id`` already exists replaces that page in place (same
        page id) when ``upsert`` is true, and is left untouched when its content and
        metadata are unchanged.

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
        if commit_every is not None and (
            isinstance(commit_every, bool) or not isinstance(commit_every, int) or commit_every < 1
        ):
            raise InvalidInputError(
                f"commit_every must be a positive integer, got {commit_every!r}"
            )
        if isinstance(pages, list | tuple) and commit_every is None:
            return self._add_batch(list(pages), batch_size, on_progress, upsert)
        try:
            stream = iter(pages)
        except TypeError as exc:
            raise InvalidInputError(f"add_pages takes an iterable of Page objects: {exc}") from exc
        size = commit_every or STREAM_BATCH
        return self._add_stream(stream, size, batch_size, on_progress, upsert)

    def _add_stream(
        self,
        pages: Iterator[Page],
        size: int,
        batch_size: int | None,
        on_progress: ProgressCallback | None,
        upsert: bool,
    ) -> list[int]:
        ids: list[int] = []
        seen: set[str] = set()
        while chunk := list(itertools.islice(pages, size)):
            named = [p.external_id for p in chunk if isinstance(p, Page) and p.external_id]
            repeated = seen.intersection(named)
            if repeated:
                raise DuplicateExternalIdError(
                    f"external ids repeated in one add_pages call: {sorted(repeated)[:10]} "
                    f"(the {len(ids)} pages before this batch are stored)"
                )
            seen.update(named)
            progress = None
            if on_progress is not None:
                base, read = len(ids), len(ids) + len(chunk)
                progress = functools.partial(_shifted, on_progress, base, read)
            ids += self._add_batch(chunk, batch_size, progress, upsert)
        return ids

    def _add_batch(
        self,
        items: list[Page],
        batch_size: int | None,
        on_progress: ProgressCallback | None,
        upsert: bool,
    ) -> list[int]:
        """One transaction: all of ``items`` or nothing."""
        self._check_open()
        for item in items:
            if not isinstance(item, Page):
                raise InvalidInputError(f"add_pages takes Page objects, got {type(item).__name__}")
        check_unique_external_ids([p.external_id for p in items])
        hashes = [p.content_hash() for p in items]
        # A first look, outside the write lock, only decides what to encode: encoding
        # can take minutes, and other writers must not wait for it.
        with Session(self._engine) as session:
            existing = _existing(session, items)
        if not upsert:
            _refuse_taken(existing)
        vectors: dict[int, PageEncoding] = {}
        todo = _changed(items, hashes, existing)
        if not todo:
            # Everything is stored identically: a read-only call, complete as of that
            # read, so it need not wait for the write lock.
            if on_progress is not None:
                on_progress(len(items), len(items))
            return [existing[p.external_id][0] for p in items]
        while True:
            self._encode_into(vectors, items, todo, batch_size, on_progress)
            with self._write_lock, Session(self._engine) as session:
                session.begin()
                session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
                change_no = next_change(session)  # the write lock, on PostgreSQL too
                # The plan that counts is made under the lock: another writer may have
                # added, changed or deleted these pages since the first look.
                existing = _existing(session, items)
                if not upsert:
                    _refuse_taken(existing)
                todo = _changed(items, hashes, existing)
                if any(i not in vectors for i in todo):
                    continue  # pages changed meanwhile: encode them with the lock released
                ids: list[int | None] = [
                    existing[p.external_id][0] if p.external_id in existing else None for p in items
                ]
                if not todo:
                    break  # everything is stored already; the rollback returns the change no
                prepared = [
                    PreparedPage(
                        page=items[i],
                        vectors=vectors[i].vectors,
                        content_hash=hashes[i],
                        existing_id=ids[i],
                        storage_dtype=self._sync.dtype,
                        text_tokens=vectors[i].text_tokens,
                        tokens_dropped=vectors[i].tokens_dropped,
                        encoded_with=vectors[i].encoded_with,
                    )
                    for i in todo
                ]
                encoded = {p.encoded_with or "" for p in prepared} - {PRECOMPUTED}
                check_encoded_with(session, encoded)
                new_ids = write_pages(session, prepared, change_no)
                session.commit()
            with self._index_lock.write():
                # The index must hold what SQL holds (int8 is lossy), exactly as a
                # reopen would load it, or results would shift after a restart.
                stored = [as_stored(p.vectors, self._sync.dtype) for p in prepared]
                self._sync.applied_own(change_no, new_ids, stored)
                for i, page_id in zip(todo, new_ids, strict=True):
                    ids[i] = page_id
                self._maybe_snapshot()
            self._maybe_prune_changes()
            break
        if on_progress is not None:
            on_progress(len(items), len(items))
        return [int(i) for i in ids if i is not None]

    def delete(
        self,
        ids: Iterable[int] = (),
        *,
        external_ids: Iterable[str] = (),
        filter: Mapping[str, Any] | None = None,
    ) -> int:
        """Delete pages by id, external id and/or filter; returns how many are gone.

        The three selections are united. A filter is evaluated inside the delete's own
        transaction, so pages that match it when the delete commits are the ones removed;
        an empty filter is refused rather than taken to mean every page.
        """
        self._check_open()
        page_ids = [i for i in checked_ids(ids, "delete") if 0 < i <= MAX_PAGE_ID]
        wanted_external = checked_external_ids(external_ids, "delete")
        if filter is not None and not filter:
            raise InvalidInputError("an empty filter would delete every page; refusing")
        with self._write_lock, Session(self._engine) as session:
            session.begin()
            session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
            # The write lock first (PostgreSQL's is the ls_store row), so the selection
            # below sees every write committed before this delete.
            change_no = next_change(session)
            for chunk in chunks(wanted_external):
                query = select(PageRow.id).where(PageRow.external_id.in_(chunk))
                page_ids += session.execute(query).scalars().all()
            if filter is not None:
                page_ids += self._matching(session, filter)
            removed = delete_pages(session, sorted(set(page_ids)), change_no)
            if not removed:
                return 0  # nothing to delete: closing rolls the change number back
            session.commit()
        with self._index_lock.write():
            self._sync.applied_own(change_no, removed, [])
            self._maybe_snapshot()
        self._maybe_prune_changes()
        return len(removed)

    def _maybe_snapshot(self) -> None:
        total = self._sync.index.vectors.total_tokens
        due = max(self.config.snapshot_every_tokens, self.config.snapshot_every_fraction * total)
        if self._sync.tokens_since_snapshot >= due:
            self._sync.save()

    def _maybe_prune_changes(self) -> None:
        """Bound the change log: keep the last ``change_log_keep`` changes, and every
        change since the snapshot that the next open will replay from."""
        with self._index_lock.write():
            sync = self._sync
            through = sync.applied_change - self.config.change_log_keep
            if sync.snapshot_path is not None:
                through = min(through, sync.snapshot_change)
            if through - sync.pruned_through < max(1, self.config.change_log_keep // 4):
                return
        try:
            with self._write_lock, Session(self._engine) as session, session.begin():
                session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
                prune_changes(session, through)
        except (SQLAlchemyError, StoreBusyError) as exc:
            # Housekeeping only: the write that triggered it is committed; retry next time.
            log.warning("latestore: change log not pruned this time (%s)", exc)
            return
        with self._index_lock.write():
            sync.pruned_through = max(sync.pruned_through, through)

    def _encode_into(
        self,
        vectors: dict[int, PageEncoding],
        items: list[Page],
        todo: list[int],
        batch_size: int | None,
        on_progress: ProgressCallback | None,
    ) -> None:
        """Add the checked vectors of ``items[i]`` for each ``i`` in ``todo`` not yet done."""
        missing = [i for i in todo if i not in vectors]
        if missing:
            encoded = self._vectors_for([items[i] for i in missing], batch_size, on_progress)
            vectors.update(zip(missing, encoded, strict=True))

    def _vectors_for(
        self, pages: list[Page], batch_size: int | None, on_progress: ProgressCallback | None
    ) -> list[PageEncoding]:
        dtype = self._sync.dtype
        out: list[PageEncoding | None] = [None] * len(pages)
        need = []
        for i, page in enumerate(pages):
            if page.vectors is not None:
                vectors = checked_vectors(page.vectors, self.dim, dtype, _label(page, i))
                out[i] = PageEncoding(vectors, None, None, PRECOMPUTED)
            else:
                need.append(i)
        done = len(pages) - len(need)
        if done and on_progress is not None:
            on_progress(done, len(pages))
        if not need:
            return [v for v in out if v is not None]
        size = batch_size or self.encoder.batch_size
        for start in range(0, len(need), size):
            chunk = need[start : start + size]
            contents = [_content(pages[i]) for i in chunk]
            encoded = encode_counted(self.encoder, contents)
            if len(encoded) != len(chunk):
                raise EncoderError(
                    f"encoder returned {len(encoded)} results for {len(chunk)} pages"
                )
            for i, page_encoding in zip(chunk, encoded, strict=True):
                out[i] = page_encoding.checked(self.dim, dtype, _label(pages[i], i))
            done += len(chunk)
            if on_progress is not None:
                on_progress(done, len(pages))
        return [v for v in out if v is not None]

    # -- reads -----------------------------------------------------------------
    def search(
        self,
        query: Query | Sequence[Query],
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        *,
        exhaustive: bool = False,
        mode: str | None = None,
        exact: str | None = None,
        lexical_text: str | Sequence[str | None] | None = None,
        **overrides: Any,
    ) -> Any:
        """Rank pages for one query (a list of hits) or several (a list of lists).

        A query is text or an ``(n_tokens, dim)`` array. ``filter`` restricts the pages
        before ranking (see latestore.filters). ``exhaustive=True`` scores every
        allowed page exactly: the ground truth the approximate pipeline is tuned
        against. ``overrides`` adjust query-time settings (``k_per_token``,
        ``nprobe``, ``n_rerank``, ``exhaustive_max_tokens``, ``fusion``,
        ``lexical_weight``...) for this call.

        ``mode`` is ``"maxsim"``, ``"lexical"`` (the full-text index) or ``"hybrid"``
        (both, fused); default: the ``search_mode`` setting. ``exact`` is a phrase every
        hit must contain. ``lexical_text`` gives the words of queries given as vectors.
        See latestore.search_modes.
        """
        if not isinstance(query, str | np.ndarray | Iterable):
            raise InvalidInputError(f"a query is text or an array of vectors, got {query!r:.80}")
        if isinstance(query, np.ndarray) and query.ndim < 2:
            raise InvalidVectorError(
                f"query vectors must be 2-D (tokens, dim), got shape {query.shape}"
            )
        single = isinstance(query, str) or (isinstance(query, np.ndarray) and query.ndim == 2)
        queries: list[Query] = [query] if single else list(query)  # type: ignore[list-item]
        texts = [lexical_text] if isinstance(lexical_text, str) else lexical_text
        results = self.search_many(
            queries,
            k=k,
            filter=filter,
            exhaustive=exhaustive,
            mode=mode,
            exact=exact,
            lexical_text=texts,
            **overrides,
        )
        return results[0] if single else results

    def search_many(
        self,
        queries: Sequence[Query],
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        *,
        exhaustive: bool = False,
        mode: str | None = None,
        exact: str | None = None,
        lexical_text: Sequence[str | None] | None = None,
        **overrides: Any,
    ) -> list[list[SearchHit]]:
        self._check_open()
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 < k <= MAX_K:
            raise InvalidInputError(f"k must be an integer between 1 and {MAX_K}, got {k!r}")
        params = self.config
        if overrides:
            unknown = sorted(set(overrides) - set(QUERY_TIME_FIELDS))
            if unknown:
                raise InvalidInputError(
                    f"unknown search settings {unknown}; known: {list(QUERY_TIME_FIELDS)}"
                )
            try:
                params = StoreConfig.model_validate(self.config.model_dump() | overrides)
            except ValidationError as exc:
                raise InvalidInputError(f"bad search settings: {exc}") from exc
        plan = ModeSearch.plan(mode, queries, exact, lexical_text, params, self._lexical)
        vectors = self._query_vectors(queries) if plan.needs_vectors else []
        # Filter, phrase and lexical ranking read SQL before the index catches up, so
        # every page they name is in the index by the time it ranks.
        with Session(self._engine) as session:
            clause = self._filter_clause(session, filter) if filter is not None else None
            matching = self._ids(session, clause) if clause is not None else None
            allowed = plan.allowed(session, clause, matching)
            lexical = plan.lexical_hits(session, int(k), clause)
        if self._sync.behind():  # the SQL look runs unlocked: searches never queue on it
            with self._index_lock.write():
                self._sync.catch_up()
        # Ranking shares the lock: concurrent searches run in parallel.
        with self._index_lock.read():
            self._check_open()
            rankings = plan.rank(
                self._sync.index,
                vectors,
                int(k),
                params.search_params(),
                allowed,
                exhaustive,
                lexical,
            )
        return as_hits(self._engine, rankings)

    def _query_vectors(self, queries: Sequence[Query]) -> list[npt.NDArray[np.float32]]:
        texts = [(i, q) for i, q in enumerate(queries) if isinstance(q, str)]
        out: list[npt.NDArray[np.float32] | None] = [None] * len(queries)
        if texts:
            check_query_texts([q for _, q in texts])
            encoded = self.encoder.encode_queries([q for _, q in texts])
            for (i, _), v in zip(texts, encoded, strict=True):
                out[i] = checked_vectors(v, self.dim, "float32", f"query {i}")
        for i, q in enumerate(queries):
            if out[i] is None:
                out[i] = checked_vectors(q, self.dim, "float32", f"query {i}")
        return [v for v in out if v is not None]

    @staticmethod
    def _filter_clause(session: Session, spec: Mapping[str, Any]) -> ColumnElement[bool]:
        kinds = {
            row.key: set(row.kinds.split(","))
            for row in session.execute(select(MetadataKeyRow)).scalars()
        }
        return FilterCompiler(kinds).compile(spec)

    @staticmethod
    def _ids(session: Session, clause: ColumnElement[bool]) -> list[int]:
        query = select(PageRow.id).where(clause).order_by(PageRow.id)
        return [int(i) for i in session.execute(query).scalars()]

    @classmethod
    def _matching(cls, session: Session, spec: Mapping[str, Any]) -> list[int]:
        return cls._ids(session, cls._filter_clause(session, spec))

    def page_ids(self, filter: Mapping[str, Any] | None = None) -> list[int]:
        """Ids of the stored pages matching ``filter`` (every page without one), ascending.

        The same filter language as :meth:`search`, evaluated in SQL.
        """
        self._check_open()
        with Session(self._engine) as session:
            if filter is None:
                query = select(PageRow.id).order_by(PageRow.id)
                return [int(i) for i in session.execute(query).scalars()]
            return self._matching(session, filter)

    def _hydrate(self, rankings: list[list[tuple[int, float]]]) -> list[list[SearchHit]]:
        return hydrate(self._engine, rankings)

    def _rows(self, page_ids: list[int]) -> dict[int, PageRow]:
        found: dict[int, PageRow] = {}
        with Session(self._engine) as session:
            for start in range(0, len(page_ids), 500):
                chunk = page_ids[start : start + 500]
                for row in session.execute(select(PageRow).where(PageRow.id.in_(chunk))).scalars():
                    found[row.id] = row
                session.expunge_all()
        return found

    def get(self, ids: Iterable[int]) -> list[StoredPage]:
        """Pages by id, in the order asked; PageNotFoundError if any is missing."""
        self._check_open()
        wanted = checked_ids(ids, "get")
        rows = self._rows(sorted({i for i in wanted if 0 < i <= MAX_PAGE_ID}))
        missing = [i for i in wanted if i not in rows]
        if missing:
            raise PageNotFoundError(f"no page with id {missing[:10]}")
        return [
            StoredPage(
                **_hit(rows[i], 0.0, 0).model_dump(),
                content_hash=rows[i].content_hash,
                n_tokens=rows[i].n_tokens,
            )
            for i in wanted
        ]

    def get_by_external_id(self, external_id: str) -> StoredPage:
        self._check_open()
        checked_external_ids([external_id], "get_by_external_id")
        with Session(self._engine) as session:
            page_id = session.execute(
                select(PageRow.id).where(PageRow.external_id == external_id)
            ).scalar_one_or_none()
        if page_id is None:
            raise PageNotFoundError(f"no page with external id {external_id!r}")
        return self.get([page_id])[0]

    def count(self) -> int:
        self._check_open()
        with Session(self._engine) as session:
            return int(session.execute(select(func.count(PageRow.id))).scalar_one())

    def image(self, page_id: int) -> bytes | None:
        """The stored image bytes of a page (or None for text pages)."""
        self._check_open()
        (page_id,) = checked_ids([page_id], "image")
        with Session(self._engine) as session:
            row = session.get(PageRow, page_id) if 0 < page_id <= MAX_PAGE_ID else None
            if row is None:
                raise PageNotFoundError(f"no page with id {page_id}")
            return row.image

    def stats(self) -> dict[str, Any]:
        """Pages, tokens, encoder and index description."""
        self._check_open()
        with self._index_lock.write():
            self._sync.catch_up()
            index = self._sync.index
            return {
                "pages": len(index.vectors),
                "tokens": index.vectors.total_tokens,
                "dim": self.dim,
                "vector_dtype": self._sync.dtype,
                "memory_dtype": str(index.vectors.dtype),
                "vector_cache": "disk" if index.vectors.arena is not None else "memory",
                "encoder": self.encoder_name,
                "encoder_fingerprint": self.encoder_fingerprint,
                "index": index.tokens.describe(),
                "candidate_search": "torch" if index.torch_candidates else "faiss",
                "search_plan": index.plan(self.config.search_params()),
                **_device_footprint(index),
                "change_no": self._sync.applied_change,
                "change_log_pruned_through": self._sync.pruned_through,
                "index_dir": None if self._sync.index_dir is None else str(self._sync.index_dir),
            }

    def reindex(self) -> None:
        """Rebuild the derived candidate index from the vectors in SQL and snapshot it.

        Raises IndexSnapshotError when the snapshot cannot be written (the rebuilt index
        still serves this process): saving it is what reindex is asked for.
        """
        self._check_open()
        with self._index_lock.write():
            self._sync.catch_up()
            self._sync.index.rebuild()
            self._sync.snapshot_change = -1
            self._sync.save(strict=True)

    def reencode(
        self,
        windowing: WindowSettings | None = None,
        *,
        batch_size: int = 256,
        on_progress: ProgressCallback | None = None,
    ) -> ReencodeReport:
        """Re-encode every page with new window settings (default: windows on, the
        library's defaults), ``batch_size`` pages per transaction; then record them.

        Resumable: after a crash, the same call re-encodes only the pages not yet done.
        Pages stored with caller-given vectors are kept. See :mod:`latestore.reencode`.
        """
        self._check_open()
        target = target_encoder(self.encoder, windowing)
        report = reencode_store(self, target, batch_size=batch_size, on_progress=on_progress)
        with self._encoder_lock:
            self._encoder = target
        self.encoder_fingerprint = target.fingerprint
        report.summary = self.encoding()
        return report

    def text_analyzer(self) -> str:
        """The full-text analyzer of page text, as this backend runs it."""
        return self._lexical.describe()

    def encoding(self) -> dict[str, Any]:
        """Window settings and what encoding cut: pages truncated, tokens dropped."""
        self._check_open()
        with Session(self._engine) as session:
            return encoding_summary(session)


Existing = dict[str | None, tuple[int, str, dict[str, Any]]]


def _existing(session: Session, items: list[Page]) -> Existing:
    """external id -> (page id, content hash, metadata) of the stored pages among ``items``."""
    wanted = [p.external_id for p in items if p.external_id is not None]
    found: Existing = {}
    for chunk in chunks(wanted):
        rows = session.execute(
            select(PageRow.external_id, PageRow.id, PageRow.content_hash, PageRow.meta).where(
                PageRow.external_id.in_(chunk)
            )
        )
        for external_id, page_id, content_hash, meta in rows:
            found[external_id] = (page_id, content_hash, meta)
    return found


def _refuse_taken(existing: Existing) -> None:
    taken = sorted(e for e in existing if e is not None)
    if taken:
        raise DuplicateExternalIdError(f"external ids already stored: {taken[:10]}")


def _changed(items: list[Page], hashes: list[str], existing: Existing) -> list[int]:
    """Positions of the pages that are not stored identically (content and metadata)."""
    todo = []
    for i, page in enumerate(items):
        found = existing.get(page.external_id) if page.external_id is not None else None
        if found is None or found[1] != hashes[i] or found[2] != page.metadata:
            todo.append(i)
    return todo


def _shifted(report: ProgressCallback, base: int, read: int, done: int, _total: int) -> None:
    report(base + done, read)


def _shown(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def _device_footprint(index: LateInteractionIndex) -> dict[str, Any]:
    """Where ranking runs and what the resident pages cost there."""
    device = index.device_tokens
    if device is None:
        return {"device": "cpu" if not index.device_fallback else index.device}
    held = max(1, device.ntotal)
    return {
        "device": str(device.device),
        "device_dtype": str(device.dtype).removeprefix("torch."),
        "device_bytes_per_token": device.bytes_per_row(),
        "device_resident_bytes": device.resident_bytes(),
        "device_capacity_per_token": round(device.resident_bytes() / held, 1),
    }


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


def _label(page: Page, position: int) -> str:
    return f"page {page.external_id!r}" if page.external_id else f"page #{position}"


def _content(page: Page) -> PageContent:
    image = None
    if page.image is not None or page.image_path is not None:
        from latestore.images import load_image

        source: bytes | Path = page.image if page.image is not None else page.image_path  # type: ignore[assignment]
        image = load_image(source)
    return PageContent(text=page.text, image=image)


def _hit(row: PageRow, score: float, rank: int) -> SearchHit:
    return SearchHit(
        page_id=row.id,
        score=score,
        rank=rank,
        external_id=row.external_id,
        document_id=row.document_id,
        page_number=row.page_number,
        text=row.text,
        source=row.source,
        image_path=row.image_path,
        has_image=row.image is not None or row.image_path is not None,
        metadata=dict(row.meta or {}),
    )

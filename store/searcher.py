"""One search call: encode queries, filter in SQL, rank, hydrate.

The call arrives as a :class:`~latestore.store.request.SearchRequest`, already checked
at the facade; nothing here validates it again.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from latestore.models import SearchHit
from latestore.store.database import Database
from latestore.store.encoder_slot import EncoderSlot
from latestore.store.filters import filter_clause, ids_where
from latestore.store.fulltext import LexicalHit
from latestore.store.page_encoding import query_vectors
from latestore.store.request import MAX_K, QUERY_TIME_FIELDS, SearchRequest, check_k
from latestore.store.search_modes import ModeSearch, as_hits

__all__ = ["MAX_K", "QUERY_TIME_FIELDS", "check_k", "search"]


def search(db: Database, encoders: EncoderSlot, request: SearchRequest) -> list[list[SearchHit]]:
    """One search call in any mode (see :mod:`latestore.store.search_modes`)."""
    db.check_open()
    plan = ModeSearch(request, db.lexical)
    vectors = query_vectors(encoders, db.dim, request.queries) if request.needs_vectors else []
    # Filter, phrase and lexical ranking read SQL before the index catches up, so every
    # page they name is in the index by the time it ranks.
    allowed: npt.NDArray[np.int64] | None = None
    lexical: list[list[LexicalHit]] = [[] for _ in request.queries]
    if request.filter is not None or request.reads_sql:  # plain MaxSim opens no session
        with db.session() as session:
            clause = filter_clause(session, request.filter) if request.filter is not None else None
            matching = ids_where(session, clause) if clause is not None else None
            allowed = plan.allowed(session, clause, matching)
            lexical = plan.lexical_hits(session, clause)
    if not request.needs_vectors:  # the lexical mode never loads or reads the index
        return as_hits(db.engine, plan.rank(None, [], None, lexical))
    derived = db.derived
    if derived.sync.behind():  # the SQL look runs unlocked: searches never queue on it
        with derived.lock.write():
            derived.sync.catch_up()
    # Ranking shares the lock: concurrent searches run in parallel.
    with derived.lock.read():
        db.check_open()
        rankings = plan.rank(derived.sync.ranker(), vectors, allowed, lexical)
    return as_hits(db.engine, rankings)

"""One search call: encode queries, filter in SQL, rank, hydrate.

The call arrives as a :class:`~latestore.store.request.SearchRequest`, already checked
at the facade; nothing here validates it again.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from latestore.models import SearchHit
from latestore.store.context import StoreContext
from latestore.store.filters import filter_clause, ids_where
from latestore.store.fulltext import LexicalHit
from latestore.store.page_encoding import query_vectors
from latestore.store.request import MAX_K, QUERY_TIME_FIELDS, SearchRequest, check_k
from latestore.store.search_modes import ModeSearch, as_hits

__all__ = ["MAX_K", "QUERY_TIME_FIELDS", "check_k", "search"]


def search(ctx: StoreContext, request: SearchRequest) -> list[list[SearchHit]]:
    """One search call in any mode (see :mod:`latestore.store.search_modes`)."""
    ctx.check_open()
    plan = ModeSearch(request, ctx.lexical)
    vectors = query_vectors(ctx, request.queries) if request.needs_vectors else []
    # Filter, phrase and lexical ranking read SQL before the index catches up, so every
    # page they name is in the index by the time it ranks.
    allowed: npt.NDArray[np.int64] | None = None
    lexical: list[list[LexicalHit]] = [[] for _ in request.queries]
    if request.filter is not None or request.reads_sql:  # plain MaxSim opens no session
        with Session(ctx.engine) as session:
            clause = filter_clause(session, request.filter) if request.filter is not None else None
            matching = ids_where(session, clause) if clause is not None else None
            allowed = plan.allowed(session, clause, matching)
            lexical = plan.lexical_hits(session, clause)
    if not request.needs_vectors:  # the lexical mode never loads or reads the index
        return as_hits(ctx.engine, plan.rank(None, [], None, lexical))
    if ctx.sync.behind():  # the SQL look runs unlocked: searches never queue on it
        with ctx.index_lock.write():
            ctx.sync.catch_up()
    # Ranking shares the lock: concurrent searches run in parallel.
    with ctx.index_lock.read():
        ctx.check_open()
        rankings = plan.rank(ctx.sync.ranker(), vectors, allowed, lexical)
    return as_hits(ctx.engine, rankings)

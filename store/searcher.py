"""One search call: validate, encode queries, filter in SQL, rank, hydrate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError
from sqlalchemy.orm import Session

from latestore.errors import InvalidInputError
from latestore.models import SearchHit, StoreConfig
from latestore.store.context import StoreContext
from latestore.store.filters import filter_clause, ids_where
from latestore.store.fulltext import LexicalHit
from latestore.store.page_encoding import Query, query_vectors
from latestore.store.search_modes import ModeSearch, as_hits

MAX_K = 10_000
QUERY_TIME_FIELDS = (
    "k_per_token",
    "nprobe",
    "n_rerank",
    "widen_above_tokens",
    "exhaustive_max_tokens",
    "device_exact",
    "device_precision",
    "search_mode",
    "fusion",
    "lexical_weight",
    "rrf_k",
    "hybrid_depth",
)


def settings_for(config: StoreConfig, overrides: Mapping[str, Any]) -> StoreConfig:
    """The store's settings with this call's query-time overrides, validated."""
    if not overrides:
        return config
    unknown = sorted(set(overrides) - set(QUERY_TIME_FIELDS))
    if unknown:
        raise InvalidInputError(
            f"unknown search settings {unknown}; known: {list(QUERY_TIME_FIELDS)}"
        )
    try:
        return StoreConfig.model_validate(config.model_dump() | dict(overrides))
    except ValidationError as exc:
        raise InvalidInputError(f"bad search settings: {exc}") from exc


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 < k <= MAX_K:
        raise InvalidInputError(f"k must be an integer between 1 and {MAX_K}, got {k!r}")
    return int(k)


def search_many(
    ctx: StoreContext,
    queries: Sequence[Query],
    k: int,
    filter: Mapping[str, Any] | None,
    exhaustive: bool,
    overrides: Mapping[str, Any],
    *,
    mode: str | None = None,
    exact: str | None = None,
    lexical_text: Sequence[str | None] | None = None,
) -> list[list[SearchHit]]:
    """One search call in any mode (see :mod:`latestore.store.search_modes`)."""
    ctx.check_open()
    k = check_k(k)
    config = settings_for(ctx.config, overrides)
    plan = ModeSearch.plan(mode, queries, exact, lexical_text, config, ctx.lexical)
    vectors = query_vectors(ctx, queries) if plan.needs_vectors else []
    # Filter, phrase and lexical ranking read SQL before the index catches up, so every
    # page they name is in the index by the time it ranks.
    allowed: npt.NDArray[np.int64] | None = None
    lexical: list[list[LexicalHit]] = [[] for _ in queries]
    if filter is not None or plan.reads_sql:  # a plain MaxSim search opens no session
        with Session(ctx.engine) as session:
            clause = filter_clause(session, filter) if filter is not None else None
            matching = ids_where(session, clause) if clause is not None else None
            allowed = plan.allowed(session, clause, matching)
            lexical = plan.lexical_hits(session, k, clause)
    params = config.search_params()
    if not plan.needs_vectors:  # the lexical mode never loads or reads the index
        return as_hits(ctx.engine, plan.rank(None, [], k, params, None, False, lexical))
    if ctx.sync.behind():  # the SQL look runs unlocked: searches never queue on it
        with ctx.index_lock.write():
            ctx.sync.catch_up()
    # Ranking shares the lock: concurrent searches run in parallel.
    with ctx.index_lock.read():
        ctx.check_open()
        rankings = plan.rank(ctx.sync.index, vectors, k, params, allowed, exhaustive, lexical)
    return as_hits(ctx.engine, rankings)

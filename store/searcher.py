"""One search call: validate, encode queries, filter in SQL, rank, hydrate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import ValidationError
from sqlalchemy.orm import Session

from latestore.errors import InvalidInputError
from latestore.models import SearchHit, StoreConfig
from latestore.store.context import StoreContext
from latestore.store.filters import matching_page_ids
from latestore.store.hits import hydrate
from latestore.store.page_encoding import Query, query_vectors

MAX_K = 10_000
QUERY_TIME_FIELDS = (
    "k_per_token",
    "nprobe",
    "n_rerank",
    "exhaustive_max_tokens",
    "device_exact",
    "device_precision",
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
) -> list[list[SearchHit]]:
    ctx.check_open()
    k = check_k(k)
    params = settings_for(ctx.config, overrides).search_params()
    vectors = query_vectors(ctx, queries)
    allowed = None
    if filter is not None:
        with Session(ctx.engine) as session:
            allowed = np.asarray(matching_page_ids(session, filter), dtype=np.int64)
    if ctx.sync.behind():  # the SQL look runs unlocked: searches never queue on it
        with ctx.index_lock.write():
            ctx.sync.catch_up()
    # Ranking shares the lock: concurrent searches run in parallel.
    with ctx.index_lock.read():
        ctx.check_open()
        rankings = ctx.sync.index.search(vectors, k, params, allowed=allowed, exhaustive=exhaustive)
    return hydrate(ctx.engine, rankings)

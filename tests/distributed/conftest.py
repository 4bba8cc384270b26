"""Fixtures for the Ray tests: one local Ray session, one PostgreSQL store per module.

Ray starts worker processes that import torch, so a session costs seconds: the Ray
tests share one per xdist worker. They form two xdist groups, the sharded store's
("ray") and the distributed ingestion's ("ray_ingest"), so under ``make test`` they run
in two workers, each with its own local cluster: one group was the suite's longest
chain. Without Ray installed or without PostgreSQL the tests skip.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PG_HOW, PG_URL_ENV


@pytest.fixture(scope="session")
def ray_session() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the whole module (the Ray tests need a server:
    shard actors in other processes open the same store)."""
    from tests.postgres import fresh_database

    admin_url = os.environ.get(PG_URL_ENV)
    if not admin_url:
        pytest.skip(f"Ray tests need PostgreSQL: {PG_HOW}")
    with fresh_database(admin_url) as url:
        yield url


def scifact_docs(shared_data: Path, n: int) -> list[dict[str, Any]]:
    with (shared_data / "scifact" / "corpus.jsonl").open() as corpus:
        return [json.loads(line) for line, _ in zip(corpus, range(n), strict=False)]


def scifact_queries(shared_data: Path, n: int) -> list[str]:
    with (shared_data / "scifact" / "queries.jsonl").open() as queries:
        return [json.loads(line)["text"] for line, _ in zip(queries, range(n), strict=False)]


def ranking_of(hits: list[Any]) -> list[tuple[int, float]]:
    return [(h.page_id, h.score) for h in hits]

"""Databases written at every migration revision, with data, upgrade to head intact.

Each revision has a seeder that writes a small store in *that revision's* schema with
plain SQL (never today's ORM, which only knows head). Adding a migration means adding
its seeder: test_every_revision_has_a_seeder fails until then.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, text

from latestore import Page, PrecomputedVectors, Store
from latestore.migrations.runner import alembic_config, current_revision, head_revision, upgrade
from latestore.store.sql import to_url

DIM = 8
N_PAGES = 12
ENCODER = PrecomputedVectors(dim=DIM)


def page_vectors(i: int) -> npt.NDArray[np.float32]:
    v = np.random.default_rng(i).standard_normal((3 + i % 4, DIM)).astype(np.float32)
    unit: npt.NDArray[np.float32] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


def seed_0001(conn: Connection) -> None:
    now = datetime(2024, 1, 2, tzinfo=UTC)
    config = {
        "vector_dtype": "float32",
        "ivf_min_tokens": 100_000,
        "ivf_nlist": None,
        "ivf_codec": "PQ",
        "k_per_token": 128,
        "nprobe": 16,
        "n_rerank": 256,
        "exhaustive_max_tokens": 60_000,
        "snapshot_every_tokens": 250_000,
    }
    conn.execute(
        text(
            "INSERT INTO ls_store (id, store_uuid, encoder_name, encoder_spec, "
            "encoder_fingerprint, dim, vector_dtype, config, last_change, created_at) VALUES "
            "(1, :uuid, 'precomputed', NULL, :fp, :dim, 'float32', :config, :n, :now)"
        ),
        {
            "uuid": "00000000-0000-4000-8000-000000000001",
            "fp": ENCODER.fingerprint,
            "dim": DIM,
            "config": json.dumps(config),
            "n": N_PAGES,
            "now": now,
        },
    )
    for i in range(1, N_PAGES + 1):
        vectors = page_vectors(i)
        conn.execute(
            text(
                "INSERT INTO ls_pages (id, external_id, document_id, page_number, text, "
                "source, metadata, content_hash, n_tokens, change_no, created_at, updated_at) "
                "VALUES (:id, :ext, 'doc', :i, :text, 'seed', :meta, :hash, :n, :i, :now, :now)"
            ),
            {
                "id": i,
                "ext": f"old-{i}",
                "i": i,
                "text": f"page {i} written at 0001",
                "meta": json.dumps({"i": i, "lang": "en" if i % 2 else "de"}),
                "hash": f"{i:064x}",
                "n": len(vectors),
                "now": now,
            },
        )
        conn.execute(
            text("INSERT INTO ls_page_vectors (page_id, n_tokens, data) VALUES (:i, :n, :d)"),
            {"i": i, "n": len(vectors), "d": vectors.tobytes()},
        )
        conn.execute(
            text("INSERT INTO ls_changes (change_no, page_id, op) VALUES (:i, :i, 'add')"),
            {"i": i},
        )
    conn.execute(
        text("INSERT INTO ls_metadata_keys (key, kinds) VALUES ('i', 'number'), ('lang', 'string')")
    )
    if conn.dialect.name == "postgresql":  # explicit ids: move the sequences past them
        for table in ("ls_pages", "ls_changes"):
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            )


def seed_0002(conn: Connection) -> None:
    """0002 added ls_store.pruned_through: a store whose log was pruned halfway."""
    seed_0001(conn)
    conn.execute(text("DELETE FROM ls_changes WHERE change_no <= 6"))
    conn.execute(text("UPDATE ls_store SET pruned_through = 6 WHERE id = 1"))


def seed_0003(conn: Connection) -> None:
    """0003 added what encoding cut: pages with counts, caller-given vectors marked."""
    seed_0002(conn)
    conn.execute(text("UPDATE ls_pages SET encoded_with = 'precomputed'"))
    conn.execute(text("UPDATE ls_pages SET text_tokens = 300, tokens_dropped = 46 WHERE id = 2"))


SEEDERS: dict[str, Callable[[Connection], None]] = {
    "0001_initial": seed_0001,
    "0002_change_log_pruning": seed_0002,
    "0003_page_windows": seed_0003,
    # 0004 added the full-text index: rows written by plain SQL reach it by trigger
    # (SQLite) or generated column (PostgreSQL).
    "0004_page_fulltext": seed_0003,
    # 0005 added the compact tier's tables, empty in a full-tier store.
    "0005_compact_codes": seed_0003,
    # 0005 added ls_store.encoder_build: stores from before keep NULL (nothing recorded).
    "0006_encoder_build": seed_0003,
    # 0007 replaced NUL in stored metadata (tests/store/test_metadata_nul_repair.py).
    "0007_metadata_nul": seed_0003,
    # 0008 added ls_pages.window_rows: older pages keep NULL (scored over all rows).
    "0008_window_rows": seed_0003,
    # 0009 added BM25's page lengths and corpus statistics (PostgreSQL): counted from
    # the stored pages at the upgrade, by triggers from then on.
    "0009_fulltext_statistics": seed_0003,
}


def revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def test_every_revision_has_a_seeder() -> None:
    assert revisions()[-1] == head_revision()
    assert set(revisions()) == set(SEEDERS), "write a seeder for each new migration"


@pytest.mark.parametrize("revision", revisions())
def test_database_at_revision_upgrades_to_head_with_data(store_url: str, revision: str) -> None:
    engine = create_engine(to_url(store_url))
    try:
        with engine.begin() as conn:
            upgrade(conn, revision)
            assert current_revision(conn) == revision
            SEEDERS[revision](conn)
    finally:
        engine.dispose()
    with Store.open(store_url, ENCODER) as store:  # upgrades to head at open
        assert store.count() == N_PAGES
        assert store.opened_from == "rebuilt"
        pages = store.get_many(range(1, N_PAGES + 1))
        assert [p.external_id for p in pages] == [f"old-{i}" for i in range(1, N_PAGES + 1)]
        assert [p.metadata["i"] for p in pages] == list(range(1, N_PAGES + 1))
        assert [p.n_tokens for p in pages] == [len(page_vectors(i)) for i in range(1, 13)]
        for i in (1, 7, 12):
            hit = store.search(page_vectors(i), k=1, exhaustive=True)[0]
            assert hit.page_id == i
            assert hit.score == pytest.approx(len(page_vectors(i)), rel=1e-5)
        assert {h.page_id for h in store.search(page_vectors(3), k=20, filter={"lang": "de"})} == {
            i for i in range(1, N_PAGES + 1) if i % 2 == 0
        }
        cut = store.encoding()
        counted = revision >= "0003"
        assert (cut["pages_truncated"], cut["tokens_dropped"]) == ((1, 46) if counted else (0, 0))
        assert cut["windowing"] == {"windows": False} and cut["pages_pending_reencode"] == 0
        # The full-text index holds every page's text, backfilled by 0004 if need be.
        written = store.search("written", k=50, mode="lexical")
        assert sorted(h.page_id for h in written) == list(range(1, N_PAGES + 1))
        assert [h.page_id for h in store.search("page 7", k=1, mode="lexical")] == [7]
        # The upgraded store keeps working: new ids follow the old ones, changes replay.
        new = store.add_pages(
            [Page(vectors=page_vectors(99), external_id="new-after-upgrade", text="fresh")]
        )
        assert new == [N_PAGES + 1]
        assert [h.page_id for h in store.search("fresh", k=5, mode="lexical")] == new
        assert store.stats().change_no == N_PAGES + 1
    engine = create_engine(to_url(store_url))
    try:
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
            if conn.dialect.name == "postgresql":  # BM25's statistics count every page
                counted = conn.execute(text("SELECT sum(pages) FROM ls_fulltext_stats"))
                assert counted.scalar_one() == N_PAGES + 1
    finally:
        engine.dispose()

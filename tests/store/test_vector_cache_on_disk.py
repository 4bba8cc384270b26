"""StoreConfig(vector_cache="disk"): same answers as the in-memory cache, no files left."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latestore import (
    IndexConfig,
    MemoryConfig,
    PrecomputedVectors,
    SearchConfig,
    Store,
    StoreConfig,
)
from tests.store.helpers import clustered_pages, query_from

DIM = 32
ENCODER = PrecomputedVectors(dim=DIM)


def ranking(store: Store, query: np.ndarray, **kwargs: object) -> list[tuple[int, float]]:
    return [(h.page_id, round(h.score, 5)) for h in store.search(query, k=10, **kwargs)]  # type: ignore[arg-type]


def test_disk_cache_answers_like_memory_through_writes_and_reopen(
    db_path: Path, rng: np.random.Generator
) -> None:
    pages, centres = clustered_pages(rng, 400, dim=DIM)
    queries = [query_from(rng, centres) for _ in range(5)]
    # a small IVF threshold so the approximate path (FAISS + rerank) is exercised
    base = {
        "index": IndexConfig(ivf_min_tokens=2_000),
        "search": SearchConfig(exhaustive_max_tokens=0),
    }
    with Store.open(db_path, ENCODER, config=StoreConfig(**base)) as store:  # type: ignore[arg-type]
        ids = store.add_pages(pages[:300])
        store.delete(ids[:40])
        store.add_pages(pages[300:])
        store.upsert_pages([pages[350].model_copy(update={"metadata": {"lang": "xx"}})])
    disk_cfg = StoreConfig(memory=MemoryConfig(vector_cache="disk"), **base)  # type: ignore[arg-type]
    memory_cfg = StoreConfig(memory=MemoryConfig(vector_cache="memory"), **base)  # type: ignore[arg-type]
    with (
        Store.open(db_path, ENCODER, config=memory_cfg) as memory,
        Store.open(db_path, ENCODER, config=disk_cfg) as disk,
    ):
        assert disk.stats().vector_cache == "disk"
        assert memory.stats().vector_cache == "memory"
        for q in queries:
            assert ranking(disk, q) == ranking(memory, q)
            assert ranking(disk, q, exhaustive=True) == ranking(memory, q, exhaustive=True)
            assert ranking(disk, q, filter={"lang": "de"}) == ranking(
                memory, q, filter={"lang": "de"}
            )
        # writes through the disk-backed store are seen by both
        disk.delete(ids[40:80])
        fresh = disk.add_pages(pages[:20])
        for q in queries:
            assert ranking(disk, q) == ranking(memory, q)
        assert disk.stats().pages == memory.stats().pages == 400 - 80 + 20
        assert set(fresh) <= set(disk.page_ids())
    index_dir = db_path.parent / f"{db_path.name}.index"
    assert sorted(p.name for p in index_dir.iterdir()) == ["candidates.snapshot", "vectors"]


def test_torch_candidate_search_ranks_like_exhaustive(
    db_path: Path, rng: np.random.Generator
) -> None:
    """candidate_search="torch" is what a GPU without faiss-gpu uses; here it runs on CPU."""
    pages, centres = clustered_pages(rng, 300, dim=DIM)
    queries = [query_from(rng, centres) for _ in range(5)]
    base = {
        "index": IndexConfig(ivf_min_tokens=2_000),
        "search": SearchConfig(exhaustive_max_tokens=0),
    }
    torch_cfg = StoreConfig(
        index=IndexConfig(ivf_min_tokens=2_000, candidate_search="torch"), search=base["search"]
    )  # type: ignore[arg-type]
    with Store.open(db_path, ENCODER, config=torch_cfg) as store:
        ids = store.add_pages(pages[:250])
        assert store.stats().candidate_search == "torch"
        store.delete(ids[:30])
    with Store.open(db_path, ENCODER, config=StoreConfig(**base)) as writer:  # type: ignore[arg-type]
        writer.add_pages(pages[250:])  # committed after the snapshot: replayed at open
    with Store.open(db_path, ENCODER, config=torch_cfg) as store:
        assert store.count() == 270
        assert store.stats().candidate_search == "torch"
        for q in queries:
            for spec in (None, {"lang": "de"}):
                got = ranking(store, q, filter=spec)
                exact = ranking(store, q, filter=spec, exhaustive=True)
                # exact candidate tokens: the same top 10 (scores to float32 summation order)
                assert [p for p, _ in got] == [p for p, _ in exact]
                assert [s for _, s in got] == pytest.approx([s for _, s in exact], rel=1e-5)
        assert not {h.page_id for h in store.search(pages[0].vectors, k=300)} & set(ids[:30])


def test_a_sqlite_uri_filename_keeps_the_vector_folder_beside_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sqlite:///file:/path?uri=true`` names the file at /path: its derived folder goes
    beside that file, not into a ``file:`` folder under the working directory."""
    db = tmp_path / "store.db"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    rng = np.random.default_rng(3)
    with Store.open(f"sqlite:///file:{db}?uri=true", PrecomputedVectors(dim=8)) as store:
        store.add_pages(clustered_pages(rng, 12, 8)[0])
        assert store.sqlite_path == db
    with Store.open(f"sqlite:///file:{db}?mode=ro&uri=true", PrecomputedVectors(dim=8)) as store:
        assert store.count() == 12
    assert (tmp_path / "store.db.index").is_dir()
    assert list(cwd.iterdir()) == []

"""Crash safety of maintenance: ``reindex`` and ``reencode`` SIGKILLed at random moments
(issue 26), on SQLite and PostgreSQL, with the same worker as test_crash.

``reindex`` changes no row: after every kill each page is still there, and the store
opens with an index equal to one built from SQL. ``reencode`` rewrites every page's
vectors a batch per transaction: after every kill each page is there with its content,
its vectors whole (old or new encoding, never a mix within a page), no acknowledged
batch undone, and a finished re-encode recorded.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from latestore import (
    IndexConfig,
    MaintenanceConfig,
    Page,
    SearchConfig,
    StorageConfig,
    Store,
    StoreConfig,
)
from latestore.encoders.windows import WindowSettings
from latestore.store.schema import PageRow, StoreRow
from tests.helpers import precomputed_store
from tests.reliability.corpus import CONFIG, DIM, batch
from tests.reliability.test_crash import HOOK_FALLBACK_S, Ledger, Worker, verify, worker

__all__ = ["worker"]  # the fixture, re-used from test_crash

KILLS = int(os.environ.get("LATESTORE_CRASH_MAINTENANCE_KILLS", "30"))
REINDEX_MODES = ["timer", "snapshot", "timer", "before-rename", "timer", "after-rename"]
REENCODE_MODES = ["timer", "commit", "timer", "after-commit", "timer", "snapshot"]
PREFILLED_BATCHES = 10


def whole_lines(path: Path) -> list[str]:
    """Lines the worker finished writing (a kill can cut the last one)."""
    if not path.exists():
        return []
    return path.read_text().split("\n")[:-1]


@pytest.mark.slow
def test_sigkill_during_reindex_loses_nothing(
    store_url: str, tmp_path: Path, worker: Worker
) -> None:
    with precomputed_store(store_url, DIM, config=CONFIG) as store:
        for number in range(PREFILLED_BATCHES):
            store.add_pages(batch(number))
    ledger = Ledger(committed=set(range(PREFILLED_BATCHES)), next_batch=PREFILLED_BATCHES)
    no_adds = tmp_path / "no-adds.txt"  # verify()'s acknowledged adds: none in this test
    rng = random.Random(26)
    rounds = reindexed = 0
    started = time.monotonic()
    while sum(ledger.kills.values()) < KILLS:
        rounds += 1
        assert rounds <= KILLS * 2, f"only {ledger.kills} kills in {rounds} rounds"
        mode = REINDEX_MODES[rounds % len(REINDEX_MODES)]
        acks = tmp_path / f"reindex-{rounds}.txt"
        job = {
            "op": "reindex",
            "db": store_url,
            "acks": str(acks),
            "mode": mode,
            "seed": rng.randrange(1 << 30),
            "max_batches": 1000,
        }
        kill_after = rng.uniform(0.0, 1.5) if mode == "timer" else HOOK_FALLBACK_S
        code = worker.round(job, kill_after)
        assert code == -signal.SIGKILL, f"reindex worker ended with exit code {code}"
        ledger.kills[mode] += 1
        reindexed += len(whole_lines(acks))
        verify(store_url, no_adds, ledger, ledger.next_batch, rng)
        assert ledger.committed == set(range(PREFILLED_BATCHES))
    print(
        f"reindex: {sum(ledger.kills.values())} kills in {rounds} rounds, "
        f"{time.monotonic() - started:.0f}s: {dict(ledger.kills)}; reindexes completed "
        f"{reindexed}; reopened from {dict(ledger.opened_from)}"
    )
    assert reindexed > 0  # kills landed after completed rebuilds too, not only at open


FILLER = "The kiln fires the clay; the glaze melts and cools into glass. "
REENCODE_CONFIG = StoreConfig(
    storage=StorageConfig(vector_dtype="float32"),
    index=IndexConfig(ivf_codec="none"),
    search=SearchConfig(exhaustive_max_tokens=0),
    maintenance=MaintenanceConfig(snapshot_every_tokens=400, snapshot_every_fraction=0),
)


def text_pages() -> list[Page]:
    """Short pages and pages past one MiniLM window, so the two settings differ."""
    pages = [
        Page(text=f"Page {i}: {FILLER * (20 if i in (5, 12) else 1 + i % 3)}", external_id=f"t{i}")
        for i in range(18)
    ]
    rng = np.random.default_rng(0)
    kept = rng.standard_normal((3, 384)).astype(np.float32)
    return [*pages, Page(vectors=kept, text="given vectors", external_id="given")]


def read_pages(store: Store) -> dict[str, tuple[str, int, str | None]]:
    with Session(store._engine) as session:
        rows = session.execute(
            select(
                PageRow.external_id, PageRow.content_hash, PageRow.n_tokens, PageRow.encoded_with
            )
        ).all()
    return {str(e): (h, int(n), w) for e, h, n, w in rows}


def recorded_fingerprint(store: Store) -> str:
    with Session(store._engine) as session:
        return str(session.execute(select(StoreRow.encoder_fingerprint)).scalar_one())


def check_reencoded(
    store: Store, expected: dict[str, str], fingerprints: set[str], query: Any
) -> dict[str, tuple[str, int, str | None]]:
    pages = read_pages(store)
    assert {e: h for e, (h, _, _) in pages.items()} == expected, "pages lost or changed"
    assert pages["given"][2] == "precomputed"
    assert {w for _, _, w in pages.values()} <= fingerprints | {"precomputed"}
    ids = store.page_ids()
    vectors = store.page_vectors_many(ids)
    by_id = {p.page_id: p for p in store.get_many(ids)}
    for page_id, v in zip(ids, vectors, strict=True):
        assert v.shape == (pages[str(by_id[page_id].external_id)][1], 384)  # whole
    index = store._sync.index
    assert index.consistent() and len(index.vectors) == len(ids)
    assert index.tokens.page_tokens == {i: len(v) for i, v in zip(ids, vectors, strict=True)}
    # Ranking equals brute-force MaxSim over the vectors in SQL.
    scores = [float((query @ v.T).max(axis=1).sum()) for v in vectors]
    best = [ids[i] for i in np.argsort(scores)[::-1][:5]]
    assert [h.page_id for h in store.search(query, k=5)] == best
    return pages


@pytest.mark.slow
def test_sigkill_during_reencode_loses_nothing(
    store_url: str, tmp_path: Path, worker: Worker, minilm: Any
) -> None:
    windows = {on: minilm.with_windowing(WindowSettings(enabled=on)) for on in (True, False)}
    prints = {on: encoder.fingerprint for on, encoder in windows.items()}
    assert prints[True] != prints[False]
    with Store.open(store_url, windows[False], config=REENCODE_CONFIG) as store:
        store.add_pages(text_pages())
        expected = {e: h for e, (h, _, _) in read_pages(store).items()}
    query = windows[True].encode_queries(["glaze melting in a kiln"])[0]
    rng = random.Random(2026)
    kills: Counter[str] = Counter()
    target, finished, rounds, acked_batches = True, 0, 0, 0
    started = time.monotonic()
    while sum(kills.values()) < KILLS:
        rounds += 1
        assert rounds <= KILLS * 3, f"only {kills} kills in {rounds} rounds"
        mode = REENCODE_MODES[rounds % len(REENCODE_MODES)]
        with Store.open(store_url, minilm) as store:
            before = sum(1 for *_, w in read_pages(store).values() if w == prints[target])
        acks = tmp_path / f"reencode-{rounds}.txt"
        job = {
            "op": "reencode",
            "db": store_url,
            "acks": str(acks),
            "mode": mode,
            "seed": rng.randrange(1 << 30),
            "windows": target,
        }
        kill_after = rng.uniform(0.0, 3.0) if mode == "timer" else HOOK_FALLBACK_S
        code = worker.round(job, kill_after)
        assert code in (0, -signal.SIGKILL), f"reencode worker ended with exit code {code}"
        lines = whole_lines(acks)
        done = max((int(x.split()[1]) for x in lines if x.startswith("done ")), default=0)
        acked_batches += sum(1 for x in lines if x.startswith("done "))
        with Store.open(store_url, minilm) as store:
            pages = check_reencoded(store, expected, set(prints.values()), query)
            now = sum(1 for *_, w in pages.values() if w == prints[target])
            assert now >= before + done, f"acknowledged batches undone: {before}+{done}>{now}"
            if "finished" in lines:
                assert recorded_fingerprint(store) == prints[target]
                assert now == len(expected) - 1  # every page but the given one
        if code == -signal.SIGKILL:
            kills[mode] += 1
        else:
            assert "finished" in lines
        if "finished" in lines:
            finished += 1
            target = not target  # the next rounds re-encode back
    print(
        f"reencode: {sum(kills.values())} kills in {rounds} rounds, "
        f"{time.monotonic() - started:.0f}s: {dict(kills)}; re-encodes finished {finished}, "
        f"batches acknowledged {acked_batches}"
    )
    assert acked_batches > 0

"""Crash safety: a writer SIGKILLed at random moments loses nothing acknowledged.

A worker process (crash_child.py) ingests batches and is killed again and again: from
outside at random times, and from hooks inside SQL commits and snapshot writes. After
every kill the store is reopened here and checked against SQL and a from-scratch index.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from latestore.index.late_index import LateInteractionIndex
from latestore.store.schema import PageRow, PageVectorsRow
from latestore.store.sql import default_index_dir, to_url
from tests.helpers import precomputed_store
from tests.reliability.corpus import CONFIG, DIM, batch, batch_of, queries

CHILD = Path(__file__).with_name("crash_child.py")
KILLS = int(os.environ.get("LATESTORE_CRASH_KILLS", "60"))
# PostgreSQL rounds cost more (a server round trip per statement): fewer kills there.
PG_KILLS = int(os.environ.get("LATESTORE_CRASH_KILLS_PG", "40"))
# Timer kills hit wherever the writer happens to be (open, encode, commit, replay,
# snapshot); the hook modes make sure commits and snapshot writes are hit many times.
MODES = [
    "timer",
    "commit",
    "snapshot",
    "timer",
    "after-commit",
    "before-rename",
    "timer",
    "after-rename",
]
HOOK_FALLBACK_S = 6.0


class Worker:
    """The crash_child process: one import of latestore, one fork per round."""

    def __init__(self) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def _line(self, prefix: str) -> int:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith(prefix), f"worker said {line!r}; expected {prefix!r}"
        return int(line.split()[1])

    def round(self, job: dict[str, object], kill_after: float) -> int:
        """Run one writer and SIGKILL it after ``kill_after`` s; returns its exit code."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        pid = self._line("pid ")
        timer = threading.Timer(kill_after, _kill, (pid,))
        timer.start()
        try:
            return self._line("exit ")
        finally:
            timer.cancel()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _kill(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def worker() -> Iterator[Worker]:
    w = Worker()
    try:
        yield w
    finally:
        w.close()


@dataclass
class Ledger:
    """What the harness knows must be in the store."""

    committed: set[int] = field(default_factory=set)
    next_batch: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    opened_from: Counter[str] = field(default_factory=Counter)
    in_flight_committed: int = 0


def read_acks(path: Path) -> set[int]:
    if not path.exists():
        return set()
    # A kill can cut the ack write itself: only whole lines count as acknowledged.
    text = path.read_text()
    lines = text.split("\n")[:-1]
    return {int(n) for n in lines}


def verify(db: str, acks: Path, ledger: Ledger, first: int, rng: random.Random) -> None:
    acked = read_acks(acks)
    store = precomputed_store(db, DIM, config=CONFIG)
    try:
        ledger.opened_from[store.opened_from] += 1
        with Session(store._engine) as session:
            rows = session.execute(
                select(PageRow.id, PageRow.external_id, PageRow.n_tokens, PageRow.content_hash)
            ).all()
            n_vectors = session.execute(select(func.count(PageVectorsRow.page_id))).scalar_one()
        assert n_vectors == len(rows), "page rows without vectors (or the reverse)"
        by_batch: dict[int, dict[str, tuple[int, str]]] = {}
        sql_tokens = {}
        for page_id, external, n_tokens, content_hash in rows:
            assert external is not None
            by_batch.setdefault(batch_of(external), {})[external] = (n_tokens, content_hash)
            sql_tokens[page_id] = n_tokens
        present = set(by_batch)
        missing = (acked | ledger.committed) - present
        assert not missing, f"acknowledged batches lost: {sorted(missing)}"
        for number in present:  # every visible batch is whole and exactly as written
            expected = {
                p.external_id: (len(p.vectors), p.content_hash())  # type: ignore[arg-type]
                for p in batch(number)
            }
            assert by_batch[number] == expected, f"batch {number} is partly visible"
        in_flight = max((a for a in acked if a >= first), default=first - 1) + 1
        unacked = present - acked - ledger.committed
        assert unacked <= {in_flight}, f"unacknowledged batches visible: {sorted(unacked)}"
        ledger.in_flight_committed += len(unacked)
        ledger.committed = present
        ledger.next_batch = max(present, default=-1) + 1

        index = store._sync.index
        assert index.tokens.page_tokens == sql_tokens, "candidate index disagrees with SQL"
        assert sorted(index.vectors.page_ids().tolist()) == sorted(sql_tokens)
        assert index.consistent()
        assert sum(sql_tokens.values()) == store.stats().tokens

        fresh = LateInteractionIndex(DIM, CONFIG.storage.vector_dtype, CONFIG.index_params(), "cpu")
        for page_id, vectors in store._sync._read_vectors():
            fresh.vectors.put(page_id, vectors)
        fresh.rebuild()
        qs = queries(4, seed=len(present))
        ours = index.search(qs, 8, CONFIG.search_params())
        theirs = fresh.search(qs, 8, CONFIG.search_params())
        assert [[p for p, _ in r] for r in ours] == [[p for p, _ in r] for r in theirs]
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_allclose([s for _, s in a], [s for _, s in b], rtol=1e-6)
        hits = store.search_many(qs, k=8)
        assert [[h.page_id for h in r] for r in hits] == [[p for p, _ in r] for r in ours]
    finally:
        if rng.random() < 0.5:
            # Leave the writer's (possibly stale) snapshot for the next round to replay.
            store._sync.index_dir = None
        store.close()


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_acknowledged(
    store_url: str, tmp_path: Path, worker: Worker
) -> None:
    db = store_url  # SQLite file, or a fresh PostgreSQL database (store_url's HOME holds its index)
    kills = PG_KILLS if db.startswith("postgresql") else KILLS
    acks = tmp_path / "acks.txt"
    rng = random.Random(20240607)
    ledger = Ledger()
    started = time.monotonic()
    rounds = 0
    while sum(ledger.kills.values()) < kills:
        rounds += 1
        assert rounds <= kills * 2, f"only {ledger.kills} kills in {rounds} rounds"
        mode = MODES[rounds % len(MODES)]
        first = ledger.next_batch
        job = {
            "db": str(db),
            "acks": str(acks),
            "first": first,
            "mode": mode,
            "seed": rng.randrange(1 << 30),
            "max_batches": 40,
        }
        kill_after = rng.uniform(0.0, 1.5) if mode == "timer" else HOOK_FALLBACK_S
        code = worker.round(job, kill_after)
        assert code in (0, -signal.SIGKILL), f"writer failed with exit code {code}"
        if code == -signal.SIGKILL:
            ledger.kills[mode] += 1
        verify(db, acks, ledger, first, rng)
    index_dir = default_index_dir(to_url(db))
    assert index_dir is not None
    leftovers = list(index_dir.glob(".*.tmp"))
    summary = (
        f"{sum(ledger.kills.values())} kills in {rounds} rounds, "
        f"{time.monotonic() - started:.0f}s: "
        f"{dict(ledger.kills)}; batches committed {len(ledger.committed)}, acknowledged "
        f"{len(read_acks(acks))}, committed-but-unacknowledged in flight "
        f"{ledger.in_flight_committed}; reopened from {dict(ledger.opened_from)}; "
        f"stale temporary snapshot files {len(leftovers)}"
    )
    print(summary)
    assert len(ledger.committed) > 0
    assert len(leftovers) <= 1, summary

"""Process bodies for the multi-process concurrency test (started with ``spawn``).

The writer logs each step to a journal *before* it starts it ("add b", "poison b",
"delete ids") and after ("ok ..."), so a reader that reads the journal and then
searches knows which pages may exist and which must not.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from pathlib import Path

import numpy as np

from latestore import Page, PrecomputedVectors, Store
from latestore.errors import InvalidInputError
from tests.reliability.corpus import CONFIG, DIM, batch, batch_of, queries


def journal(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def writer(db: str, log: str, first: int, batches: int, readers: int = 0) -> None:
    path = Path(log)
    rng = random.Random(first)
    # Spawned readers take seconds to import torch and faiss: start writing only once
    # they all have the store open, or a fast writer may finish before they search.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if sum(x.startswith("ready ") for x in lines) >= readers:
            break
        time.sleep(0.05)
    with Store.open(db, PrecomputedVectors(dim=DIM), config=CONFIG) as store:
        for number in range(first, first + batches):
            if number % 4 == 3:
                # A batch with one bad page: none of it may ever be seen by a reader.
                journal(path, f"poison {number}")
                bad = Page(vectors=np.full((3, DIM), np.nan, np.float32), external_id="bad")
                with contextlib.suppress(InvalidInputError):
                    store.add_pages([*batch(number), bad])
                continue
            journal(path, f"add {number}")
            store.add_pages(batch(number))
            journal(path, f"ok add {number}")
            if number % 3 == 2:
                victims = rng.sample(range(1, store.count() + 1), 2)
                store.delete(victims)
                journal(path, f"deleted {json.dumps(victims)}")
    journal(path, "done")


def reader(db: str, log: str, out: str, seed: int) -> None:
    path = Path(log)
    searches = hits_seen = 0
    with Store.open(db, PrecomputedVectors(dim=DIM)) as store:
        # Ready once two searches have run: opening imports no torch, a process's second
        # search does (latestore.torch_use), and a writer that starts before then can
        # finish before a reader searches again.
        store.search_many(queries(1, seed=seed), k=1)
        store.search_many(queries(1, seed=seed), k=1)
        journal(path, f"ready {seed}")
        while True:
            lines = path.read_text().splitlines() if path.exists() else []
            deleted = {i for x in lines if x.startswith("deleted ") for i in json.loads(x[8:])}
            results = store.search_many(queries(3, seed=seed + searches), k=20)
            # A search may see batches committed while it ran: the journal read *after*
            # it says which batches had begun by then, i.e. which may legitimately show.
            after = path.read_text().splitlines() if path.exists() else []
            started = {int(x.split()[1]) for x in after if x.startswith("add ")}
            poisoned = {int(x.split()[1]) for x in after if x.startswith("poison ")}
            for result in results:
                for hit in result:
                    number = batch_of(hit.external_id or "")
                    assert number in started or number == 0, f"uncommitted page {hit}"
                    assert number not in poisoned, f"rolled-back page {hit}"
                    assert hit.page_id not in deleted, f"deleted page {hit.page_id} returned"
                    assert hit.metadata["batch"] == number
                    hits_seen += 1
            searches += 1
            if "done" in after:
                break
            time.sleep(0.01)
        assert store.count() == store.stats().pages
    Path(out).write_text(json.dumps({"searches": searches, "hits": hits_seen}))

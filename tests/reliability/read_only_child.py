"""Run as ``python read_only_child.py WARM TARGET DIM``: load every module through a store
of its own (WARM), give up root for ``nobody`` when root, then read the store at TARGET
and try to write it. Prints one JSON object: what each call did."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np

from latestore import Page, PrecomputedVectors, Store

NOBODY = 65534


def outcome(call: Any) -> Any:
    try:
        return {"ok": call()}
    except Exception as exc:
        return {"error": type(exc).__name__, "message": str(exc)[:300]}


def main() -> None:
    warm, target, dim = sys.argv[1], sys.argv[2], int(sys.argv[3])
    query = np.ones((2, dim), np.float32)
    # Every module a read and a refused write need is imported now: once not root, the
    # interpreter's own folder (under /root) may be out of reach.
    with Store.open(warm, PrecomputedVectors(dim)) as store:
        store.add_pages([Page(vectors=query, text="warm")])
        store.search(query, k=1)
        store.search(query, k=1)  # a process's second search loads torch (torch_use)
        store.delete([1])
        store.reindex()
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    out: dict[str, Any] = {"uid": os.getuid()}
    store = Store.open(target, PrecomputedVectors(dim))
    out["count"] = store.count()
    out["hits"] = [h.page_id for h in store.search(query, k=3)]
    out["vector_cache_fallback"] = store.stats().vector_cache_fallback
    out["add"] = outcome(lambda: store.add_pages([Page(vectors=query)]).ids)
    out["delete"] = outcome(lambda: store.delete([1]))
    out["reindex"] = outcome(store.reindex)
    out["close"] = outcome(store.close)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Build a store from BEIR SciFact with the default encoder and compare search modes.

Prints nDCG@10 / recall@100 of ``Store.search`` at default settings and of exhaustive
exact MaxSim over every page, their overlap@10, search latency p50/p95 and bytes per
token on disk. Usage::

    python examples/evaluate_scifact.py [--data ../shared/data/scifact] [--store build/scifact.db]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from latestore import Store
from latestore.evaluation import beir_pages, evaluate_store, load_beir
from latestore.store.footprint import disk_footprint

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--store", type=Path, default=ROOT / "build" / "scifact.db")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if not (args.data / "corpus.jsonl").exists():
        print(f"SciFact not found at {args.data}", file=sys.stderr)
        return 2
    data = load_beir(args.data)
    args.store.parent.mkdir(parents=True, exist_ok=True)
    with Store.open(args.store) as store:
        start = time.perf_counter()
        last = [0.0]

        def progress(done: int, total: int) -> None:
            if time.perf_counter() - last[0] > 10 or done == total:
                last[0] = time.perf_counter()
                print(f"  encoded {done}/{total} pages", flush=True)

        store.upsert_pages(beir_pages(data.corpus), on_progress=progress)
        build_s = time.perf_counter() - start
        report = evaluate_store(store, data)
        stats = store.stats()
    footprint = disk_footprint(args.store)
    tokens = max(1, stats.tokens)
    print(
        f"\nSciFact: {len(data.corpus)} docs, {len(data.queries)} queries, {stats.tokens:,} "
        f"tokens, index {stats.index}"
    )
    print(f"build/update time {build_s:.1f} s\n")
    print("| metric | Store.search (default) | exhaustive MaxSim |\n|---|---|---|")
    for name, a, b in report.rows():
        print(f"| {name} | {a} | {b} |")
    print(f"\noverlap@10 (default vs exhaustive): {report.overlap10:.4f}")
    print(f"nDCG@10 gap: {report.exhaustive.ndcg10 - report.default.ndcg10:+.4f}")
    for name, value in report.latency_ms.items():
        print(f"{name}: {value:.1f} ms")
    print(f"index bytes/token on disk: {footprint['index_bytes'] / tokens:.1f}")
    print(f"SQL bytes/token on disk (vectors + metadata): {footprint['sql_bytes'] / tokens:.1f}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"report": report.__dict__, "stats": stats, "footprint": footprint},
                default=lambda o: o.__dict__,
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

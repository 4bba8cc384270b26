"""Peak memory of one add_pages call over a SciFact-sized corpus: list vs stream.

The model is replaced by ``SyntheticEncoder``, a real Encoder that turns each text into
deterministic pseudo-random unit vectors (about one token per six characters, 384
dims, as MiniLM gives SciFact ~1.24M tokens): the store's side of the memory is what
is measured, and a run takes a minute or two instead of the model's minutes. Each mode
runs in a fresh process; the peak is the process's high-water mark (VmHWM).

    python -m bench.add_pages_memory ../shared/data/scifact [--pages N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from latestore import Page, Store
from latestore.encoders import PageContent
from latestore.encoders.base import fingerprint_of

DIM = 384


@dataclass
class SyntheticEncoder:
    """Deterministic vectors from text: stands in for a model in memory measurements."""

    dim: int = DIM
    name: str = "synthetic"
    device: str = "cpu"
    batch_size: int = 32
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        self.fingerprint = fingerprint_of({"family": "synthetic", "dim": self.dim})

    def _vectors(self, text: str) -> npt.NDArray[np.float32]:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        n = max(8, min(512, len(text) // 6))
        out = np.random.default_rng(seed).standard_normal((n, self.dim), dtype=np.float32)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out

    def encode_queries(self, queries: Sequence[str]) -> list[npt.NDArray[np.float32]]:
        return [self._vectors(q) for q in queries]

    def encode_pages(self, pages: Sequence[PageContent]) -> list[npt.NDArray[np.float32]]:
        return [self._vectors(p.text or "") for p in pages]


def high_water_mb() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            out[name] = int(value.split()[0]) / 1024
    return out


def read_pages(corpus: Path, limit: int) -> Iterator[Page]:
    with corpus.open() as handle:
        for number, line in enumerate(handle):
            if number >= limit:
                return
            record = json.loads(line)
            text = f"{record.get('title', '')}\n{record['text']}".strip()
            yield Page(text=text, external_id=str(record["id"]))


def child(corpus: Path, limit: int, mode: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        store = Store.open(Path(folder) / "m.db", SyntheticEncoder())
        before = high_water_mb()
        start = time.perf_counter()
        pages = read_pages(corpus, limit)
        ids = store.add_pages(list(pages) if mode == "list" else pages)
        seconds = time.perf_counter() - start
        stats = store.stats()
        peak = high_water_mb()
        store.close()
    vector_mb = stats.tokens * DIM * 2 / 2**20  # float16 as stored
    return {
        "mode": mode,
        "pages": len(ids),
        "tokens": stats.tokens,
        "float16_vectors_mb": round(vector_mb),
        "rss_before_mb": round(before["VmRSS"]),
        "peak_rss_mb": round(peak["VmHWM"]),
        "peak_over_vectors": round((peak["VmHWM"] - before["VmRSS"]) / vector_mb, 2),
        "rss_after_mb": round(peak["VmRSS"]),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", type=Path, help="BEIR folder with corpus.jsonl")
    parser.add_argument("--pages", type=int, default=10**9)
    parser.add_argument("--mode", choices=["list", "stream"])
    args = parser.parse_args()
    if args.mode:  # the child
        print(json.dumps(child(args.data / "corpus.jsonl", args.pages, args.mode)))
        return
    for mode in ("list", "stream"):
        command = [sys.executable, "-m", "bench.add_pages_memory", str(args.data)]
        command += ["--pages", str(args.pages), "--mode", mode]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()

"""Server memory before, during and after a burst of large requests.

Starts ``latestore serve`` on a small store, reads its resident memory (VmRSS), sends a
burst of large requests (``--kind upload``: multipart uploads of a file of a type
ingestion does not read, so that what is measured is receiving it, not encoding it;
``--kind pages``: JSON ``POST /pages`` of token vectors as nested lists, stored;
``--kind pages-base64``: the same with each page's vectors as base64 float32), and reads it
again at its peak during the burst and a few seconds after. The figures are the
server process's own (``/proc/PID/status``).

    python -m bench.serve_memory [--kind upload|pages|pages-base64] [--requests 12] [--mib 26]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from latestore import Page, Store
from tests.serve.live import free_port, serve_command

DIM = 384


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def payload(kind: str, mib: float) -> dict[str, Any]:
    """Keyword arguments of one request of about ``mib`` MiB."""
    size = int(mib * (1 << 20))
    if kind == "upload":
        line = b"Kilns fire clay at high heat and the glaze melts into glass.\n"
        body = line * (size // len(line))
        return {"files": {"files": ("big.bin", body, "application/octet-stream")}}
    rng = np.random.default_rng(0)
    if kind == "pages-base64":
        # 4/3 of 4 bytes a number: pages of 100 tokens until the body has ``size``.
        n_pages = max(1, size // (100 * DIM * 4 * 4 // 3))
        pages = [
            {"vectors": encoded(rng.standard_normal((100, DIM))), "text": f"p{i}"}
            for i in range(n_pages)
        ]
    else:
        # About 9 bytes a number in JSON: pages of 100 tokens until the body has ``size``.
        n_pages = max(1, size // (100 * DIM * 9))
        pages = [
            {"vectors": np.round(rng.standard_normal((100, DIM)), 4).tolist(), "text": f"p{i}"}
            for i in range(n_pages)
        ]
    return {
        "content": json.dumps({"pages": pages}).encode(),
        "headers": {"content-type": "application/json"},
    }


def encoded(vectors: np.ndarray) -> dict[str, Any]:
    """A page's vectors as POST /pages takes them in bytes: base64 little-endian float32."""
    raw = np.ascontiguousarray(vectors, dtype="<f4").tobytes()
    return {
        "dtype": "float32",
        "shape": list(vectors.shape),
        "data": base64.b64encode(raw).decode(),
    }


def run(kind: str, requests: int, mib: float, concurrency: int, settle: float) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="serve-memory-"))
    db = folder / "s.db"
    # MiniLM: /upload needs a model to ingest with (it is loaded by the warm-up call).
    with Store.open(db, "minilm") as store:
        store.add_pages([Page(text="seed page")])
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    server = subprocess.Popen(
        serve_command(db, port, "--max-body-mb", str(int(mib) + 6)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "server.log", "wb"),  # noqa: SIM115
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "server did not start"
            time.sleep(0.2)
        body = payload(kind, mib)
        path = "/upload" if kind == "upload" else "/pages"
        with httpx.Client(base_url=base, timeout=600) as warm:
            warm.post("/upload", files={"files": ("w.bin", b"x" * 1000, "x/y")})
        time.sleep(1.0)
        before = rss_mib(server.pid)
        peak = before
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_mib(server.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.monotonic()

        def send(_: int) -> int:
            with httpx.Client(base_url=base, timeout=600) as client:
                return client.post(path, **body).status_code

        with ThreadPoolExecutor(concurrency) as pool:
            statuses = list(pool.map(send, range(requests)))
        seconds = time.monotonic() - started
        done.set()
        sampler.join()
        time.sleep(settle)
        after = rss_mib(server.pid)
        with httpx.Client(base_url=base, timeout=600) as client:
            tokens = client.get("/info").json()["store"]["tokens"]
        return {
            "kind": kind,
            "requests": requests,
            "body_mib": round(len(body.get("content", b"")) / (1 << 20), 1)
            if "content" in body
            else mib,
            "concurrency": concurrency,
            "statuses": sorted(set(statuses)),
            "rss_before_mib": round(before, 1),
            "rss_peak_mib": round(peak, 1),
            "rss_after_mib": round(after, 1),
            # What the stored pages themselves add: float32 vectors, held by the vector
            # cache and again by the flat candidate index.
            "stored_vectors_mib": round(tokens * DIM * 4 / (1 << 20), 1),
            "burst_seconds": round(seconds, 1),
            "load": round(os.getloadavg()[0], 1),
            "log": str(folder / "server.log"),
        }
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["upload", "pages", "pages-base64"], default="upload")
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--mib", type=float, default=26)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before 'after'")
    args = parser.parse_args()
    print(json.dumps(run(args.kind, args.requests, args.mib, args.concurrency, args.settle)))


if __name__ == "__main__":
    main()

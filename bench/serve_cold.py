"""`latestore serve` from a cold process: start to /ready, the first search, warm ones.

    python -m bench.serve_cold --store cran.db --query "wing slipstream" [--env K=V ...]

Prints seconds from process start to /ready, the first search after /ready, and the
median of the next searches (warm), plus the first search's ratio to a warm one.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True)
    parser.add_argument("--query", default="wing slipstream")
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    args = parser.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.update(item.split("=", 1) for item in args.env)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "latestore.cli",
            "serve",
            "--store",
            args.store,
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"serve exited with {process.returncode}")
            try:
                if httpx.get(f"{base}/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        ready = time.perf_counter() - start

        def search() -> float:
            began = time.perf_counter()
            response = httpx.post(
                f"{base}/search", json={"query": args.query, "k": 10}, timeout=600
            )
            response.raise_for_status()
            return time.perf_counter() - began

        first = search()
        warm = statistics.median(search() for _ in range(args.warm))
    finally:
        process.terminate()
        process.wait(timeout=60)
    print(f"load: {os.getloadavg()}")
    print(
        f"start->ready {ready:.2f} s; first search {first:.3f} s; warm median {warm:.3f} s; "
        f"first/warm {first / warm:.1f}x; start->first answer {ready + first:.2f} s"
    )


if __name__ == "__main__":
    main()

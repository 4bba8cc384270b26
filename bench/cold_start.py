"""Where a cold ``latestore search`` spends its CPU time.

Runs the CLI in fresh processes (a cold start each time) and reports user+sys CPU
seconds and wall seconds, then one run under cProfile with a CPU-time clock, listing
the functions (imports included) with the most cumulative CPU time.

    python -m bench.cold_start --store cran.db --query "wing slipstream" [--runs 3]

CPU time, not wall time, is the figure to compare on a shared machine: wall time
there mostly measures the other jobs.
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import resource
import subprocess
import sys
import time


def cold_run(argv: list[str]) -> tuple[float, float]:
    """(cpu seconds user+sys, wall seconds) of one ``latestore`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "latestore.cli", *argv],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def profile(argv: list[str], top: int) -> str:
    """The top ``top`` entries by cumulative CPU time of one in-process cold run."""
    code = (
        "import sys, cProfile, pstats, time\n"
        f"sys.argv = ['latestore', *{argv!r}]\n"
        "profiler = cProfile.Profile(time.process_time)\n"
        "profiler.enable()\n"
        "try:\n"
        "    from latestore.cli.main import main\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "profiler.disable()\n"
        "profiler.dump_stats(sys.argv[0] + '.prof')\n"
    )
    prof_file = f"/tmp/latestore-cold-{os.getpid()}"
    subprocess.run(
        [sys.executable, "-c", code.replace("sys.argv[0] + '.prof'", repr(prof_file + ".prof"))],
        check=False,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )
    text = io.StringIO()
    stats = pstats.Stats(prof_file + ".prof", stream=text)
    stats.sort_stats("cumulative").print_stats(top)
    os.unlink(prof_file + ".prof")
    return text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True)
    parser.add_argument("--query", default="wing slipstream")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    print(f"load: {os.getloadavg()}")
    for label, extra in (("maxsim", []), ("lexical", ["--mode", "lexical"])):
        argv = ["search", args.query, "-s", args.store, "-k", "3", *extra]
        runs = [cold_run(argv) for _ in range(args.runs)]
        cpus = sorted(c for c, _ in runs)
        walls = sorted(w for _, w in runs)
        print(
            f"{label:8s} cpu (user+sys) min {cpus[0]:.2f} s, median {cpus[len(cpus) // 2]:.2f} s; "
            f"wall min {walls[0]:.2f} s, median {walls[len(walls) // 2]:.2f} s"
        )
        if not args.no_profile:
            print(profile(argv, args.top))


if __name__ == "__main__":
    main()

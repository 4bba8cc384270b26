"""Cold CLI commands: CPU and wall seconds of each, in fresh processes, and where they go.

    python -m bench.cold_start --store cran.db [--query "wing slipstream"] [--runs 3]
                               [--profile maxsim] [--top 30]

Each command runs ``--runs`` times in a new interpreter (a cold start each time) after
one unmeasured run, which fills the bytecode cache and the OS page cache as any second
use of an installed package finds them; PYTHONDONTWRITEBYTECODE is dropped from the
children's environment for that reason (a shell that sets it compiles latestore's
modules from source on every run, about 0.1 s). Prints the machine (CPU model, cores),
the load average before and after, and per command the min and median of CPU seconds
(user+sys of the child) and wall seconds. ``--profile NAME`` then runs that command once
under cProfile with a CPU-time clock and lists the entries with the most cumulative time.

CPU time, not wall time, is the figure to compare on a shared machine: wall time there
mostly measures the other jobs. Compare runs made in the same window, alternately.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.cpu import cpu_model


def child_env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def cold_run(argv: list[str]) -> tuple[float, float]:
    """(cpu seconds user+sys, wall seconds) of one ``latestore`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "latestore.cli", *argv],
        check=True,
        stdout=subprocess.DEVNULL,
        env=child_env(),
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def profile(argv: list[str], top: int) -> str:
    """The top ``top`` entries by cumulative CPU time of one in-process cold run."""
    with tempfile.TemporaryDirectory() as scratch:
        stats_file = str(Path(scratch) / "cold.prof")
        code = (
            "import sys, cProfile, time\n"
            f"sys.argv = ['latestore', *{argv!r}]\n"
            "profiler = cProfile.Profile(time.process_time)\n"
            "profiler.enable()\n"
            "try:\n"
            "    from latestore.cli.main import main\n"
            "    main()\n"
            "except SystemExit:\n"
            "    pass\n"
            "profiler.disable()\n"
            f"profiler.dump_stats({stats_file!r})\n"
        )
        subprocess.run(
            [sys.executable, "-c", code], check=False, stdout=subprocess.DEVNULL, env=child_env()
        )
        text = io.StringIO()
        pstats.Stats(stats_file, stream=text).sort_stats("cumulative").print_stats(top)
    return text.getvalue()


def machine() -> str:
    model = cpu_model(platform.processor() or "unknown CPU")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores, Python {platform.python_version()}"


def commands(store: str, query: str) -> dict[str, list[str]]:
    return {
        "search (maxsim)": ["search", query, "-s", store, "-k", "3"],
        "search --mode lexical": ["search", query, "-s", store, "-k", "3", "--mode", "lexical"],
        "search --mode hybrid": ["search", query, "-s", store, "-k", "3", "--mode", "hybrid"],
        "info": ["info", "-s", store],
        "list": ["list", "-s", store, "--limit", "5"],
        "help": ["--help"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True)
    parser.add_argument("--query", default="wing slipstream")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", action="append", help="run only these commands (by label)")
    parser.add_argument("--profile", help="profile this command (label) once", default=None)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"load average before: {os.getloadavg()}")
    chosen = commands(args.store, args.query)
    for label, argv in chosen.items():
        if args.only and label not in args.only:
            continue
        cold_run(argv)  # unmeasured: bytecode and page caches, as on any later use
        runs = [cold_run(argv) for _ in range(args.runs)]
        cpus = [c for c, _ in runs]
        walls = [w for _, w in runs]
        print(
            f"{label:22s} cpu (user+sys) min {min(cpus):.2f} s, median "
            f"{statistics.median(cpus):.2f} s; wall min {min(walls):.2f} s, "
            f"median {statistics.median(walls):.2f} s"
        )
    print(f"load average after: {os.getloadavg()}")
    if args.profile:
        print(profile(chosen[args.profile], args.top))


if __name__ == "__main__":
    main()

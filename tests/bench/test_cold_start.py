"""bench/cold_start.py runs and reports the machine, the load and each command's figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_cold_start_bench_reports_cpu_and_wall_per_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.cold_start", "--store", str(tmp_path / "none.db"),
         "--only", "help", "--runs", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("machine: ") and "cores" in lines[0]
    assert lines[1].startswith("load average before: ")
    (row,) = [line for line in lines if line.startswith("help ")]
    assert "cpu (user+sys) min" in row and "wall min" in row
    assert lines[-1].startswith("load average after: ")

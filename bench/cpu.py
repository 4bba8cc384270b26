"""The CPU's model name, for the machine line every benchmark prints."""

from __future__ import annotations

from pathlib import Path


def cpu_model(fallback: str) -> str:
    """The first ``model name`` of /proc/cpuinfo, or ``fallback`` where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return fallback

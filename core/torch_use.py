"""Whether a search may skip torch: only in a process that answers one command and exits.

Importing torch costs 1.5-3 s of CPU, most of a cold ``latestore search`` on the default
model, so the CLI's one-off commands encode a few queries (encoders/text/bert_numpy.py)
and rerank host blocks (index/maxsim_numpy.py) with numpy while torch is not loaded.
A process that searches many times is better off with torch's kernels: on a 2-core EPYC
a SciFact search took 99 ms with them against 220 ms on the numpy paths, the numpy BERT
and block conversion being the difference. So the numpy paths are taken only after
:func:`declare_one_shot_process` (the CLI calls it) and only while torch is not loaded;
everywhere else the first search imports torch, as a server or a notebook wants.
"""

from __future__ import annotations

import sys

__all__ = ["declare_one_shot_process", "skip_torch"]

_one_shot = False


def declare_one_shot_process(one_shot: bool = True) -> None:
    """Say that this process runs one command and exits (so torch's import would cost
    more than its faster kernels save)."""
    global _one_shot
    _one_shot = one_shot


def skip_torch() -> bool:
    """Should this search's query encoding and host rerank run without torch?"""
    return _one_shot and "torch" not in sys.modules

"""Whether a search may skip torch, and when a process loads it.

Importing torch costs 1.5-3 s of CPU. A store opens in a fraction of that (the vector
file is mapped, the candidate index viewed), so a process whose first search imported
torch waited seconds for its first answer: at 1M tokens, open 0.2 s and first search
2.6 s, 2.5 s of it the import. So the host rerank (index/maxsim_numpy.py) and, in a
one-off command, query encoding (encoders/text/bert_numpy.py) run with numpy while torch
is not loaded, and:

* a process that searches many times (a server, a notebook, a Ray shard) answers its
  first candidate search with numpy and loads torch at its second
  (:func:`warm_torch` marks it wanted); torch's kernels are faster per search after that
  (a SciFact search: 99 ms against 220 ms on the numpy paths). The import is not done
  on a background thread: importing torch on one thread while another imports modules
  that need it can meet in the import system's deadlock detection, which hands one
  side a half-initialised torch (a test caught it: ``module 'torch' has no attribute
  'cuda'``);
* a process that runs one command and exits (the CLI calls
  :func:`declare_one_shot_process`) never imports torch for a candidate search.

Query encoding outside a one-off command still loads torch at once (:func:`skip_torch`):
the encoders keep one set of weights, and a process that encodes queries will encode
pages too.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "declare_one_shot_process",
    "host_rerank_without_torch",
    "loaded_torch",
    "rerank_choice",
    "rerank_with_numpy",
    "skip_torch",
    "torch_wanted",
    "warm_torch",
]

_one_shot = False
_wanted = False  # a first search went without torch; the next one loads it
_this_call = threading.local()  # the kernels one search chose, for all of its blocks


def declare_one_shot_process(one_shot: bool = True) -> None:
    """Say that this process runs one command and exits (so torch's import would cost
    more than its faster kernels save)."""
    global _one_shot
    _one_shot = one_shot


def skip_torch() -> bool:
    """Should query encoding run without torch? (Only in a one-off command.)"""
    return _one_shot and "torch" not in sys.modules


def loaded_torch() -> Any:
    """torch if it is imported and initialised, else None (never imports, never waits)."""
    torch = sys.modules.get("torch")
    if torch is None or getattr(getattr(torch, "__spec__", None), "_initializing", False):
        return None
    return torch


def host_rerank_without_torch() -> bool:
    """Should this candidate search score host blocks with numpy? Yes while torch is
    not loaded and this process has not asked for it yet (warm_torch)."""
    return loaded_torch() is None and not _wanted


def warm_torch() -> None:
    """A first candidate search went without torch: unless this is a one-off command,
    the next search loads it (see the module docstring)."""
    global _wanted
    if not _one_shot:
        _wanted = True


def torch_wanted() -> bool:
    """Should this search import torch now (a long-running process's later searches)?"""
    return _wanted and loaded_torch() is None


@contextmanager
def rerank_choice(use_numpy: bool) -> Iterator[None]:
    """Fix the host kernels for the body on this thread: a search decides once, so
    torch finishing its import mid-search does not switch kernels under it."""
    before = getattr(_this_call, "numpy", None)
    _this_call.numpy = use_numpy
    try:
        yield
    finally:
        _this_call.numpy = before


def rerank_with_numpy() -> bool:
    """Score host blocks with numpy? This search's choice, else whether torch is loaded."""
    chosen: bool | None = getattr(_this_call, "numpy", None)
    return host_rerank_without_torch() if chosen is None else chosen

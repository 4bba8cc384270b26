"""Whether a search may skip torch, and loading it off the search's critical path.

Importing torch costs 1.5-3 s of CPU. A store opens in a fraction of that (the vector
file is mapped, the candidate index read), so a process whose first search imported
torch waited seconds for its first answer: at 1M tokens, open 0.2 s and first search
2.6 s, 2.5 s of it the import. So the host rerank (index/maxsim_numpy.py) and, in a
one-off command, query encoding (encoders/text/bert_numpy.py) run with numpy while torch
is not loaded, and:

* a process that searches many times (a server, a notebook, a Ray shard) starts
  importing torch on a background thread once its first candidate search is done
  (:func:`warm_torch`); searches use torch's kernels as soon as it is loaded, which are
  faster per search (a SciFact search: 99 ms against 220 ms on the numpy paths, the
  numpy BERT and block conversion being the difference). The import is a plain thread,
  not a daemon: interpreter exit waits for it, as it would have waited in the search;
* a process that runs one command and exits (the CLI calls
  :func:`declare_one_shot_process`) never imports torch for a candidate search.

Query encoding outside a one-off command still loads torch at once (:func:`skip_torch`):
the encoders keep one set of weights, and a process that encodes queries will encode
pages too.
"""

from __future__ import annotations

import importlib
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
    "torch_warming",
    "warm_torch",
]

_one_shot = False
_warm_lock = threading.Lock()
_warmer: threading.Thread | None = None
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
    """torch if it is imported and ready, else None (never waits, never imports).

    torch enters ``sys.modules`` when its import starts; while the background import
    runs, touching it would block on the import lock, so it counts as not loaded."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    warmer = _warmer
    if warmer is not None and warmer.is_alive():
        return None
    return torch


def host_rerank_without_torch() -> bool:
    """Should this candidate search score host blocks with numpy? Yes while torch is
    not loaded, in any process: the import happens in the background (warm_torch)."""
    return loaded_torch() is None


def warm_torch() -> None:
    """Import torch on a background thread, once, unless this is a one-off command or
    torch is loaded already."""
    global _warmer
    if _one_shot or "torch" in sys.modules:
        return
    with _warm_lock:
        if _warmer is not None:
            return
        _warmer = threading.Thread(target=_import_torch, name="latestore-torch-import")
        _warmer.start()


def _import_torch() -> None:
    # The import is Python code that holds the GIL; a search thread that gives up the
    # GIL for each numpy op waits a switch interval (5 ms) to get it back, dozens of
    # times per search. A short interval while the import runs keeps searches moving.
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, 0.0002))
    try:
        importlib.import_module("torch")
    finally:
        sys.setswitchinterval(before)


def torch_warming() -> threading.Thread | None:
    """The background import's thread, if one was started (join it to wait for torch)."""
    return _warmer


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

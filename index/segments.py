"""Best-window scoring: a windowed page scored as its best window's MaxSim.

A page encoded in windows stores every window's vectors one after the other
(``ls_pages.window_rows`` says how many each holds). MaxSim over all of them grows with
the number of windows, so long pages win by length; the best single window does not
(docs/ranking-quality.md, section 2). Every exact scorer does it the same way: it
scores each window as if it were a page of its own (window-level lengths instead of
page lengths, so the kernels are unchanged) and keeps each page's maximum
(:func:`best_of`). Pages without windows are one segment: their score is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from latestore.index.vectors import Block

__all__ = [
    "WindowRows",
    "best_of",
    "record_windows",
    "rows_for",
    "split_blocks",
    "window_lengths",
]

# Page id -> rows per window, for the pages of several windows only.
WindowRows = Mapping[int, npt.NDArray[np.int64]]


def _windows_of(rows: npt.NDArray[np.int64] | None, length: int) -> npt.NDArray[np.int64] | None:
    # Rows that do not cover the page exactly (vectors and record read at different
    # moments, a page replaced meanwhile) leave it one segment: never a wrong split.
    if rows is None or int(rows.sum()) != length:
        return None
    return rows


def window_lengths(
    lengths: npt.NDArray[np.int64], rows: Sequence[npt.NDArray[np.int64] | None]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Segment lengths for ``lengths`` (one per page) split by ``rows``, and each page's
    number of segments.

    Examples
    --------
    >>> import numpy as np
    >>> window_lengths(np.array([3, 5]), [None, np.array([2, 3])])
    (array([3, 2, 3]), array([1, 2]))
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    counts = np.ones(len(lengths), dtype=np.int64)
    # Python touches the split pages only: most pages of most stores are one window.
    split = [
        (i, found)
        for i, found in enumerate(rows)
        if found is not None and _windows_of(found, int(lengths[i])) is not None
    ]
    if not split:
        return lengths, counts
    for i, found in split:
        counts[i] = len(found)
    segment_lengths = np.repeat(lengths, counts)
    first = np.cumsum(counts) - counts
    for i, found in split:
        segment_lengths[first[i] : first[i] + len(found)] = found
    return segment_lengths, counts


def best_of(
    scores: npt.NDArray[np.float32], segments: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """Each page's best segment score: ``scores`` ``(n_queries, n_segments)`` reduced
    to ``(n_queries, n_pages)`` by the segment counts of :func:`window_lengths`."""
    if len(segments) == 0:
        return np.zeros((scores.shape[0], 0), dtype=np.float32)
    if len(segments) == scores.shape[1]:
        return scores  # no page split
    starts = np.cumsum(segments) - segments
    best: npt.NDArray[np.float32] = np.maximum.reduceat(scores, starts, axis=1)
    return best


def rows_for(windows: WindowRows, page_ids: Iterable[int]) -> list[npt.NDArray[np.int64] | None]:
    return [windows.get(p) for p in page_ids]


def record_windows(
    windows: dict[int, npt.NDArray[np.int64]], rows: Mapping[int, Sequence[int] | None]
) -> None:
    """Record the rows per window of ``rows``' pages in ``windows``; a page given None or
    one window is dropped from it (it scores as one segment)."""
    for page_id, found in rows.items():
        if found is None or len(found) < 2:
            windows.pop(page_id, None)
        else:
            windows[page_id] = np.asarray(found, dtype=np.int64)


def split_blocks(
    blocks: Iterable[Block],
    rows: Sequence[npt.NDArray[np.int64] | None],
    segments: list[npt.NDArray[np.int64]],
) -> Iterator[Block]:
    """``blocks`` (of the pages ``rows`` describe, in order) with window-level lengths;
    appends each block's segment counts per page to ``segments`` as it goes."""
    start = 0
    for block in blocks:
        n = len(block.lengths)
        lengths, counts = window_lengths(block.lengths, rows[start : start + n])
        segments.append(counts)
        start += n
        yield Block(block.parts, lengths)

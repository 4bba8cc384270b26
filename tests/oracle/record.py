"""Compare latestore with a reference and record the figures for the README table.

Every oracle test writes one JSON file per family into ``build/oracle/`` (or
``$LATESTORE_ORACLE_DIR``); ``tools/oracle_table.py`` turns them into the README's
family x status table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

TOLERANCE = 1e-5
RESULTS_DIR = Path(
    os.environ.get("LATESTORE_ORACLE_DIR", Path(__file__).resolve().parents[2] / "build" / "oracle")
)


@dataclass(frozen=True)
class Comparison:
    """latestore against the reference on the same checkpoint and inputs."""

    family: str
    reference: str
    inputs: int
    token_counts_equal: bool
    max_abs_diff: float
    max_rel_score_diff: float
    status: str  # "equal", "known difference" or "different"
    note: str = ""

    def write(self) -> None:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{self.family.replace('/', '_').replace(' ', '_')}.json"
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


def maxsim(queries: Sequence[np.ndarray], pages: Sequence[np.ndarray]) -> np.ndarray:
    """Float64 MaxSim scores, queries x pages."""
    return np.array(
        [
            [float((q.astype(np.float64) @ p.astype(np.float64).T).max(1).sum()) for p in pages]
            for q in queries
        ]
    )


def compare(
    family: str,
    reference: str,
    ours: tuple[Sequence[np.ndarray], Sequence[np.ndarray]],
    theirs: tuple[Sequence[np.ndarray], Sequence[np.ndarray]],
    *,
    known_difference: str = "",
) -> Comparison:
    """Token counts, per-token vectors and MaxSim scores of (queries, pages) pairs."""
    ours_all = [*ours[0], *ours[1]]
    theirs_all = [*theirs[0], *theirs[1]]
    counts_equal = [a.shape for a in ours_all] == [b.shape for b in theirs_all]
    diff = (
        max(float(np.abs(a - b).max()) for a, b in zip(ours_all, theirs_all, strict=True))
        if counts_equal
        else float("inf")
    )
    score_diff = float("inf")
    if counts_equal:
        ours_scores, theirs_scores = maxsim(*ours), maxsim(*theirs)
        score_diff = float(
            (np.abs(ours_scores - theirs_scores) / np.maximum(np.abs(theirs_scores), 1e-12)).max()
        )
    equal = counts_equal and diff <= TOLERANCE
    status = "equal" if equal else ("known difference" if known_difference else "different")
    result = Comparison(
        family, reference, len(ours_all), counts_equal, diff, score_diff, status, known_difference
    )
    result.write()
    return result

"""Fusion rules of hybrid search, against the formulas they document."""

from __future__ import annotations

import doctest

import pytest

from latestore.index import fusion
from latestore.index.fusion import fuse

MAXSIM = {10: 3.0, 11: 2.5, 12: 2.0, 13: 0.5}
LEXICAL = [(13, 9.0), (12, 4.0), (99, 1.0)]  # 99: deleted after the lexical query


def test_documented_example_holds() -> None:
    failures, tried = doctest.testmod(fusion)
    assert tried > 0 and failures == 0


def test_rrf_is_the_sum_of_reciprocal_ranks() -> None:
    hits = fuse(MAXSIM, {10, 11, 12}, LEXICAL, k=10)
    expected = {
        10: 1 / 61,
        11: 1 / 62,
        12: 1 / 63 + 1 / 62,
        13: 1 / 64 + 1 / 61,
    }
    assert [h.page_id for h in hits] == sorted(expected, key=lambda p: -expected[p])
    for hit in hits:
        assert hit.score == pytest.approx(expected[hit.page_id], rel=1e-12)
        assert hit.maxsim_score == MAXSIM[hit.page_id]
    by_id = {h.page_id: h for h in hits}
    assert by_id[13].signals == ("lexical",) and by_id[13].lexical_rank == 1
    assert by_id[12].signals == ("maxsim", "lexical") and by_id[12].lexical_score == 4.0
    assert by_id[10].signals == ("maxsim",) and by_id[10].lexical_rank is None
    assert 99 not in by_id


@pytest.mark.parametrize("rule", ["rrf", "weighted"])
def test_weight_zero_is_maxsim_order_and_one_puts_lexical_first(rule: str) -> None:
    maxsim_only = fuse(MAXSIM, set(MAXSIM), LEXICAL, k=4, rule=rule, weight=0.0)
    assert [h.page_id for h in maxsim_only] == [10, 11, 12, 13]
    lexical_first = fuse(MAXSIM, set(MAXSIM), LEXICAL, k=4, rule=rule, weight=1.0)
    # Lexical order, then the pages without a lexical score by MaxSim.
    assert [h.page_id for h in lexical_first] == [13, 12, 10, 11]


def test_weighted_sum_of_normalised_scores() -> None:
    hits = fuse(MAXSIM, set(MAXSIM), LEXICAL, k=4, rule="weighted", weight=0.25)
    lex_norm = {13: 1.0, 12: 4.0 / 9.0}  # over the best lexical score among candidates
    expected = {
        p: 0.75 * (s - 0.5) / (3.0 - 0.5) + 0.25 * lex_norm.get(p, 0.0) for p, s in MAXSIM.items()
    }
    for hit in hits:
        assert hit.score == pytest.approx(expected[hit.page_id], rel=1e-12)


def test_constant_scores_normalise_to_one_and_ties_go_to_maxsim_then_id() -> None:
    hits = fuse({5: 1.0, 4: 1.0}, {4, 5}, [], k=2, rule="weighted")
    assert [h.page_id for h in hits] == [4, 5]
    assert [h.score for h in hits] == [0.5, 0.5]
    assert fuse({}, set(), [], k=3) == []


def test_k_cuts_and_unknown_rule_is_refused() -> None:
    assert len(fuse(MAXSIM, set(MAXSIM), LEXICAL, k=2)) == 2
    with pytest.raises(ValueError, match="fusion rule"):
        fuse(MAXSIM, set(MAXSIM), LEXICAL, k=2, rule="borda")

"""Fusion rules of hybrid search, against the formulas they document."""

from __future__ import annotations

import doctest

import numpy as np
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


def test_convex_with_no_agreement_is_maxsim_order() -> None:
    # MaxSim's top 2 (10, 11) and the lexical top 2 (13, 12) share nothing: share 0.
    hits = fuse(MAXSIM, set(MAXSIM), LEXICAL, k=4, rule="convex", weight=1.0, agree_at=2)
    assert [h.page_id for h in hits] == [10, 11, 12, 13]
    assert [h.score for h in hits] == pytest.approx([1.0, 0.8, 0.6, 0.0])


def test_convex_share_grows_with_agreement() -> None:
    # Top 4 of each: MaxSim {10, 11, 12, 13}, lexical {13, 12}: agreement 2/4, squared.
    hits = fuse(MAXSIM, set(MAXSIM), LEXICAL, k=4, rule="convex", weight=0.8, agree_at=4)
    share = 0.8 * (2 / 4) ** 2
    maxsim_norm = {10: 1.0, 11: 0.8, 12: 0.6, 13: 0.0}
    lexical_norm = {13: 1.0, 12: 0.0}  # min-max over the lexical hits among candidates
    expected = {
        p: (1 - share) * m + share * lexical_norm.get(p, 0.0) for p, m in maxsim_norm.items()
    }
    for hit in hits:
        assert hit.score == pytest.approx(expected[hit.page_id], rel=1e-12)
    assert [h.page_id for h in hits] == sorted(expected, key=lambda p: -expected[p])


@pytest.mark.parametrize("rule", ["convex", "rrf", "weighted"])
@pytest.mark.parametrize("seed", range(20))
def test_a_page_both_rankings_prefer_is_never_ranked_below(rule: str, seed: int) -> None:
    """Pareto: when MaxSim and the lexical ranking both put page a above page b (b
    unmatched by the lexical index counts as below every match), a stays above b."""
    rng = np.random.default_rng(seed)
    n = 40
    maxsim = {p: float(s) for p, s in enumerate(rng.normal(size=n))}
    matched = rng.choice(n, size=int(rng.integers(0, n)), replace=False)
    lexical_scores = np.sort(rng.exponential(size=len(matched)))[::-1]
    lexical = [(int(p), float(s)) for p, s in zip(matched, lexical_scores, strict=True)]
    weight = float(rng.uniform(0, 1))
    hits = fuse(maxsim, set(maxsim), lexical, k=n, rule=rule, weight=weight, agree_at=5)
    position = {h.page_id: i for i, h in enumerate(hits)}
    lexical_rank = {p: r for r, (p, _) in enumerate(lexical)}
    for a in range(n):
        for b in range(n):
            lexical_prefers = lexical_rank.get(a, n) < lexical_rank.get(b, n) or (
                a not in lexical_rank and b not in lexical_rank
            )
            if maxsim[a] > maxsim[b] and lexical_prefers:
                assert position[a] < position[b], (a, b)


def test_default_weights_per_rule() -> None:
    assert fusion.default_weight("rrf") == 0.5
    assert 0.0 < fusion.default_weight("convex") <= 1.0
    with pytest.raises(ValueError, match="fusion rule"):
        fusion.default_weight("borda")

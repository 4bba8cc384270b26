"""The typed search request (store/request.py): checked once at the facade, typed
options, and the old keyword spellings that still work with a DeprecationWarning."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from latestore import (
    HybridConfig,
    HybridOptions,
    Page,
    PrecomputedVectors,
    SearchTuning,
    Store,
    StoreConfig,
)
from latestore.config import FLAT_NAMES
from latestore.errors import InvalidInputError
from latestore.store.request import search_request

DIM = 8
TEXTS = ["pump gasket leak", "valve and pump", "reactor at night", "birds", "gasket wear"]


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    rng = np.random.default_rng(3)
    with Store.open(store_url, PrecomputedVectors(dim=DIM)) as opened:
        opened.add_pages([Page(text=t, vectors=_unit(rng, 4)) for t in TEXTS])
        yield opened


def _unit(rng: np.random.Generator, n: int) -> npt.NDArray[np.float32]:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    out: npt.NDArray[np.float32] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def _query() -> npt.NDArray[np.float32]:
    return _unit(np.random.default_rng(11), 3)


def test_a_request_is_frozen_and_carries_the_resolved_settings() -> None:
    config = StoreConfig()
    plain = search_request(config, ["pump"], 5, None)
    assert plain.mode == "maxsim" and plain.texts == ("pump",) and plain.phrase is None
    assert plain.settings is config  # no options: the store's own settings, not a copy
    with pytest.raises(AttributeError):
        plain.k = 6  # type: ignore[misc]
    tuned = search_request(
        config,
        [_query()],
        5,
        None,
        mode="hybrid",
        lexical_text=["pump"],
        tuning=SearchTuning(nprobe=4),
        hybrid=HybridOptions(fusion="rrf", depth=7),
    )
    assert tuned.settings.search.nprobe == 4 and tuned.settings.hybrid.fusion == "rrf"
    assert tuned.settings.hybrid.depth == 7
    assert tuned.settings.search.n_rerank == config.search.n_rerank  # the rest stays the store's
    assert config.search.nprobe == StoreConfig().search.nprobe  # the store's settings are untouched
    # lexical_weight=None given on purpose: the rule's default, over the store's value.
    weighted = StoreConfig(hybrid=HybridConfig(lexical_weight=0.3))
    assert search_request(weighted, ["x"], 1, None).settings.hybrid.lexical_weight == 0.3
    default = search_request(weighted, ["x"], 1, None, hybrid=HybridOptions(lexical_weight=None))
    assert default.settings.hybrid.lexical_weight is None


def test_typed_options_check_their_values_when_built() -> None:
    with pytest.raises(ValidationError):
        SearchTuning(nprobe=0)
    with pytest.raises(ValidationError):
        SearchTuning(nprobes=4)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        HybridOptions(fusion="max")  # type: ignore[arg-type]


def test_typed_option_bounds_match_the_store_config() -> None:
    # The options repeat StoreConfig's constraints; a change to one must reach the other.
    for model, renamed in ((SearchTuning, {}), (HybridOptions, {"depth": "hybrid_depth"})):
        for name, field in model.model_fields.items():
            group, field_name = FLAT_NAMES[renamed.get(name, name)]
            stored = StoreConfig.model_fields[group].annotation.model_fields[field_name]  # type: ignore[union-attr]
            assert field.metadata == stored.metadata, name


def test_request_arguments_are_refused_with_a_typed_error() -> None:
    config = StoreConfig()
    for bad in (0, 10_001, True, 2.5):
        with pytest.raises(InvalidInputError, match="k must be"):
            search_request(config, ["x"], bad, None)
    with pytest.raises(InvalidInputError, match="mode must be one of"):
        search_request(config, ["x"], 1, None, mode="bm25")
    with pytest.raises(InvalidInputError, match="phrase must be text"):
        search_request(config, ["x"], 1, None, phrase=" ")
    with pytest.raises(InvalidInputError, match="tuning must be a SearchTuning"):
        search_request(config, ["x"], 1, None, tuning=5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="needs the words of query 0"):
        search_request(config, [_query()], 1, None, mode="lexical")


def test_typed_options_rank_as_the_old_keywords_did(store: Store) -> None:
    query = _query()
    tuning = SearchTuning(nprobe=2, n_rerank=3, exhaustive_max_tokens=0)
    typed = store.search(query, k=3, tuning=tuning)
    with pytest.warns(DeprecationWarning, match="tuning=SearchTuning") as caught:
        loose = store.search(query, k=3, nprobe=2, n_rerank=3, exhaustive_max_tokens=0)
    assert caught[0].filename == __file__  # the warning names the caller's line
    assert typed == loose
    words = "pump gasket"
    hybrid = HybridOptions(fusion="rrf", depth=2)
    typed = store.search(query, k=3, mode="hybrid", lexical_text=words, hybrid=hybrid)
    with pytest.warns(DeprecationWarning, match="hybrid=HybridOptions"):
        loose = store.search(
            query, k=3, mode="hybrid", lexical_text=words, fusion="rrf", hybrid_depth=2
        )
    assert typed == loose


def test_exact_is_the_old_name_of_phrase(store: Store) -> None:
    typed = store.search("pump", k=5, mode="lexical", phrase="gasket leak")
    with pytest.warns(DeprecationWarning, match="use phrase="):
        old = store.search("pump", k=5, mode="lexical", exact="gasket leak")
    assert typed == old and [h.text for h in typed] == ["pump gasket leak"]
    with pytest.warns(DeprecationWarning), pytest.raises(InvalidInputError, match="not both"):
        store.search("pump", mode="lexical", phrase="gasket", exact="gasket")


def test_search_mode_is_a_duplicate_of_mode(store: Store) -> None:
    with pytest.warns(DeprecationWarning, match="use mode="):
        old = store.search("pump", k=5, search_mode="lexical")
    assert old == store.search("pump", k=5, mode="lexical")
    with pytest.warns(DeprecationWarning), pytest.raises(InvalidInputError, match="disagree"):
        store.search("pump", mode="maxsim", search_mode="lexical")


def test_unknown_keywords_and_mixed_spellings_are_refused(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="unknown search settings"):
        store.search(_query(), k=3, nprobes=4)
    with pytest.warns(DeprecationWarning), pytest.raises(InvalidInputError, match="not both"):
        store.search(_query(), k=3, tuning=SearchTuning(nprobe=2), nprobe=3)
    with pytest.warns(DeprecationWarning), pytest.raises(InvalidInputError, match="bad search"):
        store.search(_query(), k=3, nprobe=-1)

"""One search call as a frozen, typed request, validated once at the Store facade.

``Store.search`` and ``Store.search_many`` turn their arguments into a
:class:`SearchRequest` through :func:`search_request`, the one place a search's
arguments are checked: ``k``, the mode, the phrase, each query's words, and the
query-time options, typed as :class:`SearchTuning` (the MaxSim pipeline) and
:class:`HybridOptions` (fusion). Everything below the facade (the searcher, the mode
plan, the index) takes the request as it is.

Old spellings still work for one release, each with a ``DeprecationWarning``
(docs/deprecations.md): ``exact=`` (now ``phrase=``), the query-time settings as loose
keywords (``nprobe=8``: now ``tuning=SearchTuning(nprobe=8)``; ``fusion="rrf"``: now
``hybrid=HybridOptions(fusion="rrf")``), and ``search_mode=``, a second spelling of
``mode=``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from latestore.deprecation import warn_deprecated
from latestore.errors import InvalidInputError
from latestore.models import StoreConfig

__all__ = [
    "MAX_K",
    "MAX_PHRASE_CHARS",
    "SEARCH_MODES",
    "HybridOptions",
    "SearchMode",
    "SearchRequest",
    "SearchTuning",
    "check_k",
    "search_request",
]

MAX_K = 10_000
MAX_PHRASE_CHARS = 2_000
SearchMode = Literal["maxsim", "hybrid", "lexical"]
SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)


class SearchTuning(BaseModel):
    """Query-time settings of the MaxSim pipeline for one call; None: the store's.

    Each field means what the ``StoreConfig`` field of the same name means.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    k_per_token: int | None = Field(default=None, ge=1, le=65_536)
    nprobe: int | None = Field(default=None, ge=1)
    n_rerank: int | None = Field(default=None, ge=1)
    widen_above_tokens: int | None = Field(default=None, ge=0)
    exhaustive_max_tokens: int | None = Field(default=None, ge=0)
    device_exact: bool | None = None
    device_precision: Literal["exact", "fast"] | None = None

    def settings(self) -> dict[str, Any]:
        """The ``StoreConfig`` fields this call sets."""
        return {k: v for k, v in self.model_dump(exclude_unset=True).items() if v is not None}


class HybridOptions(BaseModel):
    """How the hybrid mode fuses its two rankings, for one call; None: the store's.

    ``depth`` is the store's ``hybrid_depth``. ``lexical_weight=None`` given on
    purpose means the fusion rule's default share, as in ``StoreConfig``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fusion: Literal["convex", "rrf", "weighted"] | None = None
    lexical_weight: float | None = Field(default=None, ge=0.0, le=1.0)
    rrf_k: int | None = Field(default=None, ge=1)
    depth: int | None = Field(default=None, ge=1, le=10_000)

    def settings(self) -> dict[str, Any]:
        """The ``StoreConfig`` fields this call sets."""
        given = self.model_dump(exclude_unset=True)
        out = {k: v for k, v in given.items() if v is not None or k == "lexical_weight"}
        if "depth" in out:
            out["hybrid_depth"] = out.pop("depth")
        return out


# Options given as None: one shared empty instance each (a search builds none).
_UNSET: dict[type[Any], Any] = {SearchTuning: SearchTuning(), HybridOptions: HybridOptions()}

# The loose keywords search() took before the typed options: each one's new home.
_LEGACY_TUNING = tuple(SearchTuning.model_fields)
_LEGACY_HYBRID = ("fusion", "lexical_weight", "rrf_k", "hybrid_depth")
QUERY_TIME_FIELDS = (*_LEGACY_TUNING, "search_mode", *_LEGACY_HYBRID)


class SearchRequest(NamedTuple):
    """A checked search call: what the searcher and the mode plan run.

    Immutable; a named tuple rather than a frozen dataclass because a search builds
    one per call and the tuple costs a tenth of the time to make (~0.3 us, not ~3).
    """

    queries: tuple[Any, ...]  # text, or an (n_tokens, dim) array, per query
    k: int
    filter: Mapping[str, Any] | None
    mode: SearchMode
    phrase: str | None  # every hit contains it (after the analyzer)
    exhaustive: bool  # score every allowed page exactly
    texts: tuple[str, ...]  # each query's words for the full-text index ("" if none)
    tuning: SearchTuning
    hybrid: HybridOptions
    settings: StoreConfig  # the store's settings with this call's options applied

    @property
    def needs_vectors(self) -> bool:
        return self.mode != "lexical"

    @property
    def reads_sql(self) -> bool:
        """Does ranking need SQL before the index (a phrase, or lexical hits)?"""
        return self.phrase is not None or self.mode != "maxsim"


_INTEGERS = (int, np.integer)


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, _INTEGERS) or not 0 < k <= MAX_K:
        raise InvalidInputError(f"k must be an integer between 1 and {MAX_K}, got {k!r}")
    return int(k)


def search_request(
    config: StoreConfig,
    queries: Sequence[Any],
    k: Any,
    filter: Mapping[str, Any] | None,
    *,
    exhaustive: bool = False,
    mode: str | None = None,
    phrase: str | None = None,
    lexical_text: Sequence[str | None] | None = None,
    tuning: SearchTuning | None = None,
    hybrid: HybridOptions | None = None,
    legacy: Mapping[str, Any] | None = None,
) -> SearchRequest:
    """Check one search call's arguments and resolve its settings, once.

    ``legacy`` holds the deprecated keywords (``exact``, ``search_mode`` and the loose
    query-time settings); each warns and goes to its new home.
    """
    if legacy:
        mode, phrase, tuning, hybrid = _from_legacy(dict(legacy), mode, phrase, tuning, hybrid)
    k = check_k(k)
    chosen = config.search.mode if mode is None else mode
    if chosen not in SEARCH_MODES:
        raise InvalidInputError(f"mode must be one of {list(SEARCH_MODES)}, got {chosen!r:.80}")
    if phrase is not None and (
        not isinstance(phrase, str) or not phrase.strip() or len(phrase) > MAX_PHRASE_CHARS
    ):
        raise InvalidInputError(
            f"phrase must be text of 1 to {MAX_PHRASE_CHARS} characters, not blank; "
            f"got {phrase!r:.80}"
        )
    tuning = _typed(SearchTuning, tuning, "tuning")
    hybrid = _typed(HybridOptions, hybrid, "hybrid")
    given: dict[str, Any] = {}
    if tuning is not _UNSET[SearchTuning]:
        given.update(tuning.settings())
    if hybrid is not _UNSET[HybridOptions]:
        given.update(hybrid.settings())
    # The options were validated by their own types: the merge needs no revalidation.
    settings = config.updated(given) if given else config
    texts = _query_words(chosen, queries, lexical_text)
    return SearchRequest(
        tuple(queries),
        k,
        filter,
        chosen,  # type: ignore[arg-type]  # checked against SEARCH_MODES above
        phrase,
        bool(exhaustive),
        texts,
        tuning,
        hybrid,
        settings,
    )


def _typed(kind: type[Any], value: Any, name: str) -> Any:
    if value is None:
        return _UNSET[kind]
    if isinstance(value, kind):
        return value
    if isinstance(value, Mapping):
        try:
            return kind.model_validate(dict(value))
        except ValidationError as exc:
            raise InvalidInputError(f"bad search settings: {exc}") from exc
    raise InvalidInputError(f"{name} must be a {kind.__name__}, got {value!r:.80}")


def _query_words(
    mode: str, queries: Sequence[Any], lexical_text: Sequence[str | None] | None
) -> tuple[str, ...]:
    """Each query's words for the full-text index: its text, or its ``lexical_text``."""
    if lexical_text is not None and not isinstance(lexical_text, list | tuple):
        raise InvalidInputError(
            f"lexical_text is text, or a list of texts for a list of queries; "
            f"got {lexical_text!r:.80}"
        )
    if lexical_text is not None and len(lexical_text) != len(queries):
        raise InvalidInputError(
            f"lexical_text has {len(lexical_text)} entries for {len(queries)} queries"
        )
    texts = []
    for i, query in enumerate(queries):
        given = lexical_text[i] if lexical_text is not None else None
        if given is not None and not isinstance(given, str):
            raise InvalidInputError(f"lexical_text entries are text, got {given!r:.80}")
        words = given if given is not None else query if isinstance(query, str) else None
        if words is None and mode != "maxsim":
            raise InvalidInputError(
                f"mode={mode!r} needs the words of query {i}: it is given as vectors, "
                "so pass lexical_text"
            )
        texts.append(words or "")
    return tuple(texts)


def _from_legacy(
    legacy: dict[str, Any],
    mode: str | None,
    phrase: str | None,
    tuning: SearchTuning | Mapping[str, Any] | None,
    hybrid: HybridOptions | Mapping[str, Any] | None,
) -> tuple[str | None, str | None, Any, Any]:
    """The deprecated keywords moved to their new homes, each with a warning."""
    unknown = sorted(set(legacy) - {"exact", *QUERY_TIME_FIELDS})
    if unknown:
        raise InvalidInputError(
            f"unknown search settings {unknown}; known: {['exact', *QUERY_TIME_FIELDS]}"
        )
    if "exact" in legacy:
        warn_deprecated("search(exact=...) is deprecated; use phrase=...")
        if phrase is not None:
            raise InvalidInputError("give phrase= or its old name exact=, not both")
        phrase = legacy.pop("exact")
    if "search_mode" in legacy:
        warn_deprecated("search(search_mode=...) is deprecated; use mode=...")
        old = legacy.pop("search_mode")
        if mode is not None and old != mode:
            raise InvalidInputError(f"mode={mode!r} and search_mode={old!r} disagree")
        mode = old
    loose_tuning = {key: legacy.pop(key) for key in _LEGACY_TUNING if key in legacy}
    if loose_tuning:
        warn_deprecated(
            f"search({', '.join(f'{key}=' for key in loose_tuning)}...) is deprecated; "
            "use tuning=SearchTuning(...)"
        )
        if tuning is not None:
            raise InvalidInputError("give tuning= or the loose settings it holds, not both")
        tuning = loose_tuning  # validated with the rest, as a mapping
    loose_hybrid = {key: legacy.pop(key) for key in _LEGACY_HYBRID if key in legacy}
    if loose_hybrid:
        warn_deprecated(
            f"search({', '.join(f'{key}=' for key in loose_hybrid)}...) is deprecated; "
            "use hybrid=HybridOptions(...) (hybrid_depth is its depth)"
        )
        if hybrid is not None:
            raise InvalidInputError("give hybrid= or the loose settings it holds, not both")
        if "hybrid_depth" in loose_hybrid:
            loose_hybrid["depth"] = loose_hybrid.pop("hybrid_depth")
        hybrid = loose_hybrid
    return mode, phrase, tuning, hybrid

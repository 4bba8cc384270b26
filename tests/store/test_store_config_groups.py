"""StoreConfig grouped by concern (issue 25 item 2): the grouped spelling, the flat
spelling's one-release shim, and stores whose settings were recorded flat."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from latestore import (
    DeviceConfig,
    HybridConfig,
    IndexConfig,
    MaintenanceConfig,
    MemoryConfig,
    Page,
    SearchConfig,
    StorageConfig,
    StoreConfig,
)
from latestore.config import BUILD_TIME_FIELDS, FLAT_NAMES
from latestore.errors import InvalidInputError
from latestore.store.schema import StoreRow
from latestore.store.sql import to_url
from tests.helpers import precomputed_store

DIM = 8

GROUPED = StoreConfig(
    storage=StorageConfig(vector_dtype="float32", text_analyzer="simple"),
    index=IndexConfig(ivf_min_tokens=500, ivf_codec="SQ8"),
    memory=MemoryConfig(vector_cache="memory"),
    device=DeviceConfig(precision="fast"),
    search=SearchConfig(nprobe=8, n_rerank=32, mode="hybrid"),
    hybrid=HybridConfig(fusion="rrf", depth=40),
    maintenance=MaintenanceConfig(change_log_keep=50),
)
# The same settings as a release before the groups spelled them (and recorded them).
FLAT: dict[str, Any] = {
    "vector_dtype": "float32",
    "text_analyzer": "simple",
    "ivf_min_tokens": 500,
    "ivf_codec": "SQ8",
    "vector_cache": "memory",
    "device_precision": "fast",
    "nprobe": 8,
    "n_rerank": 32,
    "search_mode": "hybrid",
    "fusion": "rrf",
    "hybrid_depth": 40,
    "change_log_keep": 50,
}


def test_seven_groups_each_frozen_with_the_old_defaults() -> None:
    config = StoreConfig()
    assert list(StoreConfig.model_fields) == [
        "storage",
        "index",
        "memory",
        "device",
        "search",
        "hybrid",
        "maintenance",
    ]
    assert (config.search.nprobe, config.storage.tier, config.hybrid.depth) == (16, "full", 100)
    assert (config.device.exact, config.memory.vector_cache) == (True, "disk")
    with pytest.raises(ValidationError, match="frozen"):
        config.search.nprobe = 3  # type: ignore[misc]
    # every recorded name has exactly one home, and every group field one recorded name
    homes = set(FLAT_NAMES.values())
    assert len(homes) == len(FLAT_NAMES) == 28
    assert homes == {
        (group, name)
        for group, field in StoreConfig.model_fields.items()
        for name in field.annotation.model_fields  # type: ignore[union-attr]
    }
    assert set(BUILD_TIME_FIELDS) <= set(FLAT_NAMES)


def test_flat_keywords_warn_and_give_the_grouped_config() -> None:
    with pytest.warns(DeprecationWarning, match=r"nprobe -> search\.nprobe") as caught:
        flat = StoreConfig(**FLAT)
    assert caught[0].filename == __file__  # points at the caller's line
    assert flat == GROUPED
    assert flat.flat() == GROUPED.flat()
    # a flat keyword beside its group's own keyword joins that group
    with pytest.warns(DeprecationWarning, match="search.nprobe"):
        mixed = StoreConfig(search=SearchConfig(n_rerank=5), nprobe=9)  # type: ignore[call-arg]
    assert (mixed.search.n_rerank, mixed.search.nprobe) == (5, 9)


def test_flat_reads_and_copies_warn_and_reach_the_group() -> None:
    with pytest.warns(DeprecationWarning, match=r"StoreConfig\.search\.nprobe"):
        assert GROUPED.nprobe == 8  # type: ignore[attr-defined]
    with pytest.warns(DeprecationWarning, match=r"StoreConfig\.hybrid\.depth"):
        assert GROUPED.hybrid_depth == 40  # type: ignore[attr-defined]
    with pytest.warns(DeprecationWarning, match=r"memory_dtype -> memory\.memory_dtype"):
        copied = GROUPED.model_copy(update={"memory_dtype": "float32"})
    assert copied.memory == MemoryConfig(vector_cache="memory", memory_dtype="float32")
    assert GROUPED.memory.memory_dtype is None  # the original is untouched
    with pytest.raises(AttributeError):
        _ = GROUPED.colour  # type: ignore[attr-defined]


def test_grouped_spellings_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert StoreConfig(search={"nprobe": 8}).search.nprobe == 8  # type: ignore[arg-type]
        assert StoreConfig.model_validate({"search": {"nprobe": 8}}).search.nprobe == 8
        assert StoreConfig.from_record(FLAT) == GROUPED  # a store's record: no warning
        assert StoreConfig.model_validate(GROUPED.model_dump()) == GROUPED
        assert GROUPED.updated({"nprobe": 3}).search.nprobe == 3


def test_bad_values_still_raise_validation_errors() -> None:
    for bad in (
        {"search": {"nprobe": 0}},
        {"index": {"ivf_codec": "zip"}},
        {"device": {"memory_share": 0.99}},
        {"storage": {"text_analyzer": "Not An Analyzer"}},
        {"search": {"colour": "blue"}},
        {"colour": "blue"},
    ):
        with pytest.raises(ValidationError):
            StoreConfig.model_validate(bad)
    with pytest.warns(DeprecationWarning), pytest.raises(ValidationError, match="nprobe"):
        StoreConfig(nprobe=0)  # type: ignore[call-arg]


def _recorded(url: str) -> dict[str, Any]:
    engine = create_engine(to_url(url))
    try:
        with Session(engine) as session:
            row = session.get(StoreRow, 1)
            assert row is not None
            return dict(row.config)
    finally:
        engine.dispose()


def _record(url: str, config: dict[str, Any]) -> None:
    engine = create_engine(to_url(url))
    try:
        with Session(engine) as session, session.begin():
            row = session.get(StoreRow, 1)
            assert row is not None
            row.config = config
    finally:
        engine.dispose()


def test_a_store_records_flat_names_and_opens_a_flat_record_unchanged(store_url: str) -> None:
    rng = np.random.default_rng(4)
    pages = [Page(text=f"page {i}", vectors=rng.standard_normal((5, DIM))) for i in range(6)]
    with precomputed_store(store_url, DIM, config=GROUPED) as store:
        store.add_pages(pages)
        before = [(h.page_id, h.score) for h in store.search("page", k=3, mode="lexical")]
    # written flat, the spelling every release so far reads
    recorded = _recorded(store_url)
    assert set(recorded) == set(FLAT_NAMES)
    assert recorded["ivf_codec"] == "SQ8" and recorded["text_analyzer"] == "simple"
    # a record as an older release wrote it: flat, and without the newer settings
    old = {k: v for k, v in recorded.items() if k not in ("window_scoring", "fusion", "rrf_k")}
    _record(store_url, old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing the user did warrants a warning
        with precomputed_store(store_url, DIM) as store:
            config = store.config
            assert (config.storage.vector_dtype, config.storage.text_analyzer) == (
                "float32",
                "simple",
            )
            assert (config.index.ivf_min_tokens, config.index.ivf_codec) == (500, "SQ8")
            # query-time settings come from the caller or the defaults, as before
            assert config.search.nprobe == SearchConfig().nprobe
            assert config.search.window_scoring == "union"  # a record without the setting
            after = [(h.page_id, h.score) for h in store.search("page", k=3, mode="lexical")]
    assert after == before
    # a build-time setting that differs from the record is still refused, by either spelling
    with pytest.raises(InvalidInputError, match="fixed when a store is created"):
        precomputed_store(store_url, DIM, config=StoreConfig(index=IndexConfig(ivf_codec="PQ")))
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(InvalidInputError, match="fixed when a store is created"),
    ):
        precomputed_store(store_url, DIM, config=StoreConfig(vector_dtype="int8"))  # type: ignore[call-arg]

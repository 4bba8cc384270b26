"""The store's one write entry point (``Database.write``) and the derived-index hook.

Every writer of a running store goes through ``with db.write() as tx``: these tests
pin what it promises each of them: the change number, commit then apply (never apply
without commit), rollback on an error or ``discard``, hooks only on commit, and a
derived index that can be swapped at open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from sqlalchemy import select

from latestore import Page, PrecomputedVectors, Store
from latestore.models import StoreConfig
from latestore.store.derived_index import DerivedIndex
from latestore.store.schema import PageRow, StoreRow
from latestore.store.sync import IndexSync
from latestore.store.writes import PreparedPage, write_pages
from tests.store.helpers import clustered_pages

DIM = 16
ENCODER = PrecomputedVectors(dim=DIM)


def head(store: Store) -> int:
    with store._db.session() as session:
        return int(session.execute(select(StoreRow.last_change)).scalar_one())


def prepared(page: Page) -> PreparedPage:
    assert page.vectors is not None
    return PreparedPage(page, page.vectors, page.content_hash(), None, "float16")


def test_a_write_commits_then_applies_its_change_to_the_index(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    pages, _ = clustered_pages(rng, 3, dim=DIM)
    with Store.open(tmp_path / "s.db", ENCODER) as store:
        before = head(store)
        seen: list[tuple[int, int]] = []
        with store._db.write() as tx:
            ids = write_pages(tx.session, [prepared(pages[0])], tx.change_no)
            # Not applied yet: the index holds only what SQL committed.
            assert ids[0] not in store._sync.index.vectors
            tx.on_commit(lambda: seen.append((head(store), len(store._sync.index.vectors))))
            tx.changed(ids, lambda: [pages[0].vectors])
        assert tx.change_no == before + 1 == head(store)
        # The hook ran after the commit, before the index applied the change.
        assert seen == [(before + 1, 0)]
        assert ids[0] in store._sync.index.vectors
        assert store._sync.applied_change == tx.change_no
        # A write that names no pages is read back from the change log.
        with store._db.write() as tx:
            (other,) = write_pages(tx.session, [prepared(pages[1])], tx.change_no)
        assert other in store._sync.index.vectors
        assert store.search(pages[1].vectors, k=1)[0].page_id == other


def test_an_error_or_discard_rolls_back_everything(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    pages, _ = clustered_pages(rng, 2, dim=DIM)
    with Store.open(tmp_path / "s.db", ENCODER) as store:
        before = head(store)
        hooks: list[str] = []
        with pytest.raises(RuntimeError, match="boom"), store._db.write() as tx:
            write_pages(tx.session, [prepared(pages[0])], tx.change_no)
            tx.on_commit(lambda: hooks.append("error"))
            raise RuntimeError("boom")
        with store._db.write() as tx:
            write_pages(tx.session, [prepared(pages[1])], tx.change_no)
            tx.on_commit(lambda: hooks.append("discard"))
            tx.discard()
        assert hooks == []
        assert head(store) == before  # the change numbers rolled back too
        assert store.count() == 0 and len(store._sync.index.vectors) == 0
        with store._db.session() as session:
            assert session.execute(select(PageRow.id)).first() is None
        # The write lock was released both times.
        assert store.add_pages([pages[0]]).added == 1


def test_a_write_without_a_change_takes_no_change_number(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    pages, _ = clustered_pages(rng, 1, dim=DIM)
    with Store.open(tmp_path / "s.db", ENCODER) as store:
        store.add_pages(pages)
        before = head(store)
        store.set_window_scoring("best")  # a setting: written through write(change=False)
        assert head(store) == before
        assert store.config.search.window_scoring == "best"
    with Store.open(tmp_path / "s.db") as again:
        assert again.config.search.window_scoring == "best"


class CountingStore(Store):
    """A Store whose derived index comes from its own loader (the swap-at-open hook)."""

    loads: ClassVar[list[StoreConfig]] = []

    @classmethod
    def _derived_index(
        cls,
        engine: Any,
        row: Any,
        config: StoreConfig,
        index_dir: Path | None,
        source: Any = None,
    ) -> DerivedIndex:
        default = super()._derived_index(engine, row, config, index_dir, source)

        def load(settings: StoreConfig) -> tuple[IndexSync, str]:
            cls.loads.append(settings)
            sync, _how = default.loader(settings)
            return sync, "counted"

        return DerivedIndex(load, config)


def test_the_derived_index_is_swapped_at_open_and_loads_on_first_use(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    pages, _ = clustered_pages(rng, 20, dim=DIM)
    with Store.open(tmp_path / "s.db", ENCODER) as store:
        store.add_pages(pages)
    with CountingStore.open(tmp_path / "s.db", load_index=False) as store:
        store.delete(external_ids=["doc-3"])  # a write: the unloaded index is not loaded
        assert CountingStore.loads == []
        hit = store.search(pages[5].vectors, k=1)[0]
        assert hit.external_id == "doc-5"
        assert store.opened_from == "counted" and len(CountingStore.loads) == 1
        assert len(store._sync.index.vectors) == store.count() == 19

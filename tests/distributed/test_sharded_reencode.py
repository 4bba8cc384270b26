"""Re-encoding through a sharded store: the Store's own re-encode, the shards catch up.

Before the sharded store was a Store by composition, ``reencode`` was refused on it.
Now it is the Store's: pages are re-encoded (here: windows off, so long pages are cut
to one window) in SQL, batch by batch, and
the shards replay the change log at the next search, which then equals a fresh single
Store's on the re-encoded data.
"""

from __future__ import annotations

from typing import Any

import pytest

from latestore import Store
from latestore.encoders.windows import WindowSettings
from tests.distributed.conftest import ranking_of
from tests.store.test_window_scoring import QUERIES, pages

pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")

from latestore.distributed import ShardedStore  # noqa: E402


def test_reencode_through_a_sharded_store(ray_session: Any, pg_database: str, minilm: Any) -> None:
    with ShardedStore.open(pg_database, minilm, shards=2) as sharded:
        sharded.add_pages(pages())
        before = sharded.encoding()
        old = sharded.search_many(QUERIES, k=5, mode="hybrid")
        report = sharded.reencode(WindowSettings(enabled=False), batch_size=4)
        assert report.pages_reencoded == sharded.count()
        after = sharded.encoding()
        assert after["windowing"] != before["windowing"]
        assert after["pages_truncated"] > before["pages_truncated"] == 0
        got = sharded.search_many(QUERIES, k=5, mode="hybrid")
        with Store.open(pg_database, index_dir=None) as single:
            assert single.encoder_fingerprint == sharded.encoder_fingerprint
            expected = single.search_many(QUERIES, k=5, mode="hybrid")
        assert [ranking_of(h) for h in got] == [ranking_of(h) for h in expected]
        # ...and the shards did move: the cut pages score apart from before.
        assert [ranking_of(h) for h in got] != [ranking_of(h) for h in old]

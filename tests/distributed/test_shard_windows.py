"""A shard of a best-window store scores its pages by their best window, like the store.

ShardServer is a plain class (Ray runs it as an actor): built here directly on a real
MiniLM windowed store, each shard's exact ranking and its pages' rescoring must equal
the brute-force best-window MaxSim of the pages it owns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latestore import Store
from latestore.distributed.shard import ShardServer
from latestore.encoders.text.minilm import MiniLMEncoder
from latestore.encoders.windows import WindowSettings
from latestore.index.ranking import SearchParams
from latestore.store.sql import to_url
from tests.store.test_window_scoring import QUERIES, brute_force, pages


def test_shards_score_the_best_window(tmp_path: Path, minilm: MiniLMEncoder) -> None:
    windowed = minilm.with_windowing(WindowSettings())
    path = tmp_path / "s.db"
    with Store.open(path, windowed) as store:
        store.add_pages(pages())
        query = store.encode_queries(QUERIES[:1])[0]
        want = brute_force(store, windowed, query, best=True)
    found: dict[int, float] = {}
    for shard in (0, 1):
        server = ShardServer(to_url(str(path)), shard, 2)
        assert server.sync.index.best_window
        (ranking,), _ = server.search([query], 20, SearchParams(), None, True, 0, (shard, 2))
        owned = {p: s for p, s in ranking}
        assert owned and not set(owned) & set(found)
        exact = SearchParams(device_precision="exact")
        (rescored,) = server.score([query], [np.array(sorted(owned))], exact, 0, (shard, 2))
        assert [p for p, _ in rescored] == sorted(owned)
        np.testing.assert_allclose(
            [s for _, s in rescored], [owned[p] for p in sorted(owned)], rtol=1e-6
        )
        found.update(owned)
        server.sync.index.vectors.clear()
        server.engine.dispose()
    assert set(found) == set(want)
    for page_id, score in found.items():
        assert score == pytest.approx(want[page_id], rel=1e-5)

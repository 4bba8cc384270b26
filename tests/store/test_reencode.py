"""Stores from before windows keep working; re-encoding switches them, resumably."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from sqlalchemy import create_engine, text

from latestore import Page, Store
from latestore.encoders.text.minilm import MiniLMEncoder
from latestore.encoders.windows import WindowSettings
from latestore.errors import EncoderMismatchError
from latestore.migrations.runner import alembic_config
from latestore.store.sql import to_url

FILLER = " ".join(f"Line {i}: the cook stirs the soup and tastes the broth." for i in range(40))
TAIL = "Glaciers in Iceland calve icebergs into the lagoon."


def pages() -> list[Page]:
    out = [Page(text=f"{FILLER} {TAIL}", external_id="long-0", metadata={"kind": "long"})]
    out += [
        Page(text=f"Short page {i} about {topic}.", external_id=f"short-{i}")
        for i, topic in enumerate(["turbines", "bread", "volcanoes", "sailing", "chess"])
    ]
    out.append(Page(text=f"{TAIL} " * 60, external_id="long-1"))
    return out


def truncating(minilm: MiniLMEncoder) -> MiniLMEncoder:
    return minilm.with_windowing(WindowSettings(enabled=False))


def windowed(minilm: MiniLMEncoder) -> MiniLMEncoder:
    return minilm.with_windowing(WindowSettings())


@pytest.fixture
def legacy(store_url: str, minilm: MiniLMEncoder) -> Iterator[str]:
    """A store as latestore wrote it before revision 0003: truncated pages, schema 0002."""
    with Store.open(store_url, truncating(minilm)) as store:
        store.add_pages(pages())
        store.add_pages([Page(vectors=np.eye(3, 384, dtype=np.float32), external_id="given")])
    # A plain engine: SQLite's foreign keys off, so rebuilding ls_pages cascades nothing.
    engine = create_engine(to_url(store_url))
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0002_change_log_pruning")
    engine.dispose()
    yield store_url


def test_a_store_from_before_windows_opens_and_searches(legacy: str, minilm: MiniLMEncoder) -> None:
    with Store.open(legacy) as store:  # migrates to 0003, loads its recorded encoder
        assert store.count() == 8
        assert store.encoder.fingerprint == truncating(minilm).fingerprint
        assert store.search("icebergs calving in Iceland", k=1)[0].external_id == "long-1"
        summary = store.encoding()
        assert summary["windowing"] == {"windows": False}
        assert summary["pages_uncounted"] == 8 and summary["pages_truncated"] == 0
    with Store.open(legacy, "minilm") as store:  # by name: the store's settings apply
        assert store.encoder.fingerprint == truncating(minilm).fingerprint
    with Store.open(legacy, windowed(minilm)) as store:  # differing only in windows, too
        assert store.encoder.fingerprint == truncating(minilm).fingerprint


def test_asking_for_other_window_settings_is_refused_with_the_way_out(legacy: str) -> None:
    with pytest.raises(EncoderMismatchError, match="reindex --re-encode"):
        Store.open(legacy, encoder_options={"windows": True}).encoder  # noqa: B018
    with Store.open(legacy) as store:
        assert store.encoding()["windowing"] == {"windows": False}


def test_reencode_switches_to_windows_and_matches_a_fresh_windowed_store(
    legacy: str, minilm: MiniLMEncoder, tmp_path: Path
) -> None:
    with Store.open(legacy) as store:
        report = store.reencode(batch_size=3)
        assert (report.pages_reencoded, report.pages_kept, report.pages_skipped) == (7, 1, 0)
        assert report.tokens_after > report.tokens_before
        assert report.fingerprint_after == windowed(minilm).fingerprint
        assert report.summary is not None and report.summary["pages_uncounted"] == 1
        assert report.summary["pages_truncated"] == 0
        query = minilm.encode_queries(["icebergs calving in Iceland"])[0]
        reencoded = store.search(query, k=8, exhaustive=True)
        assert store.get_by_external_id("given").n_tokens == 3  # given vectors kept
    with Store.open(legacy) as store:  # reopens with windows: they are recorded
        assert store.encoder.fingerprint == windowed(minilm).fingerprint
        assert store.encoding()["windowing"]["windows"] is True
    with Store.open(tmp_path / "fresh.db", windowed(minilm)) as fresh:
        fresh.add_pages(pages())
        expected = fresh.search(query, k=7, exhaustive=True)
    got = {h.external_id: h.score for h in reencoded if h.external_id != "given"}
    want = {h.external_id: h.score for h in expected}
    assert got.keys() == want.keys()
    for key, score in want.items():
        assert got[key] == pytest.approx(score, abs=2e-3)  # float16 storage rounding


def test_an_interrupted_reencode_resumes_where_it_stopped(legacy: str) -> None:
    class Crash(Exception):
        pass

    def crash_after_first_batch(done: int, total: int) -> None:
        raise Crash

    with Store.open(legacy) as store, pytest.raises(Crash):
        store.reencode(batch_size=2, on_progress=crash_after_first_batch)
    with Store.open(legacy) as store:  # still the old settings, half the pages new
        summary = store.encoding()
        assert summary["windowing"] == {"windows": False}
        assert summary["pages_pending_reencode"] == 2
        assert len(store.search("icebergs calving in Iceland", k=3)) == 3
        report = store.reencode(batch_size=2)
        assert report.pages_reencoded == 5
        assert store.encoding()["pages_pending_reencode"] == 0


def test_a_writer_opened_before_a_reencode_is_refused_after_it(
    legacy: str, minilm: MiniLMEncoder
) -> None:
    with Store.open(legacy) as old, Store.open(legacy) as other:
        old.encoder  # noqa: B018 - loaded with the old settings
        other.reencode()
        with pytest.raises(EncoderMismatchError, match="reopen"):
            old.add_pages([Page(text="A late page.", external_id="late")])
        assert other.count() == 8  # nothing of the refused write


def test_pages_cut_by_the_cap_are_counted(store_url: str) -> None:
    options = {"windows": True, "max_page_tokens": 300}
    with Store.open(store_url, encoder_options=options) as store:
        store.add_pages(pages())
        summary = store.encoding()
        assert summary["windowing"] == {
            "windows": True,
            "window_stride": 191,
            "max_page_tokens": 300,
        }
        assert summary["pages_truncated"] == 2 and summary["pages_uncounted"] == 0
        cut = {
            row.external_id: row.n_tokens
            for row in store.get_many(store.page_ids())
            if row.external_id.startswith("long")
        }
        assert cut == {"long-0": 300 + 2 * 2, "long-1": 300 + 2 * 2}
        dropped = summary["tokens_dropped"]
        assert dropped == summary["text_tokens"] - 300 * 2 - _short_tokens(store)
    with Store.open(store_url) as store:  # the recorded settings come back
        assert store.encoder.windowing.max_page_tokens == 300


def _short_tokens(store: Store) -> int:
    engine = store._engine
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT SUM(text_tokens) FROM ls_pages WHERE external_id LIKE 'short-%'")
            ).scalar_one()
        )

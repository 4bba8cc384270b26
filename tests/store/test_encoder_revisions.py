"""A store written by an earlier latestore revision of its encoder (a fix changed that
model's vectors) opens with the fixed encoder, says so, and re-encodes its old pages.

The earlier release is simulated on disk: a store is built, then its recorded
fingerprint and its pages' ``encoded_with`` are set to the encoder's superseded
fingerprint, which is what the earlier release wrote (the vectors' values do not matter
to the mechanism). The checkpoint is a tiny random-weight jina-colbert-v2 whose
sentencepiece vocabulary holds "▁(", the case the skiplist fix changed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import typer
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from latestore import Page, PrecomputedVectors, Store
from latestore.cli.common import reencode_settings
from latestore.cli.main import app
from latestore.encoders import Encoder, PageContent, fingerprint_of, revised_fingerprint
from latestore.encoders.registry import load_encoder
from latestore.encoders.windows import DEFAULT_MAX_PAGE_TOKENS, WindowSettings
from latestore.errors import EncoderMismatchError
from latestore.store.sql import to_url
from tests.encoders.checkpoints import write_hf_colbert, write_jina_colbert

TEXTS = ["the cat sat on the mat (hello)", "a dog ran (what) world", "late interaction search"]


@pytest.fixture(scope="module")
def jina_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jina_colbert(tmp_path_factory.mktemp("jina") / "jina", extra_pieces=("▁(",))


def record(url: str, fingerprint: str) -> None:
    """What the earlier release left: its fingerprint on the store and on every page."""
    engine = create_engine(to_url(url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE ls_store SET encoder_fingerprint = :f"), {"f": fingerprint})
        conn.execute(text("UPDATE ls_pages SET encoded_with = :f"), {"f": fingerprint})
    engine.dispose()


def behind(url: str, encoder: str | Path | Encoder) -> tuple[str, str]:
    """A store of the three TEXTS as the earlier release left it: ``(new, old)``
    fingerprints of its encoder. That release's stores read pages truncated (windows were
    not yet the default), so one loaded here by name does too."""
    options = {"windows": False} if isinstance(encoder, str | Path) else None
    with Store.open(url, encoder, encoder_options=options) as store:
        store.add_pages([Page(text=t, external_id=f"p{i}") for i, t in enumerate(TEXTS)])
        new, (old,) = store.encoder.fingerprint, store.encoder.supersedes
    record(url, old)
    return new, old


def recorded(url: str) -> str:
    engine = create_engine(to_url(url))
    with engine.connect() as conn:
        value = str(conn.execute(text("SELECT encoder_fingerprint FROM ls_store")).scalar_one())
    engine.dispose()
    return value


def test_revision_one_keeps_the_fingerprints_stores_already_have() -> None:
    parts = {"family": "x", "weights": "abc", "dim": 8}
    assert revised_fingerprint(parts, 1) == (fingerprint_of(parts), ())
    second, earlier = revised_fingerprint(parts, 2)
    assert earlier == (fingerprint_of(parts),) and second != fingerprint_of(parts)


def test_only_checkpoints_the_fix_changed_get_a_new_revision(
    jina_dir: Path, tmp_path: Path
) -> None:
    changed = load_encoder(jina_dir)
    assert len(changed.supersedes) == 1 and "PyLate" in changed.revision_note
    # Without a word-start symbol in the vocabulary both skiplist rules agree: the
    # fingerprint is the one the earlier release recorded.
    plain = load_encoder(write_jina_colbert(tmp_path / "plain"))
    bert = load_encoder(write_hf_colbert(tmp_path / "bert"))
    for encoder in (plain, bert):
        assert encoder.supersedes == () and encoder.revision_note == ""


def test_an_earlier_revision_opens_searches_and_is_re_encoded(
    store_url: str, jina_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    new, old = behind(store_url, jina_dir)
    with caplog.at_level(logging.WARNING, logger="latestore"), Store.open(store_url) as store:
        assert len(store.search("cat on the mat", k=10)) == 3  # loads the model
        assert "earlier revision" in caplog.text and "3 pages" in caplog.text
        # Reading writes nothing; the loaded revision counts the old pages as pending.
        assert store.encoder_fingerprint == old == recorded(store_url)
        assert store.encoding()["pages_pending_reencode"] == 3
        # The first write records the new revision, in its own transaction.
        store.add_pages([Page(text="a fourth page (new)", external_id="p3")])
        assert store.encoder_fingerprint == new == recorded(store_url)
        assert store.encoding()["pages_pending_reencode"] == 3  # the new page is current
        report = store.reencode("current")
        assert report.pages_reencoded == 3 and report.fingerprint_after == new
        assert store.encoding()["pages_pending_reencode"] == 0
        assert store.encoding()["windowing"] == {"windows": False}  # settings kept
        assert len(store.search("cat on the mat", k=10)) == 4
        first = store.get_by_external_id("p0")
        fresh = store.encoder.encode_pages([PageContent(text=TEXTS[0])])[0]
        np.testing.assert_allclose(store.page_vectors(first.page_id), fresh, atol=2e-3)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="latestore"), Store.open(store_url) as store:
        assert store.count() == 4 and store.encoder.fingerprint == new
        assert "earlier revision" not in caplog.text


def test_re_encoding_alone_records_the_new_revision(tmp_path: Path, jina_dir: Path) -> None:
    path = str(tmp_path / "store.db")
    new, old = behind(path, jina_dir)
    with Store.open(path, load_encoder(jina_dir)) as store:  # given at open: warned, no write
        assert store.encoder_fingerprint == old == recorded(path)
        report = store.reencode("current")
        assert report.fingerprint_before == old and report.pages_reencoded == 3
        assert store.encoder_fingerprint == new == recorded(path)


def test_a_read_only_store_of_an_earlier_revision_still_searches(
    tmp_path: Path, jina_dir: Path
) -> None:
    path = tmp_path / "store.db"
    _, old = behind(str(path), jina_dir)
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"  # SQLite refuses any write
    with Store.open(read_only, str(jina_dir)) as store:
        assert len(store.search("cat on the mat", k=10)) == 3
        assert store.encoder_fingerprint == old


def test_pooled_stores_follow_their_inner_model_s_revision(tmp_path: Path, jina_dir: Path) -> None:
    pooled = load_encoder(jina_dir, pool_factor=2)
    unpooled = load_encoder(jina_dir)
    assert len(pooled.supersedes) == 1 and pooled.supersedes[0] not in unpooled.supersedes
    path = str(tmp_path / "pooled.db")
    behind(path, pooled)
    with Store.open(path, pooled) as store:  # a pooled store of the earlier revision
        store.add_pages([Page(text="one more (page)")])
        assert store.encoder_fingerprint == pooled.fingerprint
    plain = str(tmp_path / "plain.db")
    behind(plain, unpooled)
    with pytest.raises(EncoderMismatchError):  # pooling never opens an unpooled store
        Store.open(plain, pooled)


def test_an_unrelated_fingerprint_is_still_refused(tmp_path: Path, jina_dir: Path) -> None:
    path = str(tmp_path / "store.db")
    with Store.open(path, str(jina_dir)) as store:
        store.add_pages([Page(text=TEXTS[0])])
    record(path, "0" * 32)
    with pytest.raises(EncoderMismatchError, match="cannot be mixed"):
        Store.open(path, str(jina_dir))
    with Store.open(path) as store, pytest.raises(EncoderMismatchError):
        store.encoder  # noqa: B018 - the recorded encoder loads (and is refused) on first use
    assert recorded(path) == "0" * 32  # nothing was rewritten by the refused opens


def test_the_cli_re_encodes_the_old_pages_with_the_stores_window_settings(
    tmp_path: Path, jina_dir: Path
) -> None:
    path = str(tmp_path / "store.db")
    _, old = behind(path, jina_dir)
    runner = CliRunner()
    done = runner.invoke(app, ["reindex", "--store", path, "--re-encode", "--no-windows", "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)["re_encode"]
    assert report["pages_reencoded"] == 3 and report["fingerprint_before"] == old
    assert report["windowing"] == {"windows": False}
    shown = json.loads(runner.invoke(app, ["info", "--store", path, "--json"]).stdout)
    assert shown["pages_pending_reencode"] == 0
    assert shown["encoder_fingerprint"] == report["fingerprint_after"] != old


def test_re_encode_settings_for_a_model_without_windows() -> None:
    encoder = PrecomputedVectors(dim=4)
    settings = WindowSettings()
    assert reencode_settings(encoder, settings, None, DEFAULT_MAX_PAGE_TOKENS) == "current"
    with pytest.raises(typer.Exit) as stopped:
        reencode_settings(encoder, settings, 64, DEFAULT_MAX_PAGE_TOKENS)
    assert stopped.value.exit_code == 2


def test_distributed_ingest_s_encoder_identity_carries_the_earlier_revisions(
    tmp_path: Path, jina_dir: Path
) -> None:
    # Ray's ingest describes the encoder once and writes through a replaying stand-in;
    # the stand-in must open a store of the earlier revision as the encoder itself does.
    from latestore.distributed.coordinator_sync import SqlOnlyStore
    from latestore.distributed.ingest_stages import identify_encoder
    from latestore.distributed.replay_encoder import replay_for

    path = str(tmp_path / "store.db")
    _, old = behind(path, jina_dir)
    identity = identify_encoder(to_url(path), str(jina_dir), {})
    assert identity.supersedes == (old,) and identity.revision_note
    with SqlOnlyStore.open(to_url(path), replay_for(identity)) as store:
        assert store.count() == 3

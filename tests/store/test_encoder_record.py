"""A store remembers how its encoder was built: hub id and commit, vector options.

The models are the suite's tiny checkpoints (a ColBERT and a ColQwen2) put into a hub
cache in the hub's own layout, loaded by hub id with HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import create_engine, text

from latestore import Page, Store
from latestore.encoders.registry import load_encoder
from latestore.errors import (
    EncoderMismatchError,
    EncoderNotFoundError,
    EncoderOptionConflictError,
)
from latestore.store.sql import to_url
from tests.encoders.checkpoints import write_hf_colbert
from tests.encoders.hub_cache import install
from tests.encoders.vision_checkpoints import build_colqwen2

COLBERT = "tiny-org/colbert-tiny"
COLQWEN = "tiny-org/colqwen2-tiny"
PIXELS = 16 * 28 * 28  # the tiny ColQwen2's processor allows 4 to 16 patches of 28x28


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("record-checkpoints")
    return {
        COLBERT: write_hf_colbert(root / "colbert"),
        COLQWEN: build_colqwen2(root / "colqwen2"),
    }


@pytest.fixture
def hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checkpoints: dict[str, Path]
) -> Path:
    cache = tmp_path / "hf" / "hub"
    for repo_id, folder in checkpoints.items():
        install(folder, cache, repo_id)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def stored(target: str) -> dict[str, object]:
    engine = create_engine(to_url(target))
    try:
        with engine.connect() as conn:
            row = dict(conn.execute(text("SELECT * FROM ls_store")).mappings().one())
    finally:
        engine.dispose()
    if isinstance(row["encoder_build"], str):  # SQLite hands JSON back as text
        row["encoder_build"] = json.loads(row["encoder_build"])
    return row


TEXTS = ["the cat sat on the mat", "late interaction search is what the store is"]


def test_hub_store_records_id_and_commit_and_reopens_after_the_cache_moves(
    store_url: str, hub_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store.open(store_url, encoder=COLBERT, encoder_options={"query_length": 8}) as store:
        store.add_pages([Page(text=t) for t in TEXTS])
        fingerprint = store.encoder.fingerprint
        before = store.search("cat mat", k=2)
    row = stored(store_url)
    assert row["encoder_spec"] == COLBERT
    assert str(hub_cache) not in str(row) and "snapshots" not in str(row)
    build = row["encoder_build"]
    assert isinstance(build, dict) and build["repo_id"] == COLBERT
    assert len(build["commit"]) == 40 and build["options"] == {"query_length": 8}
    # The cache moves (another machine, a new HF_HOME): the store still opens, with the
    # recorded options and commit, and nothing restated.
    moved = tmp_path / "elsewhere"
    shutil.move(str(hub_cache.parent), moved)
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(moved))
    with Store.open(store_url) as store:
        assert store.encoder.fingerprint == fingerprint
        assert store.encoder.build["options"] == {"query_length": 8}  # type: ignore[attr-defined]
        after = store.search("cat mat", k=2)
    assert [h.page_id for h in after] == [h.page_id for h in before]
    assert [h.score for h in after] == pytest.approx([h.score for h in before])
    # Restating the store's options is fine, runtime options are never conflicts.
    opts = {"query_length": 8, "device": "cpu", "batch_size": 3}
    with Store.open(store_url, encoder_options=opts) as store:
        assert store.encoder.fingerprint == fingerprint


def test_conflicting_option_is_named_with_both_values(store_url: str, hub_cache: Path) -> None:
    with Store.open(store_url, encoder=COLBERT, encoder_options={"query_length": 8}) as store:
        store.add_pages([Page(text=TEXTS[0])])
    with pytest.raises(EncoderOptionConflictError) as caught:
        Store.open(store_url, encoder_options={"query_length": 10})
    assert "query_length: the store was built with 8, given 10" in str(caught.value)
    # An encoder object built with another value: the same, named.
    other = load_encoder(COLBERT, query_length=10)
    with pytest.raises(EncoderOptionConflictError, match=r"query_length.*8.*has 10"):
        Store.open(store_url, other)


def test_mismatch_message_names_what_differs(store_url: str, hub_cache: Path) -> None:
    with Store.open(store_url, encoder=COLBERT) as store:  # the family's default length
        store.add_pages([Page(text=TEXTS[0])])
    # The store did not record a value (the family's default), so only the loaded
    # model can tell: the encoder is loaded at first use, and refused then.
    with (
        Store.open(store_url, encoder_options={"query_length": 6}) as store,
        pytest.raises(EncoderMismatchError) as caught,
    ):
        store.encoder  # noqa: B018 - the property loads it
    message = str(caught.value)
    assert "query_length: store 'the family default', given 6" in message


def test_vision_hub_model_keeps_its_pixel_budget(
    tmp_path: Path, hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "vision.db")
    image = Image.new("RGB", (90, 60), "white")
    with Store.open(path, encoder=COLQWEN, encoder_options={"max_pixels": PIXELS}) as store:
        store.add_pages([Page(image=_png(image))])
        fingerprint = store.encoder.fingerprint
        n_tokens = store.get(1).n_tokens
    with Store.open(path) as store:  # no options restated
        assert store.encoder.fingerprint == fingerprint
        store.add_pages([Page(image=_png(image.rotate(90)))])
        assert store.get(2).n_tokens == n_tokens
        assert len(store.search("what is the revenue?", k=2)) == 2
    with pytest.raises(EncoderOptionConflictError, match=f"max_pixels.*{PIXELS}.*{PIXELS // 4}"):
        Store.open(path, encoder_options={"max_pixels": PIXELS // 4})
    # Through an encoder loaded by hand with the store's options: accepted.
    with Store.open(path, load_encoder(COLQWEN, max_pixels=PIXELS)) as store:
        assert store.count() == 2


def test_moved_folder_says_how_to_fix_it(tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    folder = Path(shutil.copytree(checkpoints[COLBERT], tmp_path / "model"))
    path = str(tmp_path / "folder.db")
    with Store.open(path, encoder=folder, encoder_options={"query_length": 8}) as store:
        store.add_pages([Page(text=TEXTS[0])])
        fingerprint = store.encoder.fingerprint
    moved = folder.rename(tmp_path / "moved-model")
    store = Store.open(path)  # the encoder loads on first use
    with pytest.raises(EncoderNotFoundError) as caught:
        store.encoder  # noqa: B018 - the property loads it
    store.close()
    message = str(caught.value)
    assert str(folder) in message and "--encoder NEWDIR" in message
    assert "Store.open(..., encoder=NEWDIR)" in message
    with Store.open(path, encoder=moved) as store:  # recorded options applied to it
        assert store.encoder.fingerprint == fingerprint
        assert store.search(np.ones((1, 16), dtype=np.float32), k=1)


def _png(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()

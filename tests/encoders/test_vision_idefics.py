"""ColModernVBert and ColIdefics3 in colpali-engine's layout: loading, budget, refusals.

The checkpoints are tiny ones saved by colpali-engine's own classes (equality with the
reference is in tests/oracle/test_idefics_oracle.py); here: what latestore does around
them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latestore.encoders.base import PageContent
from latestore.encoders.registry import load_encoder
from latestore.errors import EncoderError, LatestoreError
from tests.encoders.vision_checkpoints import rename_weights
from tests.oracle.reference_idefics import build_engine_colidefics3, build_engine_colmodernvbert

BUILDERS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "colmodernvbert": (build_engine_colmodernvbert, "ColModernVBertEngineEncoder"),
    "colidefics3": (build_engine_colidefics3, "ColIdefics3Encoder"),
}
FAMILIES = list(BUILDERS)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("idefics")
    return {family: build(root / family) for family, (build, _) in BUILDERS.items()}


def _copy(source: Path, out: Path) -> Path:
    out.mkdir()
    for path in source.iterdir():
        (out / path.name).write_bytes(path.read_bytes())
    return out


def _page(width: int, height: int) -> PageContent:
    rng = np.random.default_rng(width * height)
    pixels = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    return PageContent(image=Image.fromarray(pixels))


@pytest.mark.parametrize("family", FAMILIES)
def test_registry_loads_the_engine_layout(family: str, built: dict[str, Path]) -> None:
    encoder = load_encoder(built[family], device="cpu")
    assert type(encoder).__name__ == BUILDERS[family][1]
    assert encoder.dim == 128
    (query,) = encoder.encode_queries(["revenue"])
    assert query.dtype == np.float32 and query.shape[1] == 128
    np.testing.assert_allclose(np.linalg.norm(query, axis=1), 1.0, atol=1e-5)
    assert load_encoder(built[family], device="cpu").fingerprint == encoder.fingerprint


@pytest.mark.parametrize("family", FAMILIES)
def test_batching_does_not_change_vectors(family: str, built: dict[str, Path]) -> None:
    """Padding in a batch (queries and pages of different lengths) is invisible."""
    pages = [_page(90, 40), _page(30, 30), _page(56, 120)]
    queries = ["a", "a much longer query about fiscal year expenditures"]
    one = load_encoder(built[family], device="cpu", batch_size=1)
    many = load_encoder(built[family], device="cpu", batch_size=4)
    for a, b in zip(
        one.encode_queries(queries) + one.encode_pages(pages),
        many.encode_queries(queries) + many.encode_pages(pages),
        strict=True,
    ):
        assert a.shape == b.shape
        assert float(np.abs(a - b).max()) < 1e-5


@pytest.mark.parametrize("family", FAMILIES)
def test_tiling_budget_sets_the_visual_tokens(family: str, built: dict[str, Path]) -> None:
    page = [_page(112, 56)]
    tiled = load_encoder(built[family], device="cpu")
    whole = load_encoder(built[family], device="cpu", image_splitting=False)
    (tiled_page,), (whole_page,) = tiled.encode_pages(page), whole.encode_pages(page)
    # Tiled: 2 tiles of 4 tokens + the global view; not tiled: the global view only.
    assert tiled_page.shape[0] > whole_page.shape[0]
    assert tiled.fingerprint != whole.fingerprint
    # A smaller page size before tiling: one tile's width, so one tile plus the global view.
    smaller = load_encoder(built[family], device="cpu", longest_edge=28)
    assert smaller.encode_pages(page)[0].shape[0] < tiled_page.shape[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_options_and_pages_are_refused(family: str, built: dict[str, Path]) -> None:
    with pytest.raises(EncoderError, match="max_image_size=56 cannot change it"):
        load_encoder(built[family], device="cpu", max_image_size=56)
    with pytest.raises(EncoderError, match="longest_edge"):
        load_encoder(built[family], device="cpu", longest_edge=10)
    with pytest.raises(EncoderError, match="batch_size"):
        load_encoder(built[family], device="cpu", batch_size=0)
    encoder = load_encoder(built[family], device="cpu")
    with pytest.raises(LatestoreError, match="page 0 has none"):
        encoder.encode_pages([PageContent(text="no image")])


@pytest.mark.parametrize("family", FAMILIES)
def test_misnamed_weights_are_refused(family: str, built: dict[str, Path], tmp_path: Path) -> None:
    model_dir = _copy(built[family], tmp_path / "renamed")
    rename_weights(model_dir, lambda k: k.replace("vision_model.", "vision_tower.", 1))
    with pytest.raises(EncoderError, match="vision_tower") as caught:
        load_encoder(model_dir, device="cpu")
    assert "randomly initialised" in str(caught.value)


@pytest.mark.parametrize("family", FAMILIES)
def test_missing_projection_is_refused(family: str, built: dict[str, Path], tmp_path: Path) -> None:
    model_dir = _copy(built[family], tmp_path / "headless")
    rename_weights(
        model_dir, lambda k: k.replace("custom_text_proj", "other").replace("linear.", "other.")
    )
    with pytest.raises(EncoderError, match="projection"):
        load_encoder(model_dir, device="cpu")


def test_hf_colmodernvbert_refuses_a_tile_size_its_tower_cannot_take(tmp_path: Path) -> None:
    """max_image_size other than the tower's input size used to crash at encode time."""
    from tests.encoders.vision_checkpoints import build_colmodernvbert

    model_dir = build_colmodernvbert(tmp_path / "hf")
    with pytest.raises(EncoderError, match="max_image_size=56 cannot change it"):
        load_encoder(model_dir, device="cpu", max_image_size=56)
    assert load_encoder(model_dir, device="cpu", max_image_size=28).dim == 16


@pytest.mark.parametrize("family", FAMILIES)
def test_a_store_ingests_and_searches_with_the_engine_layout(
    family: str, built: dict[str, Path], shared_data: Path, tmp_path: Path
) -> None:
    """The ViDoRe sample through ingest, the store and MaxSim, reopened by its spec."""
    from latestore import Store
    from latestore.ingest import IngestOptions, ingest_paths

    images = shared_data / "vidore_arxivqa_sample" / "images"
    report = ingest_paths(
        tmp_path / "vision.db",
        [images],
        IngestOptions(batch_size=4),
        encoder=load_encoder(built[family], device="cpu"),
    )
    assert report.exit_code == 0, report.to_dict()
    with Store.open(tmp_path / "vision.db", load_encoder(built[family], device="cpu")) as store:
        assert store.count() == len(list(images.glob("*.png")))
        hits = store.search("which figure shows the loss curve?", k=3, exhaustive=True)
        assert len(hits) == 3 and all(hit.has_image for hit in hits)
        own = store._sync.index.vectors.get(4)
        top = store.search(np.asarray(own, dtype=np.float32), k=1, exhaustive=True)[0]
        assert top.page_id == 4


@pytest.mark.parametrize("family", FAMILIES)
def test_separate_preprocessor_config_is_read(
    family: str, built: dict[str, Path], tmp_path: Path
) -> None:
    """Hub checkpoints keep the image processor in preprocessor_config.json."""
    import json

    from transformers import Idefics3ImageProcessor

    model_dir = _copy(built[family], tmp_path / "split")
    processor_config = json.loads((model_dir / "processor_config.json").read_text())
    saved = processor_config.pop("image_processor")
    (model_dir / "processor_config.json").write_text(json.dumps(processor_config))
    Idefics3ImageProcessor.from_dict(saved).save_pretrained(model_dir)
    assert (model_dir / "preprocessor_config.json").is_file()
    page = [_page(112, 56)]
    ours = load_encoder(model_dir, device="cpu").encode_pages(page)[0]
    expected = load_encoder(built[family], device="cpu").encode_pages(page)[0]
    assert ours.shape == expected.shape
    assert float(np.abs(ours - expected).max()) < 1e-6


@pytest.mark.parametrize("family", FAMILIES)
def test_bfloat16_runs_and_stays_close_to_float32(family: str, built: dict[str, Path]) -> None:
    """The dtype a GPU gets by default, here on the CPU: pixels follow the model's dtype."""
    page, query = [_page(112, 56)], ["revenue"]
    full = load_encoder(built[family], device="cpu")
    half = load_encoder(built[family], device="cpu", dtype="bfloat16")
    assert half.fingerprint == full.fingerprint  # same model and contract: same vectors
    for a, b in zip(
        full.encode_pages(page) + full.encode_queries(query),
        half.encode_pages(page) + half.encode_queries(query),
        strict=True,
    ):
        assert b.dtype == np.float32 and a.shape == b.shape
        cosines = (a * b).sum(axis=1)
        assert float(cosines.min()) > 0.95

"""A store with a (tiny, random-weight) vision encoder over real PDFs and ViDoRe images.

The checkpoint is written in the real ColQwen2 layout and loaded through the registry,
exactly as a user's downloaded checkpoint would be; only its weights are random, because
no model hub is reachable here. So the test checks the image path end to end (render,
encode, store, MaxSim, hydrate), not retrieval quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from latestore import Store
from latestore.encoders.registry import load_encoder
from latestore.ingest import IngestOptions, ingest_paths
from tests.encoders.vision_checkpoints import build_colqwen2


@pytest.fixture(scope="module")
def vision_store(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("vision")
    model = build_colqwen2(tmp / "colqwen2")
    encoder = load_encoder(model, max_pixels=64 * 28 * 28)
    report = ingest_paths(
        tmp / "vision.db",
        [shared_data / "pdfs", shared_data / "vidore_arxivqa_sample" / "images"],
        IngestOptions(dpi=24, batch_size=16),
        encoder=encoder,
    )
    assert report.exit_code == 0, report.to_dict()
    return tmp / "vision.db", model


def test_every_pdf_page_and_image_is_stored_with_its_image(vision_store: tuple[Path, Path]) -> None:
    path, model = vision_store
    with Store.open(path, load_encoder(model, max_pixels=64 * 28 * 28)) as store:
        assert store.count() == 97 + 10
        pages = store.get_many(range(1, store.count() + 1))
        assert all(p.has_image for p in pages)
        assert store.image(pages[0].page_id)[:8] == b"\x89PNG\r\n\x1a\n"  # type: ignore[index]
        pdf_pages = [p for p in pages if (p.source or "").endswith(".pdf")]
        assert len(pdf_pages) == 97
        assert len({p.document_id for p in pdf_pages}) == 8


def test_vidore_queries_are_answered(vision_store: tuple[Path, Path], shared_data: Path) -> None:
    path, model = vision_store
    folder = shared_data / "vidore_arxivqa_sample"
    queries = [
        json.loads(line)["text"] for line in (folder / "queries.jsonl").read_text().splitlines()
    ]
    with Store.open(path, load_encoder(model, max_pixels=64 * 28 * 28)) as store:
        approximate = store.search_many(queries, k=5)
        exhaustive = store.search_many(queries, k=5, exhaustive=True)
        for hits, exact in zip(approximate, exhaustive, strict=True):
            assert len(hits) == 5 and all(h.has_image for h in hits)
            assert [h.page_id for h in hits] == [h.page_id for h in exact]
        only_images = store.search(queries[0], k=20, filter={"document_id": {"$exists": True}})
        assert len(only_images) == 20
        # A page's own stored vectors, used as the query, find that page first.
        page = store.get(42)
        own = store._sync.index.vectors.get(42)
        top = store.search(np.asarray(own, dtype=np.float32), k=1, exhaustive=True)[0]
        assert top.page_id == page.page_id

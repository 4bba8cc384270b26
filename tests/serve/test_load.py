"""Writes never block reads: searches answer while an upload is being encoded and written."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from latestore import Page
from latestore.serve import ServeSettings, create_app
from latestore.store import Store
from tests.serve.live import live_server


def test_searches_answer_during_a_long_upload(tmp_path: Path, minilm: Any) -> None:
    db = tmp_path / "s.db"
    notes = "\n\n".join(
        f"Field note {i}: the tide pool held {i % 9} anemones and a hermit crab." for i in range(60)
    )
    with Store.open(db, minilm) as store:
        store.add_pages([Page(text="Hermit crabs change shells as they grow.", external_id="c")])
        app = create_app(store, ServeSettings(store=str(db), upload_dir=tmp_path / "up"))
        with live_server(app) as base:
            done: dict[str, float] = {}

            def upload() -> None:
                response = httpx.post(
                    f"{base}/upload",
                    files={"files": ("notes.txt", notes.encode(), "text/plain")},
                    data={"chunk_chars": "100"},
                    timeout=600,
                )
                assert response.status_code == 200, response.text
                done["upload"] = time.monotonic()
                done["pages"] = response.json()["pages_added"]

            writer = threading.Thread(target=upload)
            writer.start()
            answered = []
            with httpx.Client(base_url=base, timeout=60) as client:
                while writer.is_alive() and len(answered) < 200:
                    response = client.post("/search", json={"query": "hermit crab", "k": 3})
                    assert response.status_code == 200, response.text
                    answered.append(time.monotonic())
            writer.join(timeout=600)
        assert done["pages"] == 60
        # Searches kept answering while the upload was encoded and committed.
        during = [t for t in answered if t < done["upload"]]
        assert len(during) >= 3, (len(answered), len(during))
        assert store.count() == 61

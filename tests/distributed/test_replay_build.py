"""A store that a Ray ingest creates records the encoder's build as Store.open would.

The identity is made by the function the Ray actor runs, called here in-process.
"""

from __future__ import annotations

from pathlib import Path

from latestore.distributed.ingest_stages import identify_encoder
from latestore.distributed.replay_encoder import replay_for
from latestore.store import Store
from latestore.store.sql import to_url
from tests.encoders.checkpoints import write_hf_colbert


def test_replay_encoder_carries_the_build_into_the_new_store(tmp_path: Path) -> None:
    folder = write_hf_colbert(tmp_path / "model")
    db = tmp_path / "r.db"
    identity = identify_encoder(to_url(str(db)), str(folder), {"query_length": 8})
    replay = replay_for(identity)
    assert replay.build is not None and replay.build["options"] == {"query_length": 8}
    with Store.open(db, replay) as store:  # the store the coordinator creates
        assert store.count() == 0
    with Store.open(db) as store:  # reopened with the recorded options
        assert store.encoder.fingerprint == identity.fingerprint

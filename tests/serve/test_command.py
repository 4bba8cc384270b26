"""`latestore serve` as a user runs it: a separate process, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from latestore import Page
from latestore.store import Store
from tests.serve.live import free_port, serve_command

KEY = "a-key-for-the-command-test"


def start(db: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LATESTORE_API_KEY": KEY}
    return subprocess.Popen(
        serve_command(db, port, *extra),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stdout.read().decode() if process.stdout else "exited")
        try:
            if httpx.get(f"{base}/ready", headers={"X-API-Key": KEY}, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server never became ready")


def test_sigterm_finishes_the_request_in_flight(tmp_path: Path, minilm: Any) -> None:
    db = tmp_path / "s.db"
    with Store.open(db, minilm) as store:
        store.add_pages([Page(text="Bread rises because of yeast.", external_id="bread")])
    upload = tmp_path / "notes.txt"
    # Enough pages that encoding outlasts the 1 s below: serve loads the model before it
    # is ready, so the upload's time is encoding alone.
    upload.write_text("\n\n".join(f"Note {i} about topic {i % 7} and more." for i in range(600)))
    port = free_port()
    # The key comes from the environment; loopback would not need it, but it is checked.
    process = start(db, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        assert httpx.get(f"{base}/health").status_code == 401
        result: dict[str, Any] = {}

        def send() -> None:
            with upload.open("rb") as handle:
                result["response"] = httpx.post(
                    f"{base}/upload",
                    files={"files": ("notes.txt", handle, "text/plain")},
                    data={"chunk_chars": "100"},
                    headers={"X-API-Key": KEY},
                    timeout=300,
                )

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(1.0)  # the upload is being encoded (about 200 pages)
        assert "response" not in result, "the upload finished before the signal: test too weak"
        process.send_signal(signal.SIGTERM)
        sender.join(timeout=300)
        response = result["response"]
        assert response.status_code == 200, response.text
        added = response.json()["pages_added"]
        assert added >= 10
        # uvicorn finishes the requests, runs the app's shutdown (the store closes), then
        # re-raises the signal so the exit status says how the process ended.
        assert process.wait(timeout=120) in (0, -signal.SIGTERM)
        log = process.stdout.read().decode() if process.stdout else ""
        assert "Waiting for application shutdown" in log
        assert "Application shutdown complete" in log
    finally:
        if process.poll() is None:
            process.kill()
    with Store.open(db, minilm) as store:
        assert store.count() == 1 + added  # the acknowledged write is there after shutdown


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3"])
def test_refuses_to_listen_beyond_loopback_without_a_key(tmp_path: Path, host: str) -> None:
    db = tmp_path / "s.db"
    env = {k: v for k, v in os.environ.items() if k != "LATESTORE_API_KEY"}
    run = subprocess.run(
        [sys.executable, "-m", "latestore.cli", "serve", "--store", str(db), "--host", host],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "needs an API key" in run.stderr
    assert not db.exists()  # refused before anything was opened or created

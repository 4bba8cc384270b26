"""Crash-harness worker factory, run as ``python crash_child.py``.

Importing latestore (torch, faiss) costs seconds, too much to pay once per kill, so this
process imports it once and forks one writer per round. Each line on stdin is a JSON
round description; it answers ``pid N`` once the writer runs and ``exit S`` when the
writer is gone (S is negative for a signal). The writer ingests batches from
tests.reliability.corpus, appending ``b\\n`` to the ack file after ``add_pages`` for
batch ``b`` returned, until it is SIGKILLed: by the test from outside at a random
moment, or by itself from a hook placed inside an SQL commit or a snapshot write.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import Engine, event

import latestore.index.late_index as late_index
from latestore import PrecomputedVectors, Store
from latestore.store.sync import IndexSync
from tests.reliability.corpus import CONFIG, DIM, batch


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def die_soon(rng: random.Random, longest: float) -> None:
    """SIGKILL this process from a thread a moment from now, mid-way through whatever
    the main thread is doing (sqlite and file writes release the GIL)."""

    def later() -> None:
        time.sleep(rng.uniform(0.0, longest))
        die()

    threading.Thread(target=later, daemon=True).start()


class Countdown:
    def __init__(self, rng: random.Random) -> None:
        self.left = rng.randint(1, 4)

    def hit(self) -> bool:
        self.left -= 1
        return self.left == 0


def install_hooks(mode: str, rng: random.Random, postgres: bool) -> None:
    countdown = Countdown(rng)
    if mode == "commit" and postgres:
        # psycopg has no statement trace: die within milliseconds of SQLAlchemy issuing
        # the COMMIT, which lands before, during or after the server's commit.
        def on_commit(_connection: Any) -> None:
            if countdown.hit():
                die_soon(rng, 0.003)

        event.listen(Engine, "commit", on_commit)
    elif mode == "commit":

        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            def trace(statement: str) -> None:
                if statement.strip().upper() == "COMMIT" and countdown.hit():
                    die_soon(rng, 0.003)

            dbapi_connection.set_trace_callback(trace)

        event.listen(Engine, "connect", on_connect)
    elif mode == "after-commit":
        applied = IndexSync.applied_own

        def applied_then_die(self: IndexSync, *args: Any) -> None:
            if countdown.hit():
                die()  # committed in SQL, never acknowledged
            applied(self, *args)

        IndexSync.applied_own = applied_then_die  # type: ignore[method-assign,assignment]
    elif mode == "snapshot":
        write = late_index.write_snapshot  # type: ignore[attr-defined]

        def write_and_die(*args: Any) -> int:
            if countdown.hit():
                die_soon(rng, 0.004)
            return write(*args)

        late_index.write_snapshot = write_and_die  # type: ignore[attr-defined,assignment]
    elif mode in ("before-rename", "after-rename"):
        replace = os.replace

        def replace_and_die(src: Any, dst: Any) -> None:
            hit = countdown.hit()
            if hit and mode == "before-rename":
                die()  # temporary file complete and fsynced, old snapshot still in place
            replace(src, dst)
            if hit:
                die()  # renamed, directory not yet fsynced

        os.replace = replace_and_die  # type: ignore[assignment]


def writer(job: dict[str, Any]) -> None:
    rng = random.Random(job["seed"])
    install_hooks(job["mode"], rng, str(job["db"]).startswith("postgresql"))
    ack = os.open(job["acks"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    if job.get("op") == "reindex":
        reindex_forever(job, ack)
    elif job.get("op") == "reencode":
        reencode(job, ack)
    else:
        add_batches(job, ack)


def reindex_forever(job: dict[str, Any], ack: int) -> None:
    """Rebuild and snapshot the index again and again; ``reindex N`` after each."""
    store = Store.open(job["db"], PrecomputedVectors(dim=DIM), config=CONFIG)
    for number in range(job["max_batches"]):
        store.reindex()
        os.write(ack, f"reindex {number}\n".encode())
    store.close()


_MINILM: Any = None


def minilm() -> Any:
    """The text model, loaded once in this process (before forking) and shared."""
    global _MINILM
    if _MINILM is None:
        from latestore.encoders.text.minilm import MiniLMEncoder

        _MINILM = MiniLMEncoder()
        _MINILM.encode_queries(["warm the model up before any fork"])
    return _MINILM


def reencode(job: dict[str, Any], ack: int) -> None:
    """Re-encode the store to ``job["windows"]``; ``done N`` after each committed batch
    (N pages re-encoded so far), ``finished`` when the call returned."""
    from latestore.encoders.windows import WindowSettings

    store = Store.open(job["db"], minilm())

    def progress(done: int, _total: int) -> None:
        os.write(ack, f"done {done}\n".encode())

    store.reencode(WindowSettings(enabled=job["windows"]), batch_size=2, on_progress=progress)
    os.write(ack, b"finished\n")
    store.close()


def add_batches(job: dict[str, Any], ack: int) -> None:
    store = Store.open(job["db"], PrecomputedVectors(dim=DIM), config=CONFIG)
    for number in range(job["first"], job["first"] + job["max_batches"]):
        store.add_pages(batch(number))
        os.write(ack, f"{number}\n".encode())
    store.close()


def main() -> None:
    for line in sys.stdin:
        job = json.loads(line)
        if job.get("op") == "reencode":
            minilm()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                writer(job)
            except BaseException:
                traceback.print_exc()
                code = 3
            finally:
                os._exit(code)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    main()

"""A Hugging Face Hub cache written by hand, in the hub's own on-disk layout.

    <cache>/models--<org>--<name>/blobs/<sha256>
    <cache>/models--<org>--<name>/snapshots/<commit>/<file> -> ../../blobs/<sha256>
    <cache>/models--<org>--<name>/refs/main                   (the commit, no newline)

Tests put the tiny checkpoints the suite already builds there and point HF_HUB_CACHE
at it with HF_HUB_OFFLINE=1, so a model named by hub id loads with no network.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path


def commit_of(checkpoint: Path) -> str:
    """A 40-hex "commit" derived from the files (a stand-in for the hub's git sha)."""
    digest = hashlib.sha1(usedforsecurity=False)
    for path in sorted(p for p in checkpoint.rglob("*") if p.is_file()):
        digest.update(path.relative_to(checkpoint).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def install(checkpoint: Path, cache: Path, repo_id: str, *, ref: str | None = "main") -> str:
    """Put ``checkpoint`` into ``cache`` as ``repo_id``; point ``refs/<ref>`` at it.

    Returns the commit. Installing a second checkpoint under the same id adds a second
    snapshot (and moves the ref), as a new revision on the hub would.
    """
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = commit_of(checkpoint)
    snapshot = repo / "snapshots" / commit
    for path in sorted(p for p in checkpoint.rglob("*") if p.is_file()):
        blob_name = hashlib.sha256(path.read_bytes()).hexdigest()
        blob = repo / "blobs" / blob_name
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():
            shutil.copyfile(path, blob)
        link = snapshot / path.relative_to(checkpoint)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    if ref is not None:
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return commit

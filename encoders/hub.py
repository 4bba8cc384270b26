"""Models named by their Hugging Face Hub id (``org/name``), through ``huggingface_hub``.

The local hub cache is looked at first (no network at all when the model is there);
a model not in it is downloaded, with a progress bar, unless the hub is switched off
(``HF_HUB_OFFLINE=1``), where the error says the command that fetches it. A store
records the id and the commit it resolved to, never a cache path: it opens on another
machine, or after the cache moved, with the same weights.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latestore.errors import EncoderError, ModelNotCachedError

__all__ = ["HubModel", "fetch_command", "hub_cache_dir", "is_hub_id", "resolve"]

# The hub's own rule: one "/" between an owner and a name of letters, digits, "-_.".
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9_.-]{1,96}")
_COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class HubModel:
    """A hub model resolved to a folder of the local cache."""

    repo_id: str
    revision: str | None  # as asked: None (the default branch), a branch, tag or commit
    commit: str  # the commit the folder holds
    folder: Path

    def record(self) -> dict[str, Any]:
        """What a store keeps: enough to find the same weights anywhere."""
        return {"repo_id": self.repo_id, "revision": self.revision, "commit": self.commit}


def is_hub_id(spec: str) -> bool:
    """Does ``spec`` read as ``org/name`` and name no existing local path?"""
    if not _HUB_ID.fullmatch(spec) or spec.startswith(".") or ".." in spec:
        return False
    return not Path(spec).expanduser().exists()


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def offline() -> bool:
    """Read at call time: huggingface_hub reads its variables once, at import."""
    from huggingface_hub import constants

    env = os.environ
    return (
        _truthy(env.get("HF_HUB_OFFLINE"))
        or _truthy(env.get("TRANSFORMERS_OFFLINE"))
        or bool(constants.HF_HUB_OFFLINE)
    )


def hub_cache_dir() -> Path:
    """The hub cache this process uses: $HF_HUB_CACHE, else $HF_HOME/hub, else the default."""
    from huggingface_hub import constants

    env = os.environ
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def fetch_command(repo_id: str, revision: str | None) -> str:
    """The shell command that puts ``repo_id`` at ``revision`` into the hub cache."""
    pinned = f" --revision {revision}" if revision else ""
    return f"hf download {repo_id}{pinned}"


def resolve(repo_id: str, revision: str | None = None) -> HubModel:
    """The local folder of ``repo_id`` at ``revision``: from the cache, else downloaded.

    Raises
    ------
    ModelNotCachedError
        Not cached and the hub is off (or unreachable); the message has the command
        that fetches it.
    EncoderError
        The hub does not know the repository or the revision.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    cache = hub_cache_dir()
    try:
        folder = snapshot_download(
            repo_id, revision=revision, cache_dir=cache, local_files_only=True
        )
    except LocalEntryNotFoundError:
        folder = None
    if folder is None:
        if offline():
            raise ModelNotCachedError(_not_cached(repo_id, revision, cache, "the hub is off"))
        try:
            folder = _download(repo_id, revision, cache)
        except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
            # The hub's own message runs to several lines of advice; its first names why.
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise EncoderError(f"the Hugging Face Hub has no model {repo_id!r}: {why}") from exc
        except LocalEntryNotFoundError as exc:  # network down
            raise ModelNotCachedError(
                _not_cached(repo_id, revision, cache, f"the hub cannot be reached ({exc})")
            ) from exc
    path = Path(folder)
    commit = path.name if _COMMIT.fullmatch(path.name) else (revision or "unknown")
    return HubModel(repo_id=repo_id, revision=revision, commit=commit, folder=path)


def _not_cached(repo_id: str, revision: str | None, cache: Path, why: str) -> str:
    return (
        f"model {repo_id!r}{f' at revision {revision}' if revision else ''} is not in the "
        f"local Hugging Face cache ({cache}) and {why}. Fetch it with "
        f"`{fetch_command(repo_id, revision)}` (HF_HUB_CACHE/HF_HOME as for latestore), "
        "or unset HF_HUB_OFFLINE to let latestore download it, or pass a model folder."
    )


def _download(repo_id: str, revision: str | None, cache: Path) -> str:
    """Download with a progress bar on stderr, even where the CLI silenced tqdm."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils.tqdm import tqdm as hub_tqdm

    class Bar(hub_tqdm):  # type: ignore[misc, valid-type]
        # The CLI sets TQDM_DISABLE for the model loaders' bars; a download that may
        # take minutes shows one anyway (HF_HUB_DISABLE_PROGRESS_BARS still hides it).
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("disable", False)
            super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]

    print(f"downloading {repo_id} from the Hugging Face Hub into {cache}", file=sys.stderr)
    return str(snapshot_download(repo_id, revision=revision, cache_dir=cache, tqdm_class=Bar))

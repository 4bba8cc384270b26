"""Resolve an encoder from a registered name, a local model directory or a hub id.

A directory is matched against a table of *family modules*, tried in the order of
:data:`FAMILY_MODULES`. Each module exposes::

    detect(model_dir: Path, config: dict) -> bool   # cheap: reads config and file names
    load(model_dir: Path, **options) -> Encoder      # heavy: builds the model

so adding a model family is one new module and one line in :data:`FAMILY_MODULES`.
More specific layouts come first (a bge-m3 folder also looks like a plain
XLM-RoBERTa sentence-transformers folder).

Examples
--------
>>> from latestore.encoders.registry import load_encoder
>>> encoder = load_encoder("minilm")                        # doctest: +SKIP
>>> encoder = load_encoder("/models/colbertv2.0")           # doctest: +SKIP
>>> encoder = load_encoder("colbert-ir/colbertv2.0")        # doctest: +SKIP
>>> pooled = load_encoder("/models/colbertv2.0", pool_factor=2)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from latestore.encoders import hub
from latestore.encoders.base import Encoder
from latestore.encoders.build import RUNTIME_OPTIONS, build_options
from latestore.encoders.colbert_loading import read_json
from latestore.errors import EncoderError

__all__ = [
    "FAMILY_MODULES",
    "RUNTIME_OPTIONS",
    "build_options",
    "load_encoder",
    "register",
    "registered_names",
]


FAMILY_MODULES: list[str] = [
    "latestore.encoders.colbert_bgem3",
    "latestore.encoders.colbert_pylate",
    # Idefics3 families: matched on their architectures; before colbert, which takes any folder
    # with a `linear` projection.
    "latestore.encoders.colmodernvbert_engine",
    "latestore.encoders.colidefics3",
    "latestore.encoders.colbert",
    "latestore.encoders.colpali",
    "latestore.encoders.colpali_engine",  # colpali-engine's ColPali
    "latestore.encoders.colgemma3",  # colpali-engine's ColGemma3
    "latestore.encoders.colqwen35",
    "latestore.encoders.colqwen3",
    "latestore.encoders.colqwen2_engine",
]

_FACTORIES: dict[str, Callable[..., Encoder]] = {}


def register(name: str, factory: Callable[..., Encoder]) -> None:
    """Make ``load_encoder(name, **options)`` call ``factory(**options)``.

    Re-registering a name replaces its factory.
    """
    if not name or "/" in name:
        raise ValueError(f"encoder names must be non-empty and contain no '/': {name!r}")
    _FACTORIES[name] = factory


def registered_names() -> list[str]:
    """The names :func:`load_encoder` accepts besides directories."""
    return sorted(_FACTORIES)


def _minilm(**options: Any) -> Encoder:
    from latestore.encoders.minilm import MiniLMEncoder

    return MiniLMEncoder(**options)


register("minilm", _minilm)


def _describe(model_dir: Path, config: dict[str, Any]) -> str:
    files = sorted(p.name + ("/" if p.is_dir() else "") for p in model_dir.iterdir())
    shown = ", ".join(files[:20]) + (f" (+{len(files) - 20} more)" if len(files) > 20 else "")
    return (
        f"architectures={config.get('architectures')!r}, "
        f"model_type={config.get('model_type')!r}, files: {shown or 'none'}"
    )


def _family_of(model_dir: Path, config: dict[str, Any]) -> Any:
    for module_name in FAMILY_MODULES:
        module = importlib.import_module(module_name)
        if module.detect(model_dir, config):
            return module
    return None


def load_encoder(spec: str | Path, **options: Any) -> Encoder:
    """An encoder for a registered name, a local checkpoint directory or a hub id.

    Parameters
    ----------
    spec:
        A name from :func:`registered_names` (e.g. ``"minilm"``), a directory, or a
        Hugging Face Hub id (``"colbert-ir/colbertv2.0"``): taken from the local hub
        cache, downloaded when not there and the hub is on (see
        :mod:`latestore.encoders.hub`).
    **options:
        Passed to the family loader (``device``, ``dtype``, ``batch_size``, prompt
        overrides, ``max_pixels``...). ``pool_factor`` (int > 1) is handled here: page
        vectors are reduced by hierarchical token pooling (:class:`PooledEncoder`).
        ``revision`` pins a hub model to a branch, tag or commit.

    Returns
    -------
    Encoder
        With a ``spec`` attribute (the name, the directory's absolute path, or the hub
        id) and a ``build`` record (:func:`build_record`: the options that change
        vectors, and a hub model's commit), so a store reopens the same model.

    Raises
    ------
    EncoderError
        Unknown name, a directory no family recognises (what was found is named), or
        a checkpoint that fails to load.
    ModelNotCachedError
        A hub id not in the local cache while the hub is off; the message says how to
        fetch it.
    """
    options = dict(options)
    revision = options.pop("revision", None)
    pool_factor = options.pop("pool_factor", None)
    key = str(spec)
    build: dict[str, Any] = {"source": "name"}
    if isinstance(spec, str) and key in _FACTORIES:
        if revision is not None:
            raise EncoderError(f"revision= is for hub models, not the registered name {key!r}")
        encoder = _FACTORIES[key](**options)
        if not hasattr(encoder, "spec"):
            # The spec is what a store records to reopen the model.
            encoder.spec = key  # type: ignore[attr-defined]
    elif isinstance(spec, str) and hub.is_hub_id(key):
        model = hub.resolve(key, None if revision is None else str(revision))
        encoder = _load_folder(model.folder, options)
        encoder.spec = model.repo_id  # type: ignore[attr-defined]
        _name_after(encoder, model.folder.name, model.repo_id)
        build = {"source": "hub", **model.record()}
    else:
        model_dir = Path(spec).expanduser()
        if not model_dir.is_dir():
            raise EncoderError(
                f"unknown encoder {key!r}: neither a registered name "
                f"({', '.join(registered_names())}), a model directory, nor a Hugging Face "
                "Hub id (org/name)"
            )
        if revision is not None:
            raise EncoderError(f"revision= is for hub models, not the folder {model_dir}")
        encoder = _load_folder(model_dir, options)
        if not getattr(encoder, "spec", None):
            encoder.spec = str(model_dir.resolve())  # type: ignore[attr-defined]
        build = {"source": "folder"}
    if pool_factor is not None:
        from latestore.encoders.pooling import PooledEncoder

        encoder = PooledEncoder(encoder, pool_factor=int(pool_factor))
        options["pool_factor"] = int(pool_factor)
    encoder.build = {**build, **build_options(options)}  # type: ignore[attr-defined]
    return encoder


def _load_folder(model_dir: Path, options: dict[str, Any]) -> Encoder:
    config = read_json(model_dir / "config.json")
    family = _family_of(model_dir, config)
    if family is None:
        raise EncoderError(
            f"no encoder family recognises {model_dir}: {_describe(model_dir, config)}"
        )
    with _quiet_weight_bars():
        encoder: Encoder = family.load(model_dir, **options)
    return encoder


@contextmanager
def _quiet_weight_bars() -> Iterator[None]:
    """transformers draws a "Loading weights" bar for every checkpoint it loads; a
    library call draws none unless asked with LATESTORE_VERBOSE=1, as the CLI does.
    Both switches (transformers' and the hub's, which it also sets) are put back."""
    if os.environ.get("LATESTORE_VERBOSE"):
        yield
        return
    from huggingface_hub.utils.tqdm import are_progress_bars_disabled, disable_progress_bars
    from transformers.utils import logging as transformers_logging

    bars_on = transformers_logging.is_progress_bar_enabled()
    hub_off = are_progress_bars_disabled()
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if bars_on:
            transformers_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
        if hub_off:
            disable_progress_bars()


def _name_after(encoder: Encoder, folder_name: str, repo_id: str) -> None:
    """``colbert:<commit>`` (the snapshot folder's name) becomes ``colbert:org/name``."""
    name = str(getattr(encoder, "name", ""))
    if name.endswith(":" + folder_name):
        encoder.name = name[: -len(folder_name)] + repo_id

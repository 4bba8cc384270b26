"""Resolve an encoder from a registered name, a local model directory or a hub id.

Every encoder family registers itself, one way, with the :func:`register` decorator
in its own module::

    @register("colidefics3", detect=detect)       # a checkpoint layout: found by folder
    def load(model_dir: Path, **options) -> Encoder: ...

    @register("minilm")                            # no detector: loaded by its name
    def load(**options) -> Encoder: ...

``detect(model_dir, config)`` is cheap (it reads ``config.json`` and file names);
``load`` builds the model. A folder is offered to the layout families in registration
order, the ``generic=True`` ones (whose detector also matches other layouts, as
ColBERT's takes any folder with a top-level ``linear`` projection) last.

The built-in families live in the layout packages of :data:`LAYOUT_PACKAGES`
(``encoders/text``, ``encoders/vision``), each of which imports its family modules,
most specific first. They are imported on the first lookup, not with this module, so
importing the registry (or :mod:`latestore.encoders`) loads no torch.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

from latestore.encoders import hub
from latestore.encoders.base import Encoder
from latestore.encoders.build import RUNTIME_OPTIONS, build_options
from latestore.errors import EncoderError

__all__ = [
    "LAYOUT_PACKAGES",
    "RUNTIME_OPTIONS",
    "Family",
    "build_options",
    "families",
    "load_encoder",
    "register",
    "registered_names",
]

# The packages whose import registers the built-in families, in the order their
# layouts are tried (within a package, the order its __init__ imports them).
LAYOUT_PACKAGES: tuple[str, ...] = ("latestore.encoders.text", "latestore.encoders.vision")

Detector = Callable[[Path, dict[str, Any]], bool]
Loader = TypeVar("Loader", bound=Callable[..., Encoder])


@dataclass(frozen=True)
class Family:
    """One registered encoder family.

    ``detect`` is None for a family loaded by its name (``load(**options)``); otherwise
    ``load(model_dir, **options)`` builds it from a folder ``detect`` accepts.
    """

    name: str
    load: Callable[..., Encoder]
    detect: Detector | None = None
    generic: bool = False


_FAMILIES: dict[str, Family] = {}
_discovered = False


@overload
def register(
    name: str, factory: Loader, *, detect: Detector | None = None, generic: bool = False
) -> Loader: ...
@overload
def register(
    name: str, factory: None = None, *, detect: Detector | None = None, generic: bool = False
) -> Callable[[Loader], Loader]: ...
def register(
    name: str,
    factory: Loader | None = None,
    *,
    detect: Detector | None = None,
    generic: bool = False,
) -> Loader | Callable[[Loader], Loader]:
    """Register an encoder family; a decorator, or a call with the factory.

    Without ``detect``, ``load_encoder(name, **options)`` calls ``factory(**options)``.
    With it, ``load_encoder(folder)`` calls ``factory(folder, **options)`` for the
    first family whose ``detect(folder, config)`` is true. Re-registering a name
    replaces its family (keeping its place in the order).
    """
    if not name or "/" in name:
        raise ValueError(f"encoder names must be non-empty and contain no '/': {name!r}")

    def add(load: Loader) -> Loader:
        _FAMILIES[name] = Family(name, load, detect, generic)
        return load

    return add if factory is None else add(factory)


def _discover() -> None:
    # A layout package lists its family modules in the order a folder is tried; each
    # registers itself when imported.
    global _discovered
    if not _discovered:
        for package in LAYOUT_PACKAGES:
            for module in importlib.import_module(package).FAMILIES:
                importlib.import_module(f"{package}.{module}")
        _discovered = True


def _import_named(key: str) -> None:
    # A family looked up by name imports its own module only (the others import torch).
    for package in LAYOUT_PACKAGES:
        module = importlib.import_module(package).NAMED.get(key)
        if module is not None:
            importlib.import_module(f"{package}.{module}")


def _declared_order() -> dict[str, int]:
    """Each built-in family module's place in the order its layout package declares."""
    modules = [
        f"{package}.{module}"
        for package in LAYOUT_PACKAGES
        for module in importlib.import_module(package).FAMILIES
    ]
    return {module: place for place, module in enumerate(modules)}


def families() -> list[Family]:
    """Every registered family: the named ones, then the layouts in the order tried.

    Built-in layouts keep their packages' declared order (``FAMILIES``) however their
    modules happened to be imported; families registered from elsewhere follow them in
    registration order; generic layouts come last.
    """
    _discover()
    every = list(_FAMILIES.values())
    named = [f for f in every if f.detect is None]
    declared = _declared_order()
    layouts = sorted(
        (f for f in every if f.detect is not None),
        key=lambda f: declared.get(f.load.__module__, len(declared)),
    )
    return named + [f for f in layouts if not f.generic] + [f for f in layouts if f.generic]


def registered_names() -> list[str]:
    """The names :func:`load_encoder` accepts besides directories."""
    return sorted(f.name for f in families() if f.detect is None)


def _named(key: str) -> Family | None:
    if "/" in key:  # a path or a hub id: no name has a '/'
        return None
    family = _FAMILIES.get(key)
    if family is None and not _discovered:
        _import_named(key)
        family = _FAMILIES.get(key)
    if family is None and not _discovered:
        _discover()
        family = _FAMILIES.get(key)
    return family if family is not None and family.detect is None else None


def _describe(model_dir: Path, config: dict[str, Any]) -> str:
    files = sorted(p.name + ("/" if p.is_dir() else "") for p in model_dir.iterdir())
    shown = ", ".join(files[:20]) + (f" (+{len(files) - 20} more)" if len(files) > 20 else "")
    return (
        f"architectures={config.get('architectures')!r}, "
        f"model_type={config.get('model_type')!r}, files: {shown or 'none'}"
    )


def _family_of(model_dir: Path, config: dict[str, Any]) -> Family | None:
    for family in families():
        if family.detect is not None and family.detect(model_dir, config):
            return family
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
    named = _named(key) if isinstance(spec, str) else None
    if named is not None:
        if revision is not None:
            raise EncoderError(f"revision= is for hub models, not the registered name {key!r}")
        encoder = named.load(**options)
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
    from latestore.encoders.checkpoint import read_json

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


def __getattr__(name: str) -> Any:
    # The module list the registry read before families registered themselves.
    if name == "FAMILY_MODULES":
        from latestore.deprecation import warn_deprecated

        warn_deprecated(
            "registry.FAMILY_MODULES is deprecated (families register themselves with "
            "@register); use registry.families(); it goes in latestore 0.3"
        )
        return [f.load.__module__ for f in families() if f.detect is not None]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _name_after(encoder: Encoder, folder_name: str, repo_id: str) -> None:
    """``colbert:<commit>`` (the snapshot folder's name) becomes ``colbert:org/name``."""
    name = str(getattr(encoder, "name", ""))
    if name.endswith(":" + folder_name):
        encoder.name = name[: -len(folder_name)] + repo_id

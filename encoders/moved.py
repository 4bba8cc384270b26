"""The module paths the encoder families had before they were grouped by layout.

``latestore.encoders.minilm`` became ``latestore.encoders.text.minilm`` and so on
(docs/deprecations.md). Importing an old path still works for one release: it gives a
module that forwards every attribute to the new one, and warns once, at the importing
line. A forwarding module rather than the new module itself under a second name, so
the real module keeps its own ``__name__`` and ``__spec__`` (pickles and reloads name
the new path).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any

__all__ = ["MOVED", "install"]

_OLD = "latestore.encoders."

# old module name (under latestore.encoders) -> its new home
MOVED: dict[str, str] = {
    "bert_lite": "text.bert_lite",
    "colbert": "text.colbert",
    "colbert_bgem3": "text.bgem3",
    "colbert_jina": "text.jina",
    "colbert_loading": "text.loading",
    "colbert_options": "text.options",
    "colbert_pylate": "text.pylate",
    "colbert_text": "text.colbert_model",
    "minilm": "text.minilm",
    "text_pages": "text.pages",
    "colgemma3": "vision.colgemma3",
    "colidefics3": "vision.colidefics3",
    "colmodernvbert_engine": "vision.colmodernvbert_engine",
    "colpali": "vision.transformers_native",
    "colpali_engine": "vision.colpali_engine",
    "colqwen": "vision.qwen",
    "colqwen2_engine": "vision.colqwen2_engine",
    "colqwen3": "vision.colqwen3",
    "colqwen35": "vision.colqwen35",
    "idefics_engine": "vision.idefics",
    "vision_common": "vision.common",
}


class _Forwarder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_OLD) or fullname[len(_OLD) :] not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def exec_module(self, module: ModuleType) -> None:
        new = _OLD + MOVED[module.__name__[len(_OLD) :]]
        warnings.warn(
            f"{module.__name__} moved to {new}; the old path goes in latestore 0.3",
            DeprecationWarning,
            stacklevel=_importer_level(),
        )
        target = importlib.import_module(new)

        def forward(name: str) -> Any:
            return getattr(target, name)

        module.__getattr__ = forward  # type: ignore[method-assign]
        module.__all__ = list(getattr(target, "__all__", ()))  # type: ignore[attr-defined]
        module.__doc__ = f"Moved to {new}."


def _importer_level() -> int:
    """The stacklevel of the line that imported the old path, seen from exec_module.

    warnings counts every frame but importlib's ``_bootstrap`` ones; the line we want
    is the first frame outside importlib altogether (``importlib.import_module`` is
    a counted frame in between).
    """
    frame = sys._getframe(2)  # the caller of exec_module
    level = 2
    while frame.f_back is not None:
        filename = frame.f_code.co_filename
        if "importlib" not in filename:
            return level
        if "_bootstrap" not in filename:
            level += 1
        frame = frame.f_back
    return level


def install() -> None:
    """Serve the old paths (once per process)."""
    if not any(isinstance(finder, _Forwarder) for finder in sys.meta_path):
        sys.meta_path.append(_Forwarder())

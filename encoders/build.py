"""Which loader options a store records: those that change vectors.

Kept apart from the registry (which imports the model stack) so that opening a store,
which checks given options against the recorded ones, imports no torch.
"""

from __future__ import annotations

import json
from typing import Any

from latestore.encoders.windows import WINDOW_OPTIONS

__all__ = ["RUNTIME_OPTIONS", "build_options"]

# Loader options that change how an encoder runs, never the vectors it gives (compute
# dtype included: bfloat16 vectors stay within cosine 0.999, the same model to a store).
RUNTIME_OPTIONS = frozenset({"device", "dtype", "batch_size", "name", "revision"})


def build_options(options: dict[str, Any]) -> dict[str, Any]:
    """``{"options": ..., "unrecorded": [...]}``: the loader options that change vectors.

    Runtime options (device, compute dtype, batch size, display name) do not change
    them; window settings are recorded on their own (``ls_store.encoder_windowing``), as
    ``reindex --re-encode`` changes them. A value JSON cannot hold (an object) is named
    under ``unrecorded``: a later opener has to give it again.
    """
    recorded: dict[str, Any] = {}
    unrecorded: list[str] = []
    for key, value in sorted(options.items()):
        if key in RUNTIME_OPTIONS or key in WINDOW_OPTIONS:
            continue
        try:
            recorded[key] = json.loads(json.dumps(value))
        except (TypeError, ValueError):
            unrecorded.append(key)
    return {"options": recorded, "unrecorded": unrecorded}

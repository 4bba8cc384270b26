"""`latestore ingest --ray-encoders N`: the CLI's ingestion, run on a Ray cluster."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from latestore.errors import InvalidInputError
from latestore.ingest import IngestOptions, IngestProgress, IngestReport


def ingest_on_ray(
    target: str,
    paths: Sequence[Path],
    options: IngestOptions,
    *,
    encoder: str | None,
    encoder_dtype: str | None,
    progress: IngestProgress,
    encoders: int,
    gpus_per_encoder: float,
    address: str | None,
    encoder_options: dict[str, Any] | None = None,
) -> IngestReport:
    """Connect to the cluster (``address``, else $RAY_ADDRESS, else a local one) and ingest."""
    try:
        import ray
    except ImportError as exc:
        raise InvalidInputError("--ray-encoders needs Ray: pip install 'latestore[ray]'") from exc
    from latestore.distributed.ingest import ray_ingest_paths

    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS"), logging_level=logging.ERROR)
    return ray_ingest_paths(
        target,
        paths,
        options,
        encoder=encoder,
        encoder_options={
            **(encoder_options or {}),
            **({"dtype": encoder_dtype} if encoder_dtype else {}),
        }
        or None,
        progress=progress,
        encoders=encoders,
        gpus_per_encoder=gpus_per_encoder,
    )

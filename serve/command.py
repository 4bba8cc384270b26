"""The ``latestore serve`` command (registered by latestore.cli; FastAPI loads only here)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from latestore.cli.common import (
    EncoderOptionsOption,
    ExistingEncoderOption,
    StoreOption,
    fail,
    open_existing,
)

if TYPE_CHECKING:
    from latestore.store import Store


def serve(
    store: StoreOption,
    host: Annotated[str, typer.Option(help="Address to bind; beyond loopback needs a key.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.", min=0, max=65535)] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(
            help="Key every request must carry (X-API-Key or Bearer); "
            "default: $LATESTORE_API_KEY. Required off loopback.",
        ),
    ] = None,
    search_workers: Annotated[int, typer.Option(help="Parallel searches.", min=1)] = 8,
    write_workers: Annotated[int, typer.Option(help="Parallel writes.", min=1)] = 2,
    queue_size: Annotated[
        int, typer.Option(help="Requests that may wait for a worker; more get 503.", min=0)
    ] = 64,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body, MiB.", min=0.001)] = 32,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(help="Allow browser calls from this origin (repeatable; off by default)."),
    ] = None,
    upload_dir: Annotated[
        Path | None, typer.Option(help="Scratch folder for uploads (default: the temp folder).")
    ] = None,
    graceful_seconds: Annotated[
        float, typer.Option(help="How long shutdown waits for requests in flight.", min=0)
    ] = 30,
    header_timeout: Annotated[
        float, typer.Option(help="Seconds a connection has to send a request's headers.", min=0.1)
    ] = 10,
    body_timeout: Annotated[
        float, typer.Option(help="Seconds a request has to send its body.", min=0.1)
    ] = 120,
    torch_threads: Annotated[
        int,
        typer.Option(
            help="CPU threads one request's model and kernels use; concurrent requests "
            "bring the parallelism.",
            min=1,
        ),
    ] = 1,
    encoder: ExistingEncoderOption = None,
    encoder_option: EncoderOptionsOption = None,
) -> None:
    """Serve the store over HTTP: the API (OpenAPI at /docs) and a search page at /.

    The encoder is loaded and one search runs before the server listens, so /ready
    answers only once a search is as fast as it will be; a store whose encoder cannot
    be loaded stops here (exit 2) instead of failing its first search."""
    limit_compute_threads(torch_threads)
    try:
        import uvicorn

        from latestore.serve import ServeSettings, create_app
    except ImportError as exc:
        fail(f"latestore serve needs the serve extra (pip install 'latestore[serve]'): {exc}")
    from latestore.errors import LatestoreError

    try:
        settings = ServeSettings(
            store=store,
            host=host,
            port=port,
            api_key=api_key or ServeSettings.key_from_env(),
            search_workers=search_workers,
            write_workers=write_workers,
            queue_size=queue_size,
            max_body_bytes=int(max_body_mb * (1 << 20)),
            cors_origins=tuple(cors_origin or ()),
            upload_dir=upload_dir,
            graceful_seconds=graceful_seconds,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
        )
        opened = open_existing(store, encoder, options=encoder_option)
    except LatestoreError as exc:
        fail(str(exc))
    try:
        seconds = warm_up(opened)
    except Exception as exc:  # loaders raise more than EncoderError (OSError, ...)
        opened.close()
        fail(f"cannot serve {store}: its encoder does not load or search: {exc}")
    print(f"latestore: encoder {opened.encoder_name!r} loaded, warm-up search {seconds:.2f} s",
          file=sys.stderr)  # fmt: skip
    from latestore.serve.connections import redacting_log_config, timed_protocol

    app = create_app(opened, settings, close_store=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        timeout_graceful_shutdown=int(graceful_seconds) or None,
        log_level="info",
        http=timed_protocol(settings.header_timeout),
        log_config=redacting_log_config(),
    )


def warm_up(store: Store) -> float:
    """Load the encoder and the index, and run one search through them; its seconds.

    The first search otherwise pays for the model load, the index load and the kernels'
    first calls (20 s and more on a busy machine). A store without a model (vectors
    given by the caller) warms up with a query of its own dimension.
    """
    import time

    import numpy as np

    start = time.perf_counter()
    # A store of given vectors has no model to load (its encoder cannot be rebuilt from
    # the store, and needs not be: queries come as vectors).
    if store.encoder_name == "precomputed" or store.encoder.name == "precomputed":
        query = np.zeros((1, store.dim), dtype=np.float32)
        query[0, 0] = 1.0
        store.search(query, k=10)
    else:
        # What POST /search runs (the store's search mode, k=10), twice: the second
        # pass meets the caches and thread pools the first one set up.
        for _ in range(2):
            store.search_many(["warm-up query"], k=10)
    return time.perf_counter() - start


def limit_compute_threads(threads: int) -> None:
    """Give each request ``threads`` OpenMP/torch threads.

    A server runs many searches at once; each one also spreading over every core makes
    their spinning thread teams fight for the cores. On the 2-core test VM, shared with
    other jobs, a text search took 0.6-3 s with 2 threads per request and 0.15-0.25 s
    with 1. OMP_NUM_THREADS is read when torch and FAISS load, which the CLI defers.
    """
    if "torch" not in sys.modules and "faiss" not in sys.modules:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)

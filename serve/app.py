"""The FastAPI app: the HTTP API over one open Store, and the search page at ``/``."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from importlib.resources import files
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, File, Form, Query, UploadFile
from fastapi.responses import HTMLResponse, Response

from latestore.errors import InvalidInputError
from latestore.explain import Explanation
from latestore.internal import any_of
from latestore.serve import errors
from latestore.serve.csp import PagePolicy
from latestore.serve.guards import ApiKeyGuard, BodyLimit
from latestore.serve.paging import make_cursor, read_cursor, search_digest
from latestore.serve.pools import WorkPool
from latestore.serve.schemas import (
    AddRequest,
    AddResponse,
    DeleteRequest,
    DeleteResponse,
    ExplainRequest,
    ExplanationOut,
    HitOut,
    PageOut,
    SearchRequest,
    SearchResponse,
    SummaryOut,
)
from latestore.serve.service import Service
from latestore.serve.settings import ServeSettings
from latestore.serve.summary import package_version, summary
from latestore.serve.vector_json import PagesRoute

if TYPE_CHECKING:
    from latestore.store import Store

PageId = Annotated[int, "a page id"]
log = logging.getLogger("latestore.serve")


def create_app(store: Store, settings: ServeSettings, *, close_store: bool = False) -> FastAPI:
    """The app serving ``store``; ``close_store`` closes it when the server stops
    (after uvicorn has finished the requests in flight)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if close_store:
            await writes.run(store.close)

    app = _fastapi(
        title="latestore",
        summary="Late-interaction retrieval: search pages and see why they matched.",
        version=package_version(),
        lifespan=lifespan,
        # No call to validator.swagger.io from /docs: the page works with no internet.
        swagger_ui_parameters={"validatorUrl": None},
    )
    service = Service(store, settings)
    reads = WorkPool("search", settings.search_workers, settings.queue_size)
    writes = WorkPool("write", settings.write_workers, settings.queue_size)
    app.state.service, app.state.reads, app.state.writes = service, reads, writes
    errors.install(app)
    _routes(app, service, reads, writes, settings)
    # Outermost last: the key is checked first, then the size, then routing.
    app.add_middleware(PagePolicy)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, timeout=settings.body_timeout)
    if settings.api_key:
        app.add_middleware(ApiKeyGuard, key=settings.api_key)
    if settings.cors_origins:
        # Outside the key check: a browser never sends the key with a preflight, so an
        # allowed origin's OPTIONS is answered here; the request itself still needs the
        # key, and its 401 carries the CORS headers the browser needs to read it.
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Content-Type", "X-API-Key", "Authorization"],
        )
    return app


def _fastapi(**kwargs: Any) -> FastAPI:
    """The app, with /docs and /redoc served from fastapi-offline's packaged assets
    (Swagger UI and ReDoc) instead of a CDN."""
    try:
        from fastapi_offline import FastAPIOffline
    except ImportError:  # an install without the serve extra's fastapi-offline
        log.warning("latestore serve: fastapi-offline is missing; /docs loads from a CDN")
        return FastAPI(**kwargs)
    return FastAPIOffline(static_url="/docs-assets", **kwargs)


def _explanation(value: Explanation | None) -> ExplanationOut | None:
    return None if value is None else ExplanationOut.model_validate(asdict(value))


def _routes(
    app: FastAPI, service: Service, reads: WorkPool, writes: WorkPool, settings: ServeSettings
) -> None:
    store = service.store

    static = files("latestore.serve").joinpath("static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def search_page() -> HTMLResponse:
        return HTMLResponse(static.joinpath("index.html").read_text())

    # The page's script and style, from the package (nothing from elsewhere).
    @app.get("/static/page.js", include_in_schema=False)
    async def page_script() -> Response:
        return Response(static.joinpath("page.js").read_text(), media_type="text/javascript")

    @app.get("/static/page.css", include_in_schema=False)
    async def page_style() -> Response:
        return Response(static.joinpath("page.css").read_text(), media_type="text/css")

    @app.get("/health", tags=["service"])
    async def health() -> dict[str, str]:
        """The process is up (no store access)."""
        return {"status": "ok"}

    @app.get("/ready", tags=["service"])
    async def ready() -> Response:
        """The store answers; 503 while it cannot."""
        try:
            count = await reads.run(store.count)
        except Exception as exc:  # any failure means not ready, with the reason
            body = errors.body(503, type(exc).__name__, str(exc))
            return Response(json.dumps(body), status_code=503, media_type="application/json")
        return Response(
            json.dumps({"status": "ready", "pages": count}), media_type="application/json"
        )

    @app.get("/info", tags=["service"])
    async def info() -> dict[str, Any]:
        """Pages, encoder, index and search plan; the server's pools and limits."""

        def gather() -> dict[str, Any]:
            # A server path is no business of a client.
            stats = store.stats().model_dump(exclude={"index_dir"})
            return {"pages": store.count(), "store": stats, "encoding": store.encoding()}

        described = await reads.run(gather)
        described["server"] = {
            "search": reads.describe(),
            "write": writes.describe(),
            "max_body_bytes": settings.max_body_bytes,
            "max_queries": settings.max_queries,
        }
        return described

    @app.get("/summary", response_model=SummaryOut, tags=["service"])
    async def store_summary() -> SummaryOut:
        """What the start page shows: pages, documents, encoder, the search modes that
        work on this store, and example queries drawn from its pages."""
        return SummaryOut.model_validate(await reads.run(lambda: summary(store)))

    @app.post("/search", response_model=SearchResponse, tags=["search"])
    async def search(request: SearchRequest) -> SearchResponse:
        """Rank pages for one query (``hits``) or a batch (``results``, one list each).

        Every mode of ``Store.search``: ``mode`` (maxsim, lexical, hybrid), ``phrase``
        (every hit contains it), ``filter``, ``exhaustive``, ``k``. Paging: ``offset``,
        or the ``next_cursor`` of the previous page. Hits are explained on request.
        """
        queries = [request.query] if request.query is not None else list(request.queries or [])
        shape = request.model_dump(include={"k", "mode", "phrase", "lexical_text", "filter"})
        digest = search_digest(queries, {**shape, "exhaustive": request.exhaustive})
        offset = request.offset if request.cursor is None else read_cursor(request.cursor, digest)
        options = {
            "mode": request.mode,
            "phrase": request.phrase,
            "lexical_text": request.lexical_texts(),
        }
        results = await reads.run(
            lambda: service.search(
                queries,
                request.k,
                request.filter,
                request.exhaustive,
                request.explain,
                options,
                offset,
            )
        )
        shaped = [[HitOut.of(hit, _explanation(why)) for hit, why in hits] for hits in results]
        # A full page may have a next one; a short page is the last.
        more = any(len(hits) == request.k for hits in shaped)
        following = offset + request.k if more else None
        paging: dict[str, Any] = {
            "mode": request.mode or store.config.search.mode,
            "offset": offset,
            "k": request.k,
            "next_offset": following,
            "next_cursor": None if following is None else make_cursor(following, digest),
        }
        if request.query is not None:
            return SearchResponse(hits=shaped[0], **paging)
        return SearchResponse(results=shaped, **paging)

    @app.post("/explain", response_model=ExplanationOut, tags=["search"])
    async def explain(request: ExplainRequest) -> ExplanationOut:
        """Why a page matches a query: each query word's best page match and share of
        the score; with ``word``, an image page's heatmap for that word alone."""
        found = await reads.run(
            lambda: service.explain(request.query, request.page_id, request.word)
        )
        out = _explanation(found)
        assert out is not None
        return out

    @app.get("/pages/{page_id}/explain", response_model=ExplanationOut, tags=["search"])
    async def explain_text(
        page_id: PageId,
        q: Annotated[str, Query(min_length=1)],
        word: Annotated[int | None, Query(description="heatmap of this query word")] = None,
    ) -> ExplanationOut:
        """``/explain`` for a text query, as a link."""
        found = await reads.run(lambda: service.explain(q, page_id, word))
        out = _explanation(found)
        assert out is not None
        return out

    @app.get("/pages/{page_id}", response_model=PageOut)
    async def page(page_id: PageId) -> PageOut:
        """One page's metadata and text."""
        return PageOut.of(await reads.run(lambda: store.get(page_id)))

    @app.get(
        "/pages/{page_id}/image",
        responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}},
        response_class=Response,
    )
    async def image(
        page_id: PageId,
        size: Annotated[int | None, Query(description="longest edge of a JPEG thumbnail")] = None,
    ) -> Response:
        """The page image as stored, or a thumbnail of at most ``size`` pixels."""
        if size is None:
            data = await reads.run(lambda: service.image_bytes(page_id))
            return Response(data, media_type=_image_type(data), headers=_private_cache())
        thumb = await reads.run(lambda: service.thumbnail(page_id, size))
        return Response(thumb, media_type="image/jpeg", headers=_private_cache())

    async def add(request: AddRequest) -> AddResponse:
        """Add (or replace, by external id) pages: one transaction, all or nothing."""
        pages = [p.to_page() for p in request.pages]
        return AddResponse(ids=await writes.run(lambda: store.upsert_pages(pages)))

    # PagesRoute reads the JSON body with each page's vector rows as an array (not a
    # Python float per number): memory stays near the body's size (serve/vector_json.py).
    app.router.add_api_route(
        "/pages",
        add,
        methods=["POST"],
        response_model=AddResponse,
        tags=["writes"],
        route_class_override=PagesRoute,
    )

    @app.post("/upload", tags=["writes"])
    async def upload(
        files: Annotated[list[UploadFile], File(description="PDFs, images, text, JSONL")],
        dpi: Annotated[int, Form()] = 150,
        chunk_chars: Annotated[int, Form()] = 1500,
        metadata: Annotated[str, Form(description="JSON object added to every page")] = "{}",
    ) -> dict[str, Any]:
        """Ingest uploaded files exactly as ``latestore ingest`` does."""
        from latestore.ingest import IngestOptions

        try:
            extra = json.loads(metadata)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"metadata is not JSON: {exc}") from exc
        except RecursionError as exc:
            raise InvalidInputError("metadata nests too deeply") from exc
        if not isinstance(extra, dict):
            raise InvalidInputError("metadata must be a JSON object")
        options = IngestOptions(dpi=dpi, chunk_chars=chunk_chars, metadata=extra)
        # The parser spooled each file to disk; it is copied from there, not read whole.
        received = [(f.filename or "upload", f.file) for f in files]
        report = await writes.run(lambda: service.ingest_uploads(received, options))
        return report.to_dict()

    @app.post("/delete", response_model=DeleteResponse, tags=["writes"])
    async def delete(request: DeleteRequest) -> DeleteResponse:
        """Delete pages by ids, external ids and/or a filter, in one transaction (a bad
        filter deletes nothing)."""

        def remove() -> int:
            if request.filter is None:  # ids alone: chunked, however many
                return store.delete(request.ids, external_ids=request.external_ids)
            selected = any_of(
                page_ids=request.ids, external_ids=request.external_ids, spec=request.filter
            )
            assert selected is not None
            return store.delete_where(selected)

        return DeleteResponse(deleted=await writes.run(remove))

    @app.delete("/pages/{page_id}", response_model=DeleteResponse, tags=["writes"])
    async def delete_one(page_id: PageId) -> DeleteResponse:
        deleted = await writes.run(lambda: store.delete([page_id]))
        if not deleted:
            from latestore.errors import PageNotFoundError

            raise PageNotFoundError(f"no page with id {page_id}")
        return DeleteResponse(deleted=deleted)


def _image_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def _private_cache() -> dict[str, str]:
    # Page images change only with their page; the id can be reused by an update.
    return {"Cache-Control": "private, max-age=60", "X-Content-Type-Options": "nosniff"}

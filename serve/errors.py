"""latestore's typed errors as JSON responses: 4xx for the caller's mistakes, 503 for
a busy or unavailable store, and 500 only for a bug."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from latestore.errors import (
    DuplicateExternalIdError,
    EncoderError,
    EncoderMismatchError,
    InvalidInputError,
    LatestoreError,
    PageNotFoundError,
    SchemaVersionError,
    StoreBusyError,
    StoreClosedError,
    StoreUnavailableError,
)
from latestore.serve.pools import ServerBusy

log = logging.getLogger("latestore.serve")

# First match wins: subclasses before their bases.
STATUS: list[tuple[type[Exception], int]] = [
    (PageNotFoundError, 404),
    (DuplicateExternalIdError, 409),
    (InvalidInputError, 400),
    (EncoderMismatchError, 500),
    (EncoderError, 422),  # e.g. text sent to a store that holds only precomputed vectors
    (StoreBusyError, 503),
    (StoreClosedError, 503),
    (StoreUnavailableError, 503),
    (SchemaVersionError, 500),
]


HTTP_NAMES = {404: "NotFound", 408: "RequestTimeout", 413: "PayloadTooLarge"}


def status_of(exc: Exception) -> int:
    for kind, status in STATUS:
        if isinstance(exc, kind):
            return status
    return 400


def body(status: int, name: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": name, "message": message, "status": status, **extra}


def install(app: FastAPI) -> None:
    @app.exception_handler(LatestoreError)
    async def latestore_error(_request: Request, exc: LatestoreError) -> JSONResponse:
        status = status_of(exc)
        if status >= 500:
            log.error("latestore serve: %s", exc, exc_info=exc)
        return JSONResponse(body(status, type(exc).__name__, str(exc)), status_code=status)

    @app.exception_handler(ServerBusy)
    async def busy(_request: Request, exc: ServerBusy) -> JSONResponse:
        return JSONResponse(
            body(503, "ServerBusy", str(exc)), status_code=503, headers={"Retry-After": "1"}
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"at": [str(p) for p in e.get("loc", ())], "problem": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        bad_json = any(e.get("type") == "json_invalid" for e in exc.errors())
        status = 400 if bad_json else 422
        name = "BadJSON" if bad_json else "ValidationError"
        message = "; ".join(f"{'.'.join(p['at'])}: {p['problem']}" for p in problems)
        return JSONResponse(body(status, name, message, problems=problems), status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        name = HTTP_NAMES.get(exc.status_code, "HTTPError")
        return JSONResponse(
            body(exc.status_code, name, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def bug(_request: Request, exc: Exception) -> JSONResponse:
        log.error("latestore serve: unexpected error", exc_info=exc)
        return JSONResponse(body(500, "InternalError", "internal error (a bug)"), status_code=500)

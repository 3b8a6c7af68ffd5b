"""Errors as RFC 9457 problem details (``application/problem+json``), the same shape everywhere."""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from alerting.service import AlertConflictError, AlertNotFoundError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class ProblemError(HTTPException):
    def __init__(self, status: int, title: str, detail: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.title = title


def problem(
    status: int, title: str, detail: str = "", headers: dict[str, str] | None = None, **extra: object
) -> JSONResponse:
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        title = exc.title if isinstance(exc, ProblemError) else _TITLES.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) else ""
        return problem(exc.status_code, title, detail, headers=dict(exc.headers) if exc.headers else None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg", ""))}
            for error in exc.errors()
        ]
        return problem(422, "Invalid request", "the request does not match the schema", errors=errors)

    # Lifecycle refusals from alerting, the same for every route that claims, declines or resolves.
    @app.exception_handler(AlertNotFoundError)
    async def _no_alert(request: Request, exc: AlertNotFoundError) -> JSONResponse:
        return problem(404, "Not found", str(exc))

    @app.exception_handler(AlertConflictError)
    async def _conflict(request: Request, exc: AlertConflictError) -> JSONResponse:
        return problem(409, "Conflict", str(exc))

    @app.exception_handler(psycopg.DataError)
    async def _bad_value(request: Request, exc: psycopg.DataError) -> JSONResponse:
        # A value the database cannot hold (NUL bytes in text, a number out of range): the client's input.
        return problem(422, "Invalid request", f"a value is not acceptable: {type(exc).__name__}")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the log (ids only in messages); the client gets the same shape as always.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", "the server could not complete the request")


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    422: "Invalid request",
}

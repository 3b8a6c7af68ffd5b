"""Errors as RFC 9457 problem details (``application/problem+json``), the same shape everywhere."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

PROBLEM_JSON = "application/problem+json"


class ProblemError(HTTPException):
    def __init__(self, status: int, title: str, detail: str = "") -> None:
        super().__init__(status_code=status, detail=detail)
        self.title = title


def problem(status: int, title: str, detail: str = "", **extra: object) -> JSONResponse:
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def install(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        title = exc.title if isinstance(exc, ProblemError) else _TITLES.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) else ""
        return problem(exc.status_code, title, detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg", ""))}
            for error in exc.errors()
        ]
        return problem(422, "Invalid request", "the request does not match the schema", errors=errors)


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    422: "Invalid request",
}

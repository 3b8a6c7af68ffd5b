"""Errors as RFC 9457 problem details (``application/problem+json``), the same shape everywhere.

``title`` and ``detail`` are said in the client's language (``Accept-Language``; English without one,
``Content-Language`` says which). A :class:`ProblemError`'s title and detail are catalogue message ids
marked ``N_`` with ``{name}`` placeholders and the values as keyword arguments, so the detail is
translated whole: ``ProblemError(404, N_("Not found"), N_("alert {alert_id} not found"),
alert_id=alert_id)``. A test keeps every ``ProblemError`` in ``api/`` written that way.
"""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from alerting.service import AlertConflictError, AlertError, AlertNotFoundError
from i18n import N_, Language, Messages, messages, negotiate

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class ProblemError(HTTPException):
    """An HTTP error with a catalogue ``title`` and ``detail`` (a template filled from ``params``)."""

    def __init__(
        self, status: int, title: str, detail: str = "", headers: dict[str, str] | None = None, **params: object
    ) -> None:
        super().__init__(status_code=status, detail=detail.format_map(params) if params else detail, headers=headers)
        self.title = title
        self.template = detail
        self.params = params


def request_language(request: Request) -> Language:
    return negotiate(request.headers.get("accept-language"))


def problem(
    status: int,
    title: str,
    detail: str = "",
    headers: dict[str, str] | None = None,
    *,
    language: Language = Language.EN,
    **extra: object,
) -> JSONResponse:
    """A problem response; ``title`` and ``detail`` already in ``language``."""
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    response = JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)
    response.headers["Content-Language"] = language.value
    return response


def _said(request: Request) -> tuple[Language, Messages]:
    language = request_language(request)
    return language, messages(language)


def install(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        language, say = _said(request)
        if isinstance(exc, ProblemError):
            title = say.gettext(exc.title)
            detail = say(exc.template, **exc.params) if exc.template else ""
        else:
            title = say.gettext(_TITLES.get(exc.status_code, N_("Error")))
            detail = exc.detail if isinstance(exc.detail, str) else ""
        headers = dict(exc.headers) if exc.headers else None
        return problem(exc.status_code, title, detail, headers=headers, language=language)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        language, say = _said(request)
        # The per-field messages are pydantic's (English): technical, for the client's developer.
        errors = [
            {"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg", ""))}
            for error in exc.errors()
        ]
        title, detail = say.gettext(N_("Invalid request")), say.gettext(N_("the request does not match the schema"))
        return problem(422, title, detail, language=language, errors=errors)

    # Lifecycle refusals from alerting, the same for every route that claims, declines or resolves.
    @app.exception_handler(AlertNotFoundError)
    async def _no_alert(request: Request, exc: AlertNotFoundError) -> JSONResponse:
        return _alert_problem(request, 404, N_("Not found"), exc)

    @app.exception_handler(AlertConflictError)
    async def _conflict(request: Request, exc: AlertConflictError) -> JSONResponse:
        return _alert_problem(request, 409, N_("Conflict"), exc)

    @app.exception_handler(psycopg.DataError)
    async def _bad_value(request: Request, exc: psycopg.DataError) -> JSONResponse:
        # A value the database cannot hold (NUL bytes in text, a number out of range): the client's input.
        language, say = _said(request)
        detail = say(N_("a value is not acceptable: {error}"), error=type(exc).__name__)
        return problem(422, say.gettext(N_("Invalid request")), detail, language=language)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the log (ids only in messages); the client gets the same shape as always.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        language, say = _said(request)
        detail = say.gettext(N_("the server could not complete the request"))
        return problem(500, say.gettext(N_("Internal error")), detail, language=language)


def _alert_problem(request: Request, status: int, title: str, exc: AlertError) -> JSONResponse:
    language, say = _said(request)
    return problem(status, say.gettext(title), say(exc.template, **exc.params), language=language)


_TITLES = {
    400: N_("Bad request"),
    401: N_("Unauthorized"),
    403: N_("Forbidden"),
    404: N_("Not found"),
    405: N_("Method not allowed"),
    409: N_("Conflict"),
    410: N_("Gone"),
    422: N_("Invalid request"),
}

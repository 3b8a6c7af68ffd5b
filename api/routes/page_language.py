"""``GET /i18n/{language}.json``: the web page's translations, open like the page itself.

The page's text is English in ``api/static`` and its Chinese lives in the gettext catalogue ``web``
(``i18n/locales/zh_CN/LC_MESSAGES/web.po``, compiled to ``.mo``); this serves one language as
``{"English": "translation"}`` for ``t()`` in ``app.js``. It is public because the sign-in form needs it
before there is a token, and it holds nothing but the page's own wording.

``GET /i18n/default.json`` says which language the page opens in before its switch was used (the
``page_language`` setting, ``{"language": null}`` when the browser's languages should decide).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.problems import ProblemError
from i18n import N_, Language, web_catalogue

router = APIRouter(tags=["page"], include_in_schema=False)


@router.get("/i18n/default.json")
def page_default_language(request: Request) -> JSONResponse:
    """The language the page opens in before the switch was used (``page_language`` setting; null: the
    browser's languages decide)."""
    chosen = getattr(request.app.state, "page_language", None)
    return JSONResponse({"language": chosen}, headers={"Cache-Control": "no-cache"})


@router.get("/i18n/{language}.json")
def page_translations(language: str) -> JSONResponse:
    try:
        chosen = Language(language)
    except ValueError:
        raise ProblemError(404, N_("Not found"), N_("no language {language}"), language=language) from None
    return JSONResponse(
        web_catalogue(chosen), headers={"Cache-Control": "public, max-age=300", "Content-Language": chosen.value}
    )

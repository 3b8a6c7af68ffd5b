"""The gettext catalogues and a language's :class:`Messages`.

Catalogues live in ``i18n/locales/<ll_CC>/LC_MESSAGES/<domain>.mo``, compiled from the ``.po`` files a
translator edits (``scripts/i18n``; the compiled files are committed and a test keeps them equal to a
fresh compile, so every install works without a build step). A message id is the English text itself:
English needs no catalogue, and a message missing from a catalogue is shown in English, never as an id.

Placeholders are ``str.format`` names (``{household_id}``); translators keep them as they are (a test
checks every translation names the same placeholders as its id).
"""

from __future__ import annotations

import gettext
from functools import cache
from pathlib import Path

from babel.core import default_locale
from babel.messages.mofile import read_mo
from babel.numbers import format_decimal

from i18n.negotiation import match
from schemas.language import Language

LOCALE_DIR = Path(__file__).parent / "locales"
DOMAIN = "carewatch"  # server, notifications, evidence, the CLI
WEB_DOMAIN = "web"  # the web page (api/static)


def N_(message: str) -> str:  # noqa: N802 - gettext's own name for "mark for translation, translate later"
    """Mark ``message`` for the catalogue without translating it here (``pybabel extract`` finds it)."""
    return message


def NC_(context: str, message: str) -> tuple[str, str]:  # noqa: N802 - gettext's naming, with a context
    """Mark ``message`` in ``context`` (gettext ``msgctxt``), for words English uses twice with two
    meanings ("smoke alarm": the device, and the alert kind). Read with :meth:`Messages.pgettext`."""
    return context, message


def babel_locale(language: Language) -> str:
    """The catalogue folder and Babel locale of a language: ``zh-CN`` → ``zh_CN``."""
    return language.value.replace("-", "_")


def _mo_path(domain: str, language: Language) -> Path:
    return LOCALE_DIR / babel_locale(language) / "LC_MESSAGES" / f"{domain}.mo"


@cache
def _translations(domain: str, language: Language) -> gettext.NullTranslations:
    if language is Language.EN:
        return gettext.NullTranslations()
    # A missing catalogue is an installation error, not a reason to fall back silently.
    with _mo_path(domain, language).open("rb") as fp:
        return gettext.GNUTranslations(fp)


class Messages:
    """Translated text for one language: ``_("{n} alerts", n=...)`` or ``_.gettext(N_(...))``."""

    __slots__ = ("_gettext", "_pgettext", "language", "locale")

    def __init__(self, language: Language) -> None:
        self.language = language
        self.locale = babel_locale(language)
        translations = _translations(DOMAIN, language)
        self._gettext = translations.gettext
        self._pgettext = translations.pgettext

    def gettext(self, message: str) -> str:
        return self._gettext(message)

    def pgettext(self, context: str, message: str) -> str:
        return self._pgettext(context, message)

    def __call__(self, message: str, /, **params: object) -> str:
        text = self._gettext(message)
        return text.format_map(params) if params else text

    def number(self, value: float, places: int | None = None) -> str:
        """``value`` for this locale (digit grouping, decimal sign); ``places`` fixed, else as needed."""
        if places is None:
            return format_decimal(value, locale=self.locale)
        return format_decimal(value, format="#,##0" + ("." + "0" * places if places else ""), locale=self.locale)


@cache
def messages(language: Language) -> Messages:
    return Messages(language)


@cache
def web_catalogue(language: Language) -> dict[str, str]:
    """The page's translations (``web`` domain) as ``{English: translation}``; empty for English. A message
    with a context is keyed ``context + "\\x04" + English``, as gettext keys it."""
    if language is Language.EN:
        return {}
    with _mo_path(WEB_DOMAIN, language).open("rb") as fp:
        catalog = read_mo(fp)
    return {
        (f"{m.context}\x04{m.id}" if m.context else str(m.id)): str(m.string)
        for m in catalog
        if m.id and isinstance(m.id, str) and m.string
    }


def cli_language() -> Language:
    """The command line's language from the environment, as gettext reads it (``LANGUAGE``, ``LC_ALL``,
    ``LC_MESSAGES``, ``LANG``): ``LANG=zh_CN.UTF-8`` gives Chinese; anything else English."""
    found = default_locale("LC_MESSAGES")
    return match([found.replace("_", "-")] if found else []) or Language.EN

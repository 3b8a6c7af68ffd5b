"""Languages for people: message catalogues (gettext), locale formatting (Babel) and the one renderer of
evidence.

Public surface::

    from i18n import N_, Language, messages, render_evidence, english, negotiate, default_language

- Catalogues are standard gettext files under ``i18n/locales`` (``carewatch`` for the server and the CLI,
  ``web`` for the page), kept with Babel's ``pybabel`` through ``scripts/i18n`` (docs/i18n.md). A message id
  is its English text, so English needs no catalogue and a missing translation shows English, never an
  id.
- :func:`messages` gives a :class:`Messages` for one language: ``_("household {household_id} not
  found", household_id=...)``; ``N_`` marks text translated later (module constants, templates).
- :func:`render_evidence` turns :class:`schemas.evidence.Evidence` into text in either language, with
  times in the household's time zone.
- :func:`negotiate` picks a language from an ``Accept-Language`` header; :func:`default_language` gives
  a caregiver's default from the household's time zone.

This package depends on ``schemas`` and Babel only; alerting, the API and the CLI use it.
"""

from i18n.catalog import N_, NC_, Messages, cli_language, messages, web_catalogue
from i18n.evidence import english, render_evidence
from i18n.negotiation import default_language, negotiate, recipient_language
from schemas.language import Language

__all__ = [
    "NC_",
    "N_",
    "Language",
    "Messages",
    "cli_language",
    "default_language",
    "english",
    "messages",
    "negotiate",
    "recipient_language",
    "render_evidence",
    "web_catalogue",
]

"""Logging set-up of every carewatch process, with a last guard against personal data in the log.

The rule is that log lines carry ids only, and the code keeps it (``tests/test_log_privacy.py`` runs a
whole pipeline at DEBUG with marker strings in every personal field and greps the log). This formatter
is the guard behind the rule, for text we do not write ourselves (exception messages of libraries,
servers' answers): it masks e-mail addresses, Chinese mobile numbers, and the whole row PostgreSQL
quotes when a row breaks a constraint ("Failing row contains (...)", which would list a household's
name and address). Names cannot be recognised by a pattern; only the rule keeps them out. httpx's
request lines, which name caregivers' webhook URLs (secrets in robot webhooks' queries), are not logged.
"""

from __future__ import annotations

import logging
import re
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_MASKS = (
    (re.compile(r"Failing row contains \(.*?\)(?=\.?\s*$|\.?\n)", re.MULTILINE), "Failing row contains (<masked>)"),
    (re.compile(r"[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"), "<email>"),
    (re.compile(r"(?<![\w.-])(?:\+?86[ -]?)?1[3-9]\d{9}(?![\w.])"), "<phone>"),
)


def mask(text: str) -> str:
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


class MaskingFormatter(logging.Formatter):
    """A formatter whose output (message and traceback) passes through ``mask``."""

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


def configure_logging(level: str) -> None:
    """Root logging to stderr at ``level`` through the masking formatter (the CLI and every child)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(MaskingFormatter(LOG_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    # httpx logs every request's full URL at INFO: a caregiver's webhook, where robot webhooks (DingTalk,
    # WeCom) carry their secret in the query. The dispatcher logs each delivery by ids instead.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))

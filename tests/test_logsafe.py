"""The log's last guard (``carewatch.logsafe``) and what a delivery's outcome may store and log
(``alerting.redaction``)."""

from __future__ import annotations

import logging
import sys

from alerting.redaction import REDACTED, redacted, summary
from carewatch.logsafe import MaskingFormatter, mask


def test_mask_hides_addresses_numbers_and_rows_postgresql_quotes() -> None:
    text = (
        'new row for relation "households" violates check constraint "x"\n'
        "DETAIL:  Failing row contains (hh-1, Wang Ayi, 12 Jiangsu Road, Changning).\n"
        "mail li.wei+care@example.com.cn, call 13812345678 or +86 13912345678"
    )
    masked = mask(text)
    for secret in ("Wang Ayi", "Jiangsu Road", "li.wei", "13812345678", "13912345678"):
        assert secret not in masked
    assert "Failing row contains (<masked>)" in masked
    # Ids, timestamps and counts stay readable.
    kept = "alert 12: device meter-13812345678 at 1733280000000 ms"
    assert mask(kept) == kept


def test_the_formatter_masks_tracebacks_too() -> None:
    try:
        raise ValueError("cannot reach wang@example.org")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed for %s", ("13800138000",), None)
        record.exc_info = sys.exc_info()
    line = MaskingFormatter("%(message)s").format(record)
    assert "13800138000" not in line
    assert "wang@example.org" not in line
    assert "ValueError" in line


def test_a_delivery_detail_is_stored_without_addresses_and_logged_as_its_summary() -> None:
    detail = "gateway HTTP 400: invalid recipient 13800138000 for text 'sos at household hh-1'"
    stored = redacted(detail, "13800138000", "", None, "https://hooks.example/cg-1")
    assert "13800138000" not in stored
    assert REDACTED in stored
    assert summary(stored) == "gateway HTTP 400"
    assert summary("recipient refused: {'li@example.org': (550, b'no')}") == "recipient refused"
    assert summary("HTTP 500") == "HTTP 500"

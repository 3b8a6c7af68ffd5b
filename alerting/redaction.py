"""What of a delivery's outcome may be stored and logged: ids and reasons, never a caregiver's address.

A channel explains a failure in its ``DeliveryResult.detail`` as ``"<summary>: <particulars>"``: the
summary names what happened ("gateway HTTP 400", "ConnectError", "recipient refused") and carries no
personal data; the particulars may quote what the other side said, and a gateway or mail server quotes
freely (the recipient's number or address, the message text with the alert's evidence). So:

* stored (``delivery_attempts``, the alert's timeline, readable by operators through the API): the
  detail with the delivery's own addresses and secret replaced (``redacted``) — erasure scrubs these
  rows of an erased household with the rest (``storage.erasure``);
* logged: the summary alone (``summary``), with alert, notification and caregiver ids.
"""

from __future__ import annotations

REDACTED = "[redacted]"


def redacted(detail: str, *personal: str | None) -> str:
    """``detail`` with every occurrence of each non-empty ``personal`` value replaced."""
    for value in sorted((value for value in personal if value), key=len, reverse=True):
        detail = detail.replace(value, REDACTED)
    return detail


def summary(detail: str) -> str:
    """The part of a channel's detail before its particulars: what may go to the log."""
    return detail.split(": ", 1)[0][:120]

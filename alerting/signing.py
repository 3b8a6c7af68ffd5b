"""Webhook signatures: HMAC-SHA256 over ``"{timestamp}.{body}"``, timestamped so replays can be refused.

Headers sent with every delivery:
- ``X-Carewatch-Timestamp``: Unix seconds when the request was signed;
- ``X-Carewatch-Signature``: ``v1=<hex digest>``;
- ``Idempotency-Key``: the same for every retry of one notification, so a receiver counts it once.

A receiver recomputes the digest with its secret, compares in constant time, refuses timestamps older
than its tolerance (replay protection) and drops idempotency keys it has seen.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Carewatch-Signature"
TIMESTAMP_HEADER = "X-Carewatch-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, now: float, tolerance_s: float = 300) -> bool:
    """True if ``signature`` is valid for ``body`` and ``timestamp`` is within ``tolerance_s`` of ``now``."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs(now - stamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature)

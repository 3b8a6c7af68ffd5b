"""How each API route is authenticated, declared once for the auth walk and the fuzzing.

``test_auth_walk.py`` calls every operation of ``/openapi.json`` without credentials and with wrong ones
and expects 401/403, except the open operations listed here; ``test_schemathesis.py`` fuzzes every
operation with valid credentials. Most routes take a bearer token (``api.auth``). A route that a
gateway calls instead, authenticated by an HMAC signature of the request (the resident check-in answer,
``POST /api/v1/checkins/{checkin_id}/answer``), is declared in ``SIGNED_CALLBACKS`` with one line:

    ("POST", "/api/v1/checkins/{checkin_id}/answer"): SignedCallback(sign=sign_answer, secret="t", app={...}),

and then the walk sends it unsigned and wrongly signed requests (it must refuse both) and the fuzzing
signs every generated request correctly, so it reaches the handler's validation rather than stopping at
the signature check.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from alerting.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

Operation = tuple[str, str]  # (method, OpenAPI path template)

# Open on purpose. Liveness and readiness: probes (load balancers, Kubernetes) hold no token, and the
# answers carry check names and counts only, nothing personal.
OPEN_OPERATIONS: frozenset[Operation] = frozenset({("GET", "/healthz"), ("GET", "/readyz")})

# Routes outside the OpenAPI document that are open on purpose: the web page and its static files (the
# page asks for a token before it calls the API), the page's translations (/i18n/{language}.json: the
# words of the page, no data; /i18n/default.json: the deployment's default language), the API's own
# description (FastAPI's docs and schema: no data), and Prometheus' /metrics (counts by route template,
# status, role, reject reason and channel: no ids, names or addresses; docs/operations.md, "Personal data").
OPEN_UNDOCUMENTED: frozenset[str] = frozenset(
    {
        "/",
        "/static",
        "/i18n/{language}.json",
        "/i18n/default.json",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
    }
)


@dataclass(frozen=True)
class SignedCallback:
    """A route authenticated by a gateway's signature, not a bearer token.

    ``sign(secret, method, path, body)`` returns the headers that sign the request with ``secret``;
    ``secret`` is the one the test server is configured with, through ``app`` (keyword arguments for
    ``api.app.create_app``). The walk also signs with a wrong secret and expects a refusal.
    """

    sign: Callable[[str, str, str, bytes], dict[str, str]]
    secret: str
    app: Mapping[str, object] = field(default_factory=dict)


def _sign_checkin_answer(secret: str, method: str, path: str, body: bytes) -> dict[str, str]:
    stamp = int(time.time())
    return {TIMESTAMP_HEADER: str(stamp), SIGNATURE_HEADER: sign(secret, stamp, body)}


SIGNED_CALLBACKS: dict[Operation, SignedCallback] = {
    ("POST", "/api/v1/checkins/{checkin_id}/answer"): SignedCallback(
        sign=_sign_checkin_answer, secret="test-checkin-secret", app={"checkin_secret": "test-checkin-secret"}
    ),
}


def signed_app_kwargs() -> dict[str, object]:
    """What the test servers need to verify the signed callbacks (merged ``app`` of every entry)."""
    merged: dict[str, object] = {}
    for callback in SIGNED_CALLBACKS.values():
        merged.update(callback.app)
    return merged

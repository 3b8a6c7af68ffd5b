"""Property-based tests of every operation in ``/openapi.json`` (schemathesis): no input, however odd,
makes the API answer with a server error.

Runs as the admin (the widest reach) against the live server; the SSE stream is left out (it never ends
by design). Routes authenticated by a gateway's signature instead of a token (``SIGNED_CALLBACKS`` in
``tests/api/auth_routes.py``) get every generated request signed, so the fuzzing reaches their handlers.
Bounded: a few examples per operation. Driven through schemathesis' Python API with one hypothesis run
per operation, because its pytest plugin does not load under this pytest version.
"""

from __future__ import annotations

import json

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet

from tests.api.auth_routes import SIGNED_CALLBACKS
from tests.api.world import Served, World

EXAMPLES_PER_OPERATION = 5


def test_no_server_errors(server: Served, world: World) -> None:
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json").exclude(path="/api/v1/alerts/stream")
    headers = {"Authorization": f"Bearer {world.tokens.admin}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=server.url, headers=_signed(case) or headers, checks=[not_a_server_error])

        run()


def _signed(case: schemathesis.Case) -> dict[str, str] | None:
    """Signature headers for a signed callback's case (the body as the transport serialises JSON)."""
    callback = SIGNED_CALLBACKS.get((case.method.upper(), case.path))
    if callback is None:
        return None
    unset = case.body is None or isinstance(case.body, NotSet)
    body = b"" if unset else json.dumps(case.body, allow_nan=False).encode()
    return callback.sign(callback.secret, case.method.upper(), case.formatted_path, body)

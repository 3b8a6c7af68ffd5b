"""Every API operation refuses a caller without valid credentials: a walk over ``/openapi.json``.

Each operation is called with no credentials and with wrong ones (a malformed token, a well-formed
unknown one, a revoked one, an expired one, another auth scheme) and must answer 401 or 403, never a
2xx, a 404 that would confirm a row exists, or a 500. Path parameters name rows that exist, so a
missing authentication check would show as a 200, not hide behind a 404. The open operations and the
signed callbacks are declared in ``tests/api/auth_routes.py``; routes outside the document must be in
its list of open ones, so a new route cannot slip past the walk by hiding from the schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount, Route

from api.auth import create_token
from api.ratelimit import BucketLimit, RateLimits
from storage import auth as token_store
from tests.api.auth_routes import OPEN_OPERATIONS, OPEN_UNDOCUMENTED, SIGNED_CALLBACKS, signed_app_kwargs
from tests.api.world import Served, World, serve

# Rows that exist in the seeded world, so that a route that forgot authentication would answer 200.
PATH_VALUES = {
    "household_id": "hh-a1",
    "caregiver_id": "cg-fam",
    "device_id": "a1-meter",
    "token_id": "0123456789abcdef",
    "resident_id": "res-1",
}
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def walk_server(database_url: str, world: World) -> Iterator[Served]:
    # The walk presents hundreds of wrong tokens from one address: lift the limit it would trip.
    limits = RateLimits(auth_failures=BucketLimit(burst=1_000_000, refill_s=0.001))
    with serve(database_url, rate_limits=limits, **signed_app_kwargs()) as served:
        yield served


@pytest.fixture(scope="module")
def wrong_credentials(database_url: str) -> dict[str, dict[str, str]]:
    now = datetime.now(UTC)
    with psycopg.connect(database_url) as conn:
        revoked = create_token(conn, "admin", "walk-revoked")
        token_store.revoke_token(conn, revoked.split("_")[1], now)
        expired = create_token(conn, "admin", "walk-expired", expires_at=now - timedelta(minutes=1))
    return {
        "none": {},
        "malformed": {"Authorization": "Bearer not-a-carewatch-token"},
        "unknown": {"Authorization": "Bearer cw_0123456789abcdef_" + "A" * 43},
        "revoked": {"Authorization": f"Bearer {revoked}"},
        "expired": {"Authorization": f"Bearer {expired}"},
        "basic": {"Authorization": "Basic YWRtaW46YWRtaW4="},
    }


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _example(schema: dict[str, Any]) -> Any:
    kinds = {option.get("type") for option in schema.get("anyOf", [schema])}
    if "integer" in kinds:
        return 1
    if schema.get("format") == "date-time":
        return "2026-01-01T00:00:00Z"
    return "x"


def _request(path: str, operation: dict[str, Any]) -> tuple[str, dict[str, Any], bytes | None]:
    """A concrete URL, query and body for ``operation``: existing rows in the path, required query
    parameters filled, ``{}`` as the body (its validation comes after authentication)."""
    query: dict[str, Any] = {}
    for parameter in operation.get("parameters", []):
        name = parameter["name"]
        if parameter["in"] == "path":
            value = PATH_VALUES.get(name, _example(parameter.get("schema", {})))
            path = path.replace("{" + name + "}", str(value))
        elif parameter["in"] == "query" and parameter.get("required"):
            query[name] = _example(parameter.get("schema", {}))
    body = b"{}" if "requestBody" in operation else None
    assert "{" not in path, f"unfilled path parameter in {path}"
    return path, query, body


def test_every_operation_refuses_missing_and_wrong_credentials(
    walk_server: Served, wrong_credentials: dict[str, dict[str, str]]
) -> None:
    with httpx.Client(base_url=walk_server.url, timeout=10) as client:
        document = client.get("/openapi.json").json()
        operations = _operations(document)
        listed = {(method, path) for method, path, _ in operations}
        assert listed >= OPEN_OPERATIONS, "an open operation in auth_routes.py is not in the API any more"
        assert set(SIGNED_CALLBACKS) <= listed, "a signed callback in auth_routes.py is not in the API"
        assert len(operations) >= 30

        failures = []
        walked = 0
        for method, template, operation in operations:
            if (method, template) in OPEN_OPERATIONS:
                continue
            path, query, body = _request(template, operation)
            attempts = dict(wrong_credentials)
            signed = SIGNED_CALLBACKS.get((method, template))
            if signed is not None:
                attempts["wrong signature"] = signed.sign("not-the-secret", method, path, body or b"")
            elif not operation.get("security"):
                failures.append(f"{method} {template}: no security requirement in the OpenAPI document")
            for name, credentials in attempts.items():
                headers = {**credentials, "Content-Type": "application/json"} if body is not None else credentials
                response = client.request(method, path, params=query, content=body, headers=headers)
                walked += 1
                if response.status_code not in {401, 403}:
                    failures.append(f"{method} {template} with {name} credentials: HTTP {response.status_code}")
                elif response.status_code == 401 and signed is None:
                    assert response.headers.get("WWW-Authenticate") == "Bearer"
                    assert response.headers["content-type"] == "application/problem+json"
        assert failures == [], "\n".join(failures)
        assert walked >= 150


def test_open_operations_answer_without_credentials(walk_server: Served) -> None:
    with httpx.Client(base_url=walk_server.url, timeout=10) as client:
        for method, path in sorted(OPEN_OPERATIONS):
            assert client.request(method, path).status_code in {200, 503}, path
        assert client.get("/metrics").status_code == 200
        assert client.get("/").status_code == 200


def _routes(routes: list[BaseRoute], prefix: str = "", in_schema: bool = True) -> Iterator[tuple[str, bool]]:
    """(path, in the schema) of every route, included routers' routes too. FastAPI 0.16x keeps an
    included router as one lazy entry (``original_router`` + ``include_context``); older versions copy
    its routes into the app. An entry of another kind fails the test: the walk must see every route."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, in_schema and route.include_in_schema
        elif isinstance(route, Route | Mount):
            yield prefix + route.path, False
        elif hasattr(route, "original_router") and hasattr(route, "include_context"):
            context = route.include_context
            yield from _routes(
                route.original_router.routes, prefix + context.prefix, in_schema and context.include_in_schema
            )
        else:
            pytest.fail(f"a route of unknown kind {type(route).__name__}: teach the auth walk to list it")


def test_every_route_outside_the_schema_is_declared_open(walk_server: Served) -> None:
    """A route hidden from the OpenAPI document (``include_in_schema=False``) escapes the walk, so it must
    be one of the few declared open ones."""
    with httpx.Client(base_url=walk_server.url, timeout=10) as client:
        documented = set(client.get("/openapi.json").json()["paths"])
    seen = list(_routes(walk_server.app.routes))
    assert len(seen) >= 30
    undeclared = [path for path, in_schema in seen if not (in_schema and path in documented)]
    assert sorted(set(undeclared) - OPEN_UNDOCUMENTED) == []


def test_a_valid_token_passes_the_same_walk_requests(walk_server: Served, world: World) -> None:
    """The walk's requests are real: with the admin's token the same kind of request succeeds."""
    headers = {"Authorization": f"Bearer {world.tokens.admin}"}
    with httpx.Client(base_url=walk_server.url, timeout=10, headers=headers) as client:
        assert client.get("/api/v1/households/hh-a1").json()["household_id"] == "hh-a1"
        assert client.get("/api/v1/devices/a1-meter").status_code == 200
        assert re.fullmatch(r"[0-9a-f]{16}", json.loads(client.get("/api/v1/whoami").text)["token_id"])

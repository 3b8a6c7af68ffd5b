"""Fixtures of the API tests: a seeded database and a live server per test module."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.api.auth_routes import signed_app_kwargs
from tests.api.world import Served, World, seed, serve


@pytest.fixture(scope="module")
def world(database_url: str) -> World:
    with psycopg.connect(database_url) as conn:
        seeded = seed(conn)
        conn.commit()
    return seeded


@pytest.fixture(scope="module")
def server(database_url: str, world: World) -> Iterator[Served]:
    with serve(database_url, **signed_app_kwargs()) as served:
        yield served

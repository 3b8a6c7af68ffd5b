"""Fixtures shared by the alerting tests: a real webhook receiver and an autocommit connection."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest

from carewatch.webhook_receiver import WebhookReceiver


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver(secret=secrets.token_hex(16)).start()
    yield hook
    hook.stop()


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection

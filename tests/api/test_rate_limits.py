"""Credentials are rate-limited: wrong tokens per client address, minted tokens per admin (``api.ratelimit``).

The buckets are tested pure (time passed in); the API's refusals on a live server with small limits.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from api.auth import create_token
from api.ratelimit import BucketLimit, RateLimits, TokenBuckets
from tests.api.world import Served, World, serve


def test_a_bucket_gives_its_burst_then_one_token_per_refill_period() -> None:
    buckets = TokenBuckets(BucketLimit(burst=3, refill_s=10.0))
    assert [buckets.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 0.0) == pytest.approx(10.0)
    assert buckets.wait_s("a", 4.0) == pytest.approx(6.0)
    assert buckets.take("a", 10.0) == 0.0
    assert buckets.take("b", 10.0) == 0.0  # keys are independent


def test_charge_counts_a_failure_even_past_empty_and_wait_takes_nothing() -> None:
    buckets = TokenBuckets(BucketLimit(burst=2, refill_s=5.0))
    for _ in range(5):
        buckets.charge("client", 0.0)
    assert buckets.wait_s("client", 0.0) == pytest.approx(5.0)  # floored at empty, not in debt
    assert buckets.wait_s("client", 0.0) == pytest.approx(5.0)
    assert buckets.wait_s("client", 5.0) == 0.0


def test_buckets_stay_bounded_under_a_flood_of_keys() -> None:
    buckets = TokenBuckets(BucketLimit(burst=2, refill_s=1.0), max_keys=100)
    for n in range(1_000):
        for _ in range(2):
            buckets.charge(f"10.0.{n // 256}.{n % 256}", float(n) / 1000)
    assert len(buckets) <= 100
    # The most recent offender is still remembered.
    assert buckets.wait_s("10.0.3.231", 1.0) > 0


@pytest.fixture(scope="module")
def strict(database_url: str, world: World) -> Iterator[Served]:
    limits = RateLimits(
        auth_failures=BucketLimit(burst=3, refill_s=60.0), token_mints=BucketLimit(burst=2, refill_s=60.0)
    )
    with serve(database_url, rate_limits=limits) as served:
        yield served


def _status(served: Served, token: str | None, path: str) -> int:
    with served.client(token) as client:
        return client.get(path).status_code


def _metric(served: Served, name: str) -> float:
    with served.client(None) as client:
        text = client.get("/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_wrong_tokens_from_one_address_get_429_with_retry_after(strict: Served, world: World) -> None:
    wrong = "cw_0123456789abcdef_" + "x" * 43
    assert [_status(strict, wrong, "/api/v1/whoami") for _ in range(3)] == [401, 401, 401]
    # No credentials at all: answered without a lookup, not counted, still 401.
    assert _status(strict, None, "/api/v1/households") == 401

    with strict.client(wrong) as client:
        refused = client.get("/api/v1/whoami")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    body = refused.json()
    assert body["status"] == 429
    assert body["title"] == "Too many requests"
    # While the address is blocked even a good token waits: the limit is on the address, not the token.
    assert _status(strict, world.tokens.admin, "/api/v1/whoami") == 429

    assert _metric(strict, 'carewatch_api_rate_limited_total{limit="auth_failures_per_client"}') == 2
    assert _metric(strict, "carewatch_api_auth_failures_total") == 3


@pytest.fixture(scope="module")
def minting(database_url: str) -> Iterator[tuple[Served, str, str]]:
    with psycopg.connect(database_url) as conn:
        first = create_token(conn, "admin", "admin-mint-1")
        second = create_token(conn, "admin", "admin-mint-2")
    limits = RateLimits(token_mints=BucketLimit(burst=2, refill_s=60.0))
    with serve(database_url, rate_limits=limits) as served:
        yield served, first, second


def test_minting_is_limited_per_admin(minting: tuple[Served, str, str]) -> None:
    served, first, second = minting
    body = {"role": "caregiver", "subject": "cg-fam"}
    with served.client(first) as admin:
        assert [admin.post("/api/v1/tokens", json=body).status_code for _ in range(2)] == [201, 201]
        refused = admin.post("/api/v1/tokens", json=body)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["title"] == "Too many requests"
    # Another admin has a bucket of its own.
    with served.client(second) as other:
        assert other.post("/api/v1/tokens", json=body).status_code == 201
    assert _metric(served, 'carewatch_api_rate_limited_total{limit="token_mints_per_subject"}') == 1

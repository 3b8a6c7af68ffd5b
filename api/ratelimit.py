"""Rate limits on the API's credentials: token buckets per client address and per token subject.

carewatch has no password login: every request presents a bearer token (``api.auth``), and admins mint
tokens (``POST /api/v1/tokens``). So the "login" to protect is every authentication, and:

* **failed authentications per client address** — each wrong, expired or revoked token a client
  presents takes a token from its address's bucket; an empty bucket answers 429 to that address's
  authenticated requests, before the database is asked, until the bucket refills. Correct tokens take
  nothing, so a busy operator page is never slowed; a script guessing tokens (or hammering the
  database with lookups of made-up token ids) is. A request with no credentials at all costs nothing
  to answer and is not counted.
* **tokens minted per subject** — ``POST /tokens`` takes a token from the minting admin's bucket, so a
  stolen admin token cannot print thousands of new credentials before anyone notices.

Not per token id on failures: that would let anyone lock a known token's holder out with wrong secrets
(the secret is 256 random bits; guessing it is hopeless, a lock-out is not). A route authenticated by
a gateway's signature instead of a token (the check-in answer callback) should check and report its
failures the same way (``check_client``, ``auth_failed``).

The client address is the socket peer as uvicorn reports it (behind a reverse proxy, run uvicorn with
``--proxy-headers`` and ``--forwarded-allow-ips`` naming the proxy, so it is the real client's).
Buckets live in the API process: with several API processes each enforces its own (an attacker gets
the burst once per process), which is enough against guessing; a shared limit would need a shared
store. Refusals answer 429 with ``Retry-After`` and a problem-details body, and are counted in
``carewatch_api_rate_limited_total{limit}``; failed authentications in ``carewatch_api_auth_failures_total``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry, Counter

from api.problems import ProblemError
from i18n import N_


@dataclass(frozen=True, slots=True)
class BucketLimit:
    """``burst`` tokens at most; one token back every ``refill_s`` seconds."""

    burst: int
    refill_s: float


@dataclass(frozen=True, slots=True)
class RateLimits:
    # 20 wrong tokens from one address, then one every 10 s: a mistyped token is retried a few times,
    # a guessing script makes 360 guesses an hour instead of thousands a second.
    auth_failures: BucketLimit = field(default_factory=lambda: BucketLimit(burst=20, refill_s=10.0))
    # 10 tokens minted by one admin, then one a minute.
    token_mints: BucketLimit = field(default_factory=lambda: BucketLimit(burst=10, refill_s=60.0))


class TokenBuckets:
    """Keyed token buckets, thread-safe; time is passed in (monotonic seconds). At most ``max_keys``
    buckets are kept: full ones are forgotten first (they are the same as new), then the least recently
    used, so a flood of addresses cannot grow memory without bound."""

    def __init__(self, limit: BucketLimit, *, max_keys: int = 100_000) -> None:
        self._burst = float(limit.burst)
        self._rate = 1.0 / limit.refill_s
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, updated)
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, updated = self._buckets.get(key, (self._burst, now))
        return min(self._burst, tokens + (now - updated) * self._rate)

    def wait_s(self, key: str, now: float) -> float:
        """Seconds until ``key`` has a whole token; 0 when it has one now. Takes nothing."""
        with self._lock:
            level = self._level(key, now)
        return 0.0 if level >= 1.0 else (1.0 - level) / self._rate

    def take(self, key: str, now: float) -> float:
        """Take a token if there is one and return 0; otherwise take nothing and return the wait in s."""
        with self._lock:
            level = self._level(key, now)
            if level < 1.0:
                return (1.0 - level) / self._rate
            self._buckets[key] = (level - 1.0, now)
            self._buckets.move_to_end(key)
            if len(self._buckets) > self._max_keys:
                self._forget(now)
            return 0.0

    def charge(self, key: str, now: float) -> None:
        """Take a token whether or not one is there (a failure that already happened still counts)."""
        with self._lock:
            self._buckets[key] = (max(0.0, self._level(key, now) - 1.0), now)
            self._buckets.move_to_end(key)
            if len(self._buckets) > self._max_keys:
                self._forget(now)

    def __len__(self) -> int:
        return len(self._buckets)

    def _forget(self, now: float) -> None:
        for key in [k for k in self._buckets if self._level(k, now) >= self._burst]:
            del self._buckets[key]
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)


class ApiLimiter:
    """The API's limits, their refusals (429 problem details) and their metrics."""

    def __init__(
        self,
        limits: RateLimits,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._failures = TokenBuckets(limits.auth_failures)
        self._mints = TokenBuckets(limits.token_mints)
        self._refused = Counter(
            "carewatch_api_rate_limited", "API requests refused with 429, by limit", ["limit"], registry=registry
        )
        self._auth_failures = Counter(
            "carewatch_api_auth_failures", "Requests with a wrong, expired or revoked credential", registry=registry
        )
        for limit in ("auth_failures_per_client", "token_mints_per_subject"):
            self._refused.labels(limit)

    def check_client(self, client: str) -> None:
        """429 when ``client`` has used up its failed authentications."""
        wait = self._failures.wait_s(client, self._clock())
        if wait > 0:
            self._refuse(
                "auth_failures_per_client",
                wait,
                N_("too many failed authentications from this address; try again in {retry_after} s"),
            )

    def auth_failed(self, client: str) -> None:
        self._auth_failures.inc()
        self._failures.charge(client, self._clock())

    def take_mint(self, subject: str) -> None:
        """Count one token minted by ``subject``; 429 when it has minted too many."""
        wait = self._mints.take(subject, self._clock())
        if wait > 0:
            self._refuse(
                "token_mints_per_subject",
                wait,
                N_("too many tokens minted by this subject; try again in {retry_after} s"),
            )

    def _refuse(self, limit: str, wait_s: float, why: str) -> None:
        """429 with ``why`` (a catalogue message) and when to try again."""
        self._refused.labels(limit).inc()
        retry_after = max(1, math.ceil(wait_s))
        headers = {"Retry-After": str(retry_after)}
        raise ProblemError(429, N_("Too many requests"), why, headers=headers, retry_after=retry_after)


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def get_limiter(request: Request) -> ApiLimiter:
    limiter: ApiLimiter = request.app.state.limiter
    return limiter


Limiter = Annotated[ApiLimiter, Depends(get_limiter)]

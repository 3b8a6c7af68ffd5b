"""The monitoring API: ``create_app`` builds a FastAPI app from explicit dependencies.

Layout: ``/api/v1/...`` (every route authenticated: the router-level ``get_principal`` dependency also
covers route modules added later), ``/healthz`` and ``/readyz`` (open, for probes), ``/metrics``
(Prometheus; labels are route templates and roles, never ids or names), and the web page at ``/``
(``api/static``: plain HTML, CSS and one JavaScript module, no build step).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from psycopg_pool import ConnectionPool

from alerting.service import AlertingConfig
from api import problems
from api.auth import get_principal
from api.broker import BrokerAccess, NoBroker
from api.deps import ApiContext
from api.feed import AlertFeed
from api.health import ReadinessCheck, database_check, dispatcher_backlog_check, run_checks
from api.ratelimit import ApiLimiter, RateLimits
from api.report.render import stylesheet_csp_source
from api.routes import (
    admin,
    alert_actions,
    alerts,
    app_credentials,
    care_plans,
    caregivers,
    checkins,
    devices,
    household_settings,
    households,
    notify_groups,
    page_language,
    personal_data,
    readings,
    reports,
    stream,
)
from api.routes import service_levels as service_level_routes
from schemas.api import Readiness

STATIC = Path(__file__).parent / "static"

# Security headers for every response; the page needs nothing from other origins.
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# The monthly report's stylesheet by its hash: the page shows the report in a sandboxed srcdoc frame.
_PAGE_CSP = (
    f"default-src 'self'; img-src 'self' data:; style-src 'self' {stylesheet_csp_source()}; script-src 'self';"
    " frame-ancestors 'none'"
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def create_app(
    *,
    pool: ConnectionPool,
    alerting: AlertingConfig | None = None,
    metrics: CollectorRegistry | None = None,
    clock: Callable[[], datetime] = _utcnow,
    on_alert_changed: Callable[[int], None] = lambda alert_id: None,
    readiness_checks: Sequence[ReadinessCheck] = (),
    feed_poll_s: float = 1.0,
    checkin_secret: str | None = None,
    broker: BrokerAccess | None = None,
    rate_limits: RateLimits | None = None,
    page_language: str | None = None,
) -> FastAPI:
    """The app. ``readiness_checks`` are added to the database and dispatcher checks of ``/readyz``."""
    # A private registry when none is given: two apps in one process must not collide in the global one.
    metrics = metrics if metrics is not None else CollectorRegistry()
    app = FastAPI(
        title="carewatch monitoring API",
        version="1",
        description="Households, residents, caregivers, devices, readings, alerts and fleet health of carewatch.",
    )
    app.state.context = ApiContext(
        pool=pool,
        alerting=alerting or AlertingConfig(),
        clock=clock,
        on_alert_changed=on_alert_changed,
        checkin_secret=checkin_secret,
        broker=broker or NoBroker(),
    )
    conninfo = pool.conninfo if isinstance(pool.conninfo, str) else pool.conninfo()
    app.state.feed = AlertFeed(conninfo=conninfo, poll_s=feed_poll_s)
    app.state.limiter = ApiLimiter(rate_limits or RateLimits(), metrics)
    app.state.page_language = page_language
    problems.install(app)
    authenticated = [Depends(get_principal)]
    # stream before alerts: "/alerts/stream" must not be read as "/alerts/{alert_id}".
    alerting_routes = (alert_actions, care_plans, service_level_routes)  # issue 5
    robot_routes = (notify_groups,)  # issue 18: messaging-robot destinations
    for module in (
        households,
        household_settings,
        caregivers,
        app_credentials,
        devices,
        readings,
        stream,
        alerts,
        admin,
        checkins,
        personal_data,  # PIPL: export and erasure
        *alerting_routes,
        reports,  # the district's monthly report (issue 18)
        *robot_routes,
    ):
        app.include_router(module.router, prefix="/api/v1", dependencies=authenticated)
    # Authenticated by the phone gateway's signature, not a bearer token (api.routes.checkins).
    app.include_router(checkins.callback_router, prefix="/api/v1")

    checks = [database_check(pool), dispatcher_backlog_check(pool, clock), *readiness_checks]

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Alive: the process serves requests."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"model": Readiness}})
    def readyz() -> JSONResponse:
        """Ready: database reachable, dispatcher keeping up, and the runtime's checks (broker, ingest)."""
        result = run_checks(checks)
        return JSONResponse(result.model_dump(), status_code=200 if result.ready else 503)

    _install_metrics(app, metrics)
    _install_page(app)
    return app


def _install_metrics(app: FastAPI, registry: CollectorRegistry) -> None:
    requests = Counter(
        "carewatch_api_requests",
        "API requests by route template, method and status",
        ["route", "method", "status"],
        registry=registry,
    )
    latency = Histogram(
        "carewatch_api_request_seconds", "API request latency by route template", ["route"], registry=registry
    )

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        template = _route_template(request)
        requests.labels(template, request.method, str(response.status_code)).inc()
        latency.labels(template).observe(time.perf_counter() - started)
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _route_template(request: Request) -> str:
    """The path with its parameters put back as names ("/api/v1/households/{household_id}"): metric
    labels never carry ids, and their number stays bounded."""
    if request.scope.get("route") is None:
        return "unmatched"
    path = request.url.path
    for name, value in request.path_params.items():
        path = path.replace(f"/{value}", f"/{{{name}}}", 1)
    return path


def _install_page(app: FastAPI) -> None:
    app.include_router(page_language.router)  # the page's translations, before the static mount
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": _PAGE_CSP})

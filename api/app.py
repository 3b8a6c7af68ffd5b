"""The monitoring API: ``create_app`` builds a FastAPI app from explicit dependencies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from psycopg_pool import ConnectionPool

from alerting.service import AlertingConfig
from api import problems
from api.deps import ApiContext
from api.routes import alerts, caregivers, devices, households


def _utcnow() -> datetime:
    return datetime.now(UTC)


def create_app(
    *,
    pool: ConnectionPool,
    alerting: AlertingConfig | None = None,
    metrics: CollectorRegistry | None = None,
    clock: Callable[[], datetime] = _utcnow,
    on_alert_changed: Callable[[int], None] = lambda alert_id: None,
) -> FastAPI:
    app = FastAPI(
        title="carewatch monitoring API",
        version="1",
        description="Households, caregivers, devices and alerts of carewatch.",
    )
    app.state.context = ApiContext(
        pool=pool, alerting=alerting or AlertingConfig(), clock=clock, on_alert_changed=on_alert_changed
    )
    problems.install(app)
    for module in (households, caregivers, devices, alerts):
        app.include_router(module.router, prefix="/api/v1")

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Alive: the process serves requests."""
        return {"status": "ok"}

    registry = metrics

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    def prometheus_metrics() -> Response:
        body = generate_latest(registry) if registry is not None else b""
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return app

"""The worker's web views: metrics, health and readiness for probes and scrapers, one
campaign's status (answered by the worker that owns it) and the operator pages.

Why a module of its own: the views only read what the worker exposes (its status, a
campaign lookup, the processor's status report); building them from those callables
keeps the worker's data flow (:mod:`.app`) free of HTTP.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterable, Iterator

from faust.web import Request, Response, View
from prometheus_client import generate_latest

from pacer_stream.observability import metrics
from pacer_stream.observability.health import WorkerStatus, healthz, readyz
from pacer_stream.streams.activity import ActivityLog
from pacer_stream.streams.faust_app import CampaignTable, PacerApp
from pacer_stream.streams.processor import Processor
from pacer_stream.streams.redis_sync import REGISTRY as STREAMS_REGISTRY
from pacer_stream.streams.stored import Stored
from pacer_stream.streams.ui.routes import register as register_ui

#: The access check of campaign views: None when the request may read them, else the
#: refusal to send.
Authorise = Callable[[View, Request], Response | None]


def bearer_check(token: str | None) -> Authorise:
    """The access check of campaign views for ``token``.

    With a token, campaign views need ``Authorization: Bearer <token>`` (compared in
    constant time); faust forwards the header when it routes a view to the owning
    worker. Without one, every request may read them. Health, readiness and metrics
    stay open for probes and scrapers: they carry no campaign data."""

    def authorise(view: View, request: Request) -> Response | None:
        if not token:
            return None
        given = request.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return None
        return view.json(
            {"error": "unauthorised"}, status=401, headers={"WWW-Authenticate": "Bearer"}
        )

    return authorise


def register_views(
    app: PacerApp,
    campaigns: CampaignTable,
    *,
    status: WorkerStatus,
    refresh_status: Callable[[], None],
    processor: Processor,
    lookup: Callable[[str], Stored | None],
    owned: Callable[[], Iterator[Stored] | Iterable[Stored]],
    activity: ActivityLog | None,
    authorise: Authorise,
) -> tuple[list[type[View]], list[type[View]]]:
    """Add the worker's views to ``app``; campaign views are routed to
    the worker owning the campaign's partition of ``campaigns``. ``refresh_status``
    brings ``status`` up to date before readiness is answered; ``lookup`` finds an
    owned campaign (a quarantined one is unknown). Returns the worker's views and the
    operator pages' views."""

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            body, content_type = metrics.render_latest()
            # aiohttp refuses a charset inside ``content_type``: pass it as is.
            return self.bytes(
                body + generate_latest(STREAMS_REGISTRY),
                headers={"Content-Type": content_type},
            )

    @app.page("/healthz")
    class HealthzView(View):
        async def get(self, request: Request) -> Response:
            code, body = healthz(status)
            return self.json(body, status=code)

    @app.page("/readyz")
    class ReadyzView(View):
        async def get(self, request: Request) -> Response:
            refresh_status()
            code, body = readyz(status, time.monotonic())
            return self.json(body, status=code)

    @app.page("/campaigns/{campaign_id}")
    class CampaignView(View):
        """Status of one campaign, answered by the worker that owns it (faust routes
        the request to the owner of the key's partition)."""

        async def get(self, request: Request, campaign_id: str) -> Response:
            denied = authorise(self, request)
            if denied is not None:
                return denied
            return await self._owned(request, campaign_id)

        @app.table_route(table=campaigns, match_info="campaign_id")  # type: ignore[arg-type]
        async def _owned(self, request: Request, campaign_id: str) -> Response:
            value = lookup(campaign_id)
            if value is None:
                return self.json(
                    {"error": "unknown campaign", "campaign_id": campaign_id}, status=404
                )
            return self.json(processor.status(value))

    # Operator pages (read-only HTML under /ui): their own module, under the same
    # access check as the campaign view.
    ui_views = register_ui(
        app,
        campaigns,
        processor=processor,
        lookup=lookup,
        owned=owned,
        activity=activity,
        authorise=authorise,
    )
    return [MetricsView, HealthzView, ReadyzView, CampaignView], ui_views

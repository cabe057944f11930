"""The worker's read-only operator pages, registered on its faust web server.

::

    GET /ui                               index of the campaigns this worker owns (?q=)
    GET /ui/live                          the index fragment again, as JSON (polled)
    GET /ui/api/campaigns                 the index facts as JSON
    GET /ui/campaigns/{id}                one campaign's page        (routed to its owner)
    GET /ui/campaigns/{id}/live           its fragment, as JSON      (routed to its owner)
    GET /ui/api/campaigns/{id}            its facts as JSON          (routed to its owner)
    GET /ui/static/ui.css | ui.js         the page's only assets

Only ``GET`` exists: the page reads, every change stays a signed command sent through
the CLI or the client. Every response carries a strict Content-Security-Policy (scripts,
styles and fetches from this origin only, no inline script, no framing) and is never
cached. Why a module of its own, registered by one call from :mod:`.app`: the worker's
other views and any access control wrapped around them stay in one place, and this
module needs nothing from faust beyond the app and the table it is given.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from importlib import resources
from typing import Any
from urllib.parse import quote

from faust.web import Request, Response, View

from pacer_stream.streams.activity import ActivityLog
from pacer_stream.streams.processor import Processor
from pacer_stream.streams.stored import Stored
from pacer_stream.streams.ui import model, render
from pacer_stream.wire import records

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
#: Headers of every page, fragment and asset.
HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_STATIC = {"ui.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8"}
#: Longest search text honoured (campaign ids are at most 256 characters).
_MAX_QUERY = 256


def _static(name: str) -> bytes:
    return (resources.files("pacer_stream.streams.ui") / "static" / name).read_bytes()


def register(
    app: Any,
    table: Any,
    *,
    processor: Processor,
    lookup: Callable[[str], Stored | None],
    owned: Callable[[], Iterator[Stored] | Iterable[Stored]],
    activity: ActivityLog | None,
    authorise: Callable[[View, Request], Response | None] | None = None,
) -> list[type[View]]:
    """Add the operator views to ``app`` (a ``faust.App``); campaign views are routed
    to the worker owning the campaign's partition of ``table``. ``authorise`` is the
    worker's access check of its campaign views (None = allowed, else the refusal to
    send); it guards every view here except the two static assets. Returns the view
    classes."""
    assets = {name: _static(name) for name in _STATIC}

    def html(view: View, body: str, status: int = 200) -> Response:
        return view.html(body, status=status, headers=dict(HEADERS))

    def json(view: View, body: Any, status: int = 200) -> Response:
        return view.json(body, status=status, headers=dict(HEADERS))

    def guarded(handler: Any) -> Any:
        """Refuse before anything is read when ``authorise`` says so."""

        @functools.wraps(handler)
        async def get(view: View, request: Request, **kwargs: Any) -> Response:
            denied = authorise(view, request) if authorise is not None else None
            if denied is not None:
                denied.headers.update(HEADERS)
                return denied
            response: Response = await handler(view, request, **kwargs)
            return response

        return get

    def routed(handler: Any) -> Any:
        """Check access here, then answer on the worker that owns the campaign's
        partition. faust forwards the request there (with its Authorization header) but
        rebuilds the response from status, type and body only, so the security headers
        are put back on whatever comes back."""
        inner = app.table_route(table=table, match_info="campaign_id")(handler)

        @guarded
        @functools.wraps(handler)
        async def get(view: View, request: Request, **kwargs: Any) -> Response:
            response: Response = await inner(view, request, **kwargs)
            response.headers.update(HEADERS)
            return response

        return get

    def query(request: Request) -> str:
        return str(request.query.get("q", ""))[:_MAX_QUERY]

    def index(q: str) -> dict[str, Any]:
        return model.index_facts(owned(), q, processor.clock.now())

    def facts(campaign_id: str) -> dict[str, Any] | None:
        stored = lookup(campaign_id)
        if stored is None:
            return None
        return model.campaign_facts(processor, stored, activity, processor.clock.now())

    def unknown(view: View, campaign_id: str) -> Response:
        return json(view, {"error": "unknown campaign", "campaign_id": campaign_id}, 404)

    def at() -> str:
        return records.format_time(processor.clock.now())

    @app.page("/ui")
    class IndexPage(View):
        @guarded
        async def get(self, request: Request) -> Response:
            q = query(request)
            fragment = render.index_fragment(index(q))
            return html(self, render.page("campaigns", f"/ui/live?q={quote(q)}", fragment, query=q))

    @app.page("/ui/")
    class IndexPageSlash(IndexPage):
        """``/ui/`` answers like ``/ui``."""

    @app.page("/ui/live")
    class IndexLive(View):
        @guarded
        async def get(self, request: Request) -> Response:
            return json(self, {"at": at(), "html": render.index_fragment(index(query(request)))})

    @app.page("/ui/api/campaigns")
    class IndexApi(View):
        @guarded
        async def get(self, request: Request) -> Response:
            return json(self, index(query(request)))

    @app.page("/ui/campaigns/{campaign_id}")
    class CampaignPage(View):
        @routed
        async def get(self, request: Request, campaign_id: str) -> Response:
            f = facts(campaign_id)
            if f is None:
                return html(self, render.not_found(campaign_id), status=404)
            live = f"/ui/campaigns/{render.path_id(campaign_id)}/live"
            return html(self, render.page(campaign_id, live, render.campaign_fragment(f)))

    @app.page("/ui/campaigns/{campaign_id}/live")
    class CampaignLive(View):
        @routed
        async def get(self, request: Request, campaign_id: str) -> Response:
            f = facts(campaign_id)
            if f is None:
                return unknown(self, campaign_id)
            return json(self, {"at": at(), "html": render.campaign_fragment(f)})

    @app.page("/ui/api/campaigns/{campaign_id}")
    class CampaignApi(View):
        @routed
        async def get(self, request: Request, campaign_id: str) -> Response:
            f = facts(campaign_id)
            return unknown(self, campaign_id) if f is None else json(self, f)

    @app.page("/ui/static/{name}")
    class Static(View):
        async def get(self, request: Request, name: str) -> Response:
            content_type = _STATIC.get(name)
            if content_type is None:
                return self.text("not found", status=404, headers=dict(HEADERS))
            headers = dict(HEADERS, **{"Content-Type": content_type})
            headers["Cache-Control"] = "no-cache"
            return self.bytes(assets[name], headers=headers)

    return [
        IndexPage,
        IndexPageSlash,
        IndexLive,
        IndexApi,
        CampaignPage,
        CampaignLive,
        CampaignApi,
        Static,
    ]

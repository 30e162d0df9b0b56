"""Events: the event catalogue of the console's topology (what ``tidings docs html``
writes), or a redirect to a published one (``tidings console --catalogue URL``)."""

from __future__ import annotations

from functools import cache

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tidings.console.app import require
from tidings.console.context import Console
from tidings.docs import build_catalogue
from tidings.docs.html import catalogue_json, render

# The catalogue page carries its own stylesheet inline (it is also a standalone file):
# it may use inline styles and nothing else: no scripts, no fetches, no forms.
CATALOGUE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
                 "form-action 'none'; base-uri 'none'")


def register(app: FastAPI, console: Console) -> None:
    # The topology does not change while the console runs: build the catalogue once.
    @cache
    def built() -> tuple[str, str]:
        catalogue = build_catalogue(console.topology)
        return render(catalogue, back=("/", "back to the console")), catalogue_json(catalogue)

    @app.get("/catalogue", response_class=HTMLResponse)
    def catalogue_page(request: Request) -> Response:
        require(console, request)
        if console.catalogue_url:
            return RedirectResponse(console.catalogue_url, status_code=303)
        return HTMLResponse(built()[0], headers={"Content-Security-Policy": CATALOGUE_CSP})

    @app.get("/catalogue.json")
    def catalogue_facts(request: Request) -> Response:
        require(console, request)
        return Response(built()[1], media_type="application/json")

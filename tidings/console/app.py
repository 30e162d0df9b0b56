"""The console's web application: sign-in, CSRF, errors as pages, and the page routes.

Safe by default: every page needs a session (or a bearer token), every POST a CSRF
token, nothing changes on a GET, and an operation refused for bad input shows the
same message the CLI prints, with nothing changed.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from tidings.console.auth import LOGIN_COOKIE, SESSION_COOKIE, Session, csrf_matches
from tidings.console.context import Console, who
from tidings.console.html import e, notice, page
from tidings.errors import BrokerUnavailable, TidingsError

STATIC = Path(__file__).with_name("static")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class NotSignedIn(Exception):
    """The request has no valid session or bearer token."""


class Refused(Exception):
    """The request is signed in but may not do this (a viewer, or a bad CSRF token)."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


Form = dict[str, list[str]]


def first(form: Form, name: str, default: str = "") -> str:
    values = form.get(name)
    return values[0] if values else default


def session_of(console: Console, request: Request) -> Session | None:
    bearer = console.sessions.bearer(request.headers.get("authorization"))
    if bearer is not None:
        return bearer
    return console.sessions.get(request.cookies.get(SESSION_COOKIE))


def require(console: Console, request: Request) -> Session:
    """The request's session; :class:`NotSignedIn` (a 401 page) without one."""
    session = session_of(console, request)
    if session is None:
        raise NotSignedIn()
    return session


async def read_form(request: Request) -> Form:
    """An ``application/x-www-form-urlencoded`` body (the only kind our forms send)."""
    body = await request.body()
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


async def posted(console: Console, request: Request, *, operator: bool = False,
                 action: str = "", target: str = "") -> tuple[Session, Form]:
    """A POST's session and form, after its CSRF token (and role, for operator actions)
    is checked. A viewer's attempt at an operator action is refused and logged."""
    session = require(console, request)
    form = await read_form(request)
    if session.id != "bearer" and not csrf_matches(session.csrf, first(form, "csrf")):
        raise Refused("refused: the form's CSRF token is missing or stale; reload the page "
                      "and try again (nothing was changed)")
    if operator and not session.is_operator:
        why = (f"the {session.role.value} role may not {action.replace('.', ' ')}; sign in "
               "with the operator token (TIDINGS_CONSOLE_TOKEN)")
        await run_in_threadpool(
            console.audit.refused, who=who(session), role=session.role.value, via="console",
            action=action, target=target or first(form, "group"), plan="", why=why)
        raise Refused(f"refused: {why}; nothing was changed")
    return session, form


def html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status)


def create_app(console: Console) -> FastAPI:
    """The console's ASGI application for ``console``."""
    from tidings.console.pages import (
        audit,
        catalogue,
        dead_letters,
        group,
        overview,
        replay,
        topology,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        console.dead_letters.start()
        try:
            yield
        finally:
            console.dead_letters.stop()

    app = FastAPI(title="Tidings console", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.console = console

    @app.middleware("http")
    async def headers(request: Request,
                      call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        return login_page(request, status=401,
                          message="A token is needed: sign in with the console's token.")

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        session = session_of(console, request)
        return html(page("Refused", notice(str(exc)) + '<p><a href="/">Back to the '
                         'overview</a></p>', session=session), exc.status)

    @app.exception_handler(TidingsError)
    async def tidings_error(request: Request, exc: TidingsError) -> Response:
        session = session_of(console, request)
        status = 503 if isinstance(exc, BrokerUnavailable) else 400
        body = notice(exc.render()) + "<p>Nothing was changed.</p>"
        return html(page("Refused", body, session=session), status)

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        path = STATIC / name
        if name not in {"console.css", "console.js"} or not path.is_file():
            return Response("not found", status_code=404)
        media = "text/css" if name.endswith(".css") else "text/javascript"
        return FileResponse(path, media_type=media)

    def login_page(request: Request, *, status: int = 200, message: str = "") -> Response:
        login_csrf = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
        body = (notice(message, "info") if message else "") + f"""
<form method="post" action="/login" class="card narrow">
  <input type="hidden" name="csrf" value="{e(login_csrf)}">
  <label>Token <input type="password" name="token" autocomplete="current-password"
    required autofocus></label>
  <label>Your name (for the audit log) <input type="text" name="who" maxlength="60"></label>
  <button type="submit">Sign in</button>
  <p class="muted">The operator token is TIDINGS_CONSOLE_TOKEN, the viewer token
  TIDINGS_CONSOLE_VIEWER_TOKEN; tokens not set were printed once when the console
  started.</p>
</form>"""
        response = html(page("Sign in", body, session=None), status)
        response.set_cookie(LOGIN_COOKIE, login_csrf, httponly=True, samesite="strict")
        return response

    @app.get("/login")
    def login(request: Request) -> Response:
        return login_page(request)

    @app.post("/login")
    async def do_login(request: Request) -> Response:
        form = await read_form(request)
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not csrf_matches(expected, first(form, "csrf")):
            return login_page(request, status=400,
                              message="The sign-in form was stale; try again.")
        session = console.sessions.sign_in(first(form, "token"), first(form, "who"))
        if session is None:
            return login_page(request, status=401, message="That token is not valid.")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, session.id, httponly=True, samesite="strict")
        response.delete_cookie(LOGIN_COOKIE)
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        session, _ = await posted(console, request)
        console.sessions.sign_out(session.id)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    for module in (overview, group, dead_letters, replay, topology, catalogue, audit):
        module.register(app, console)

    return app

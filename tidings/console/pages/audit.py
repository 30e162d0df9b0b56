"""The audit log: every action taken through the console (and the CLI), newest first."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from tidings.audit import AUDIT_TOPIC
from tidings.console.app import html, require
from tidings.console.context import Console
from tidings.console.html import e, page, table


def register(app: FastAPI, console: Console) -> None:
    @app.get("/audit", response_class=HTMLResponse)
    def audit_page(request: Request) -> HTMLResponse:
        session = require(console, request)
        records = console.audit.records()
        rows = [[e(r.at), e(r.who), e(r.role), e(r.via), f"<b>{e(r.action)}</b>", e(r.target),
                 f'<span class="outcome {e(r.status)}">{e(r.outcome)}</span>',
                 f"<details><summary>plan</summary><pre>{e(r.plan)}</pre></details>"
                 if r.plan else ""] for r in records]
        body = (f'<p class="muted">From the compacted topic <code>{AUDIT_TOPIC}</code> on the '
                "cluster: who, what, when, the plan and the outcome.</p>"
                + table(["when", "who", "role", "via", "action", "target", "outcome", "plan"],
                        rows, cls="audit", empty="no actions recorded yet"))
        return html(page("Audit log", body, session=session, active="/audit"))

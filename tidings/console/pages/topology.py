"""Topology: `plan` against the live cluster, each change graded, and apply after a
confirmation; destructive changes need the same explicit allowance as on the CLI."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from tidings.console.app import html, posted, require
from tidings.console.auth import Session
from tidings.console.context import Console
from tidings.console.html import csrf_field, e, notice, page, table
from tidings.console.pages.actions import checked, confirm_page, run_now, take_plan
from tidings.errors import TidingsError
from tidings.topology import sync
from tidings.topology.plan import Grade, Plan


def register(app: FastAPI, console: Console) -> None:
    @app.get("/topology", response_class=HTMLResponse)
    def topology_page(request: Request) -> HTMLResponse:
        session = require(console, request)
        view = sync.connect(console.topology)
        the_plan = sync.plan(view)
        return html(page(f"Topology {console.topology.name}",
                         plan_view(session, view, the_plan), session=session,
                         active="/topology"))

    @app.post("/topology/plan", response_class=HTMLResponse)
    async def apply_plan(request: Request) -> Response:
        session, form = await posted(console, request)
        allow = checked(form, "allow_destructive")

        def make() -> tuple[sync.ClusterView, Plan]:
            view = sync.connect(console.topology)
            return view, sync.plan(view)

        view, the_plan = await run_in_threadpool(make)
        refuse_unsafe(the_plan, allow)
        text = plan_text(the_plan, view)
        pending = console.desk.hold("topology.apply", console.topology.name, text, the_plan,
                                    {"allow_destructive": allow}, session.who)
        extra = '<input type="hidden" name="allow_destructive" value="1">' if allow else ""
        return confirm_page(session, pending, title="Apply plan",
                            button=f"Apply {len(the_plan.changes)} change(s)",
                            run_path="/topology/apply/run", runnable=bool(the_plan.changes),
                            extra=extra, note="No changes: the cluster matches the file.")

    @app.post("/topology/apply/run", response_class=HTMLResponse)
    async def apply_run(request: Request) -> Response:
        session, form = await posted(console, request, operator=True, action="topology.apply",
                                     target=console.topology.name)
        pending = take_plan(console, form, "topology.apply")
        shown: Plan = pending.plan

        def work() -> str:
            view = sync.connect(console.topology)
            now = sync.plan(view)
            if [c.summary for c in now.changes] != [c.summary for c in shown.changes]:
                raise TidingsError("nothing applied: the cluster changed since the plan was "
                                   "made; plan again")
            refuse_unsafe(now, bool(pending.params.get("allow_destructive")))
            result = sync.apply(view, now)
            return f"applied {len(result.done)} change(s)"

        return await run_now(console, session, pending, work, "Applied")


def refuse_unsafe(the_plan: Plan, allow_destructive: bool) -> None:
    """The CLI's refusals: refused changes block everything; destructive ones need the
    explicit allowance."""
    if the_plan.refusals:
        raise TidingsError("nothing applied: the plan has refused changes (see above)")
    if the_plan.destructive and not allow_destructive:
        raise TidingsError(
            f"nothing applied: {len(the_plan.destructive)} destructive change(s); "
            "re-run with --allow-destructive if you mean it")


def plan_text(the_plan: Plan, view: sync.ClusterView) -> str:
    lines = [f"Plan for {view.topology.path.name} against {view.bootstrap}:"]
    for change in the_plan.changes:
        lines.append(f"  {change.summary}  [{change.grade.value}]")
    for refusal in the_plan.refusals:
        lines.append(f"  ! {refusal.message}")
    if the_plan.empty:
        lines.append(f"  No changes ({the_plan.in_sync_text()}).")
    return "\n".join(lines)


def plan_view(session: Session, view: sync.ClusterView, the_plan: Plan) -> str:
    rows = [[f'<span class="grade {e(c.grade.value)}">{e(c.grade.value)}</span>',
             e(c.kind.value), e(c.summary), e(c.reason if c.grade is not Grade.SAFE else "")]
            for c in the_plan.changes]
    refusals = [[e(r.topic), e(r.message)] for r in the_plan.refusals]
    counts = ", ".join(f"{n} {g}" for g, n in the_plan.counts().items() if n) or "none"
    parts = [f'<p>Against <code>{e(view.bootstrap)}</code> ({view.state.brokers} broker(s)): '
             f"{len(the_plan.changes)} change(s) ({e(counts)}), "
             f"{the_plan.topics_in_sync} topic(s) in sync.</p>",
             table(["grade", "kind", "change", "why it is graded so"], rows, cls="plan-table",
                   empty="No changes. The cluster matches the file.")]
    if refusals:
        parts.append("<h2>Refused</h2>" + table(["topic", "why"], refusals))
        parts.append(notice("Nothing can be applied while the plan has refused changes."))
    elif the_plan.changes:
        destructive = len(the_plan.destructive)
        allow = ('<label class="check"><input type="checkbox" name="allow_destructive" '
                 f'value="1"> allow {destructive} destructive change(s)</label>'
                 if destructive else "")
        parts.append(f'<form method="post" action="/topology/plan">{csrf_field(session)}'
                     f'{allow}<button type="submit">Plan apply</button></form>')
    return "".join(parts)

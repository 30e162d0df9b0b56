"""What the action pages share: the confirmation page of a plan, and running a plan
(directly or as a background job), with the audit log written before and after."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from tidings.audit import AuditRecord
from tidings.console.app import Form, Refused, first, html
from tidings.console.auth import Session
from tidings.console.context import Console
from tidings.console.html import csrf_field, e, notice, page
from tidings.console.jobs import Job, Pending, new_job
from tidings.errors import TidingsError


def confirm_page(session: Session, pending: Pending, *, title: str, button: str,
                 run_path: str, runnable: bool, extra: str = "", note: str = "") -> HTMLResponse:
    """The plan exactly as the CLI prints it, and a button that runs exactly it."""
    if runnable:
        who = "" if session.is_operator else \
            '<p class="muted">Only an operator may run this plan.</p>'
        action = (f'<form method="post" action="{e(run_path)}" class="confirm">'
                  f'{csrf_field(session)}<input type="hidden" name="plan" '
                  f'value="{e(pending.id)}">{extra}'
                  f'<button type="submit" class="danger" data-run>{e(button)}</button>'
                  f"</form>{who}")
    else:
        action = f'<p class="muted">{e(note or "Nothing to do.")}</p>'
    body = (f'<p class="muted">Planned by {e(pending.made_by)}. Nothing has changed yet; the '
            "plan runs only when you confirm it.</p>"
            f'<pre class="plan" data-plan>{e(pending.text)}</pre>{action}')
    return html(page(title, body, session=session))


def take_plan(console: Console, form: Form, kind: str) -> Pending:
    pending = console.desk.take(first(form, "plan"))
    if pending is None or pending.kind != kind:
        raise Refused("refused: this plan is unknown or expired (plans are kept 15 "
                      "minutes and run once); plan again. Nothing was changed.", 400)
    return pending


async def run_now(console: Console, session: Session, pending: Pending,
                  work: Callable[[], str], title: str) -> HTMLResponse:
    """Run a short action now: audit start, run, audit outcome, show the outcome."""
    record = await run_in_threadpool(console.record, session, pending.kind, pending.target,
                                     pending.text)
    try:
        outcome = await run_in_threadpool(work)
    except TidingsError as exc:
        await run_in_threadpool(console.audit.finish, record, f"failed: {exc}")
        raise
    await run_in_threadpool(console.audit.finish, record, f"done: {outcome}")
    body = (notice(outcome, "ok") + f'<pre class="plan">{e(pending.text)}</pre>'
            '<p><a href="/audit">See it in the audit log</a></p>')
    return html(page(title, body, session=session))


async def run_job(console: Console, session: Session, pending: Pending, title: str,
                  work: Callable[[Job], str], *,
                  after: Callable[[Job], None] | None = None) -> Response:
    """Start a long action as a job and send the browser to its progress page."""
    record: AuditRecord = await run_in_threadpool(console.record, session, pending.kind,
                                                  pending.target, pending.text)
    job = new_job(pending.kind, pending.target, title, pending.text)

    def finished(done: Job) -> None:
        try:
            console.audit.finish(record, done.outcome)
        finally:
            if after is not None:
                after(done)

    console.desk.start(job, work, finished)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


def checked(form: Form, name: str) -> bool:
    return first(form, name) in ("1", "on", "true", "yes")


def as_int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise TidingsError(f"{what} {text!r} is not a whole number") from None


def optional(text: str) -> str | None:
    return text.strip() or None




def end_offsets(console: Console, targets: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """The end offset of each ``(topic, partition)`` now (where a run's copies begin)."""
    ends: dict[tuple[str, int], int] = {}
    for topic in {t for t, _ in targets}:
        partitions = [p for t, p in targets if t == topic]
        for p, (_, high) in console.cluster.watermarks(topic, partitions).items():
            ends[(topic, p)] = high
    return ends

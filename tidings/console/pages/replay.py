"""Replay: a form for group, topic, from/to, mode and reprocess; the plan exactly as
`tidings replay` prints it; the run with a live progress bar; undo of a rewind."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from tidings.console.app import first, html, posted, require
from tidings.console.auth import Session
from tidings.console.context import Console
from tidings.console.html import csrf_field, e, hidden, notice, number, options, page, table
from tidings.console.jobs import Job
from tidings.console.pages.actions import (
    checked,
    confirm_page,
    end_offsets,
    run_job,
    run_now,
    take_plan,
)
from tidings.errors import TidingsError
from tidings.replay import Mode, ReplayRequest, execute_replay, execute_undo, plan_replay, plan_undo
from tidings.replay.progress import format_seconds


def register(app: FastAPI, console: Console) -> None:
    @app.get("/replay", response_class=HTMLResponse)
    def replay_form(request: Request) -> HTMLResponse:
        session = require(console, request)
        params = request.query_params
        return html(page("Replay", form_html(console, session, dict(params)),
                         session=session, active="/replay"))

    @app.post("/replay/plan", response_class=HTMLResponse)
    async def replay_plan(request: Request) -> Response:
        session, form = await posted(console, request)
        rate_text = first(form, "rate").strip()
        rate = _rate(rate_text)
        replay_request = ReplayRequest(
            group=first(form, "group"), topic=first(form, "topic"), start=first(form, "from"),
            end=first(form, "to").strip() or None, mode=first(form, "mode", "auto"),
            reprocess=checked(form, "reprocess"))
        if not replay_request.start.strip():
            raise TidingsError("replay needs --topic and --from (e.g. --topic orders --from -1h)")
        the_plan = await run_in_threadpool(plan_replay, console.topology, replay_request,
                                           cluster=console.cluster)
        pending = console.desk.hold("replay", the_plan.group, the_plan.render(), the_plan,
                                    {"rate": rate}, session.who)
        verb = "Rewind the group" if the_plan.mode is Mode.REWIND else \
            f"Copy {the_plan.remaining} event(s)"
        return confirm_page(session, pending, title=f"Replay plan for {the_plan.group}",
                            button=verb, run_path="/replay/run", runnable=not the_plan.empty,
                            note="Nothing to replay.")

    @app.post("/replay/run")
    async def replay_run(request: Request) -> Response:
        session, form = await posted(console, request, operator=True, action="replay")
        pending = take_plan(console, form, "replay")
        the_plan = pending.plan

        def work(job: Job) -> str:
            targets = [(the_plan.target, s.partition) for s in the_plan.spans] \
                if the_plan.target else []
            before = end_offsets(console, targets)
            result = execute_replay(the_plan, console.topology, cluster=console.cluster,
                                    rate=pending.params.get("rate"), show_progress=False,
                                    on_progress=job.update)
            job.result = result
            if result.mode is Mode.REWIND:
                job.done = job.total = result.events
                return (f"rewound group {the_plan.group} on {the_plan.topic} "
                        f"({result.partitions_moved} partition(s)); undo restores the "
                        "previous offsets")
            after = end_offsets(console, targets)
            job.copies = {tp: (before[tp], after[tp]) for tp in targets}
            return (f"copied {result.events} event(s) to {the_plan.target} in "
                    f"{result.elapsed:.1f}s (replay {result.replay_id})")

        return await run_job(console, session, pending, f"Replay to {the_plan.group}", work)

    @app.post("/replay/undo/plan", response_class=HTMLResponse)
    async def undo_plan(request: Request) -> Response:
        session, form = await posted(console, request)
        the_plan = await run_in_threadpool(plan_undo, console.topology, first(form, "group"),
                                           cluster=console.cluster)
        pending = console.desk.hold("replay.undo", the_plan.group, the_plan.render(),
                                    the_plan, {}, session.who)
        return confirm_page(session, pending, title=f"Undo plan for {the_plan.group}",
                            button="Restore these offsets", run_path="/replay/undo/run",
                            runnable=True)

    @app.post("/replay/undo/run", response_class=HTMLResponse)
    async def undo_run(request: Request) -> Response:
        session, form = await posted(console, request, operator=True, action="replay.undo")
        pending = take_plan(console, form, "replay.undo")

        def work() -> str:
            moved = execute_undo(pending.plan, console.topology, cluster=console.cluster)
            return (f"restored the offsets of group {pending.plan.group} on "
                    f"{pending.plan.topic} ({moved} partition(s))")

        return await run_now(console, session, pending, work, f"Undone ({pending.target})")

    @app.get("/jobs/{job_id}", response_class=HTMLResponse)
    def job_page(request: Request, job_id: str) -> HTMLResponse:
        session = require(console, request)
        job = console.desk.job(job_id)
        if job is None:
            raise TidingsError(f"no job {job_id} in this console (jobs are kept until it "
                               "restarts)")
        body = (f'<div data-refresh="/fragments/jobs/{e(job.id)}" data-every="500" '
                f'data-until-finished>{job_fragment(console, session, job)}</div>'
                f'<pre class="plan">{e(job.plan_text)}</pre>')
        return html(page(job.title, body, session=session))

    @app.get("/fragments/jobs/{job_id}", response_class=HTMLResponse)
    def job_fragment_route(request: Request, job_id: str) -> HTMLResponse:
        session = require(console, request)
        job = console.desk.job(job_id)
        if job is None:
            return html(notice("unknown job"), 404)
        return html(job_fragment(console, session, job))


def _rate(text: str) -> float | None:
    if not text:
        return None
    try:
        rate = float(text)
    except ValueError:
        rate = -1.0
    if rate <= 0:
        raise TidingsError("--rate must be a positive number of events per second")
    return rate


def processed(console: Console, job: Job) -> tuple[int, int] | None:
    """How many of a job's copies the group has committed past, of how many."""
    if not job.copies:
        return None
    committed: dict[tuple[str, int], int | None] = {}
    for topic in {t for t, _ in job.copies}:
        partitions = [p for t, p in job.copies if t == topic]
        for p, offset in console.cluster.committed(job.target, topic, partitions).items():
            committed[(topic, p)] = offset
    done = total = 0
    for tp, (first_offset, end) in job.copies.items():
        total += end - first_offset
        at = committed.get(tp)
        done += 0 if at is None else max(0, min(at, end) - first_offset)
    return done, total


def job_fragment(console: Console, session: Session, job: Job) -> str:
    percent = round(job.fraction * 100)
    eta = job.eta
    eta_text = "done" if job.finished and job.outcome.startswith("done") else (
        "ETA ?" if eta is None else "ETA " + format_seconds(eta))
    state = "finished" if job.finished else "running"
    lines = [f'<div class="job {state}" data-job-state="{state}">',
             f'<progress max="100" value="{percent}" data-progress="{percent}"></progress>',
             f'<p class="progress-line"><b data-percent>{percent}%</b> · '
             f"{number(job.done)}/{number(job.total)} events · {job.rate:,.1f}/s · "
             f"{e(eta_text)}</p>"]
    if job.finished:
        kind = "ok" if job.outcome.startswith("done") else "error"
        lines.append(notice(job.outcome, kind))
        seen = processed(console, job)
        if seen is not None:
            lines.append(f'<p data-processed="{seen[0]}/{seen[1]}">processed by '
                         f"{e(job.target)}: <b>{number(seen[0])} of {number(seen[1])}</b> "
                         "(its committed offsets on the target topic)</p>")
        result = job.result
        if result is not None and getattr(result, "mode", None) is Mode.REWIND:
            lines.append(f'<form method="post" action="/replay/undo/plan">'
                         f"{csrf_field(session)}{hidden({'group': job.target})}"
                         '<button type="submit">Plan undo of this rewind</button></form>')
    lines.append("</div>")
    return "".join(lines)


def form_html(console: Console, session: Session, values: dict[str, str]) -> str:
    topology = console.topology
    groups = list(topology.consumers)
    group = values.get("group") or (groups[0] if groups else "")
    topics = sorted({t for g in groups for t in topology.topics_of_consumer(g)})
    mode = values.get("mode", "auto")
    rows = [[e(g), e(", ".join(topology.topics_of_consumer(g)))] for g in groups]
    return f"""
<form method="post" action="/replay/plan" class="card" data-replay-form>
  {csrf_field(session)}
  <label>Group <select name="group">{options(groups, group)}</select></label>
  <label>Topic <select name="topic">{options(topics, values.get("topic"))}</select></label>
  <label>From <input name="from" value="{e(values.get("from", "-1h"))}" required
    placeholder="-1h, 2026-03-14T15:00Z or 0:120,1:80"></label>
  <label>To <input name="to" value="{e(values.get("to", ""))}" placeholder="(the end)"></label>
  <label>Mode <select name="mode">{options(["auto", "copy", "rewind"], mode)}</select></label>
  <label class="check"><input type="checkbox" name="reprocess" value="1"> reprocess (run the
    handler again for events it already applied)</label>
  <label>Rate <input name="rate" value="{e(values.get("rate", ""))}" placeholder="events/s"
    size="8"></label>
  <button type="submit">Plan replay</button>
</form>
<section><h2>Undo a rewind</h2>
<form method="post" action="/replay/undo/plan">{csrf_field(session)}
  <label>Group <select name="group">{options(groups, group)}</select></label>
  <button type="submit">Plan undo</button></form></section>
<section><h2>Groups and the topics they read</h2>{table(["group", "topics"], rows)}</section>"""

"""Dead letters: filter, page, open one letter decoded, redrive (one, a selection, or all
of a filter) and purge; each a plan first, run only after a confirmation."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from tidings.console.app import first, html, posted, require
from tidings.console.auth import Session
from tidings.console.context import Console
from tidings.console.html import csrf_field, e, hidden, notice, number, options, page, table, url
from tidings.console.jobs import Job
from tidings.console.pages.actions import (
    as_int,
    checked,
    confirm_page,
    end_offsets,
    run_job,
    run_now,
    take_plan,
)
from tidings.dlq import (
    DEFAULT_MAX_REDRIVES,
    LetterFilter,
    decode_letters,
    dlq_topics,
    execute_purge,
    execute_redrive,
    plan_purge,
    plan_redrive,
    read_offsets,
    show_letters,
)
from tidings.dlq.report import ShownLetter, format_ms
from tidings.errors import TidingsError

PAGE_SIZE = 25
FILTER_FIELDS = ("error_class", "event_type", "event_id", "key", "from", "to")


def register(app: FastAPI, console: Console) -> None:
    @app.get("/dlq", response_class=HTMLResponse)
    def letters(request: Request) -> HTMLResponse:
        session = require(console, request)
        params = request.query_params
        groups = console.dead_letters.groups
        group = params.get("group") or (groups[0] if groups else "")
        if not group:
            return html(page("Dead letters", notice("No consumer group declares a DLQ.",
                                                    "info"), session=session,
                             active="/dlq"))
        dlq_topics(console.topology, group)  # an unknown group: the CLI's message
        texts = {name: params.get(name, "") for name in FILTER_FIELDS}
        select = selection(texts, params.getlist("event_id"))
        offset = as_int(params.get("offset", "0") or "0", "offset")
        limit = min(200, as_int(params.get("limit", str(PAGE_SIZE)) or "25", "limit"))
        index = console.dead_letters.indexes[group]
        shown = show_letters(console.topology, group, limit=limit, offset=offset,
                             select=select, index=index)
        state = console.dead_letters.fresh(group)
        body = (filter_form(console, group, texts, index.error_classes(),
                            index.event_types())
                + letters_table(session, group, texts, shown.letters, state.redriven)
                + pager(group, texts, shown.offset, len(shown.letters), shown.total, limit)
                + f'<p class="counts" data-counts>{number(shown.total)} letter(s) of '
                  f"{number(shown.events)} event(s) match ({e(select.describe())}); the "
                  f'group has <b data-waiting>{number(state.waiting)}</b> waiting, '
                  f"{number(state.letters)} letters of {number(state.events)} events in all."
                  "</p>"
                + purge_form(session, group))
        return html(page(f"Dead letters of {group}", body, session=session, active="/dlq"))

    @app.get("/dlq/letter", response_class=HTMLResponse)
    def letter(request: Request) -> HTMLResponse:
        session = require(console, request)
        params = request.query_params
        topic = params.get("topic", "")
        group = group_of(console, topic)
        partition = as_int(params.get("partition", ""), "partition")
        offset = as_int(params.get("offset", ""), "offset")
        found = read_offsets(console.cluster, topic, {partition: [offset]})
        if (partition, offset) not in found:
            raise TidingsError(f"no dead letter at {topic}[{partition}]@{offset} (purged, "
                               "or never there)")
        (item,) = decode_letters(console.topology, [found[(partition, offset)]])
        state = console.dead_letters.fresh(group)
        return html(page(f"Dead letter {topic}[{partition}]@{offset}",
                         letter_view(session, group, item,
                                     (topic, partition, offset) in state.redriven),
                         session=session, active="/dlq"))

    @app.post("/dlq/redrive/plan", response_class=HTMLResponse)
    async def redrive_plan(request: Request) -> Response:
        session, form = await posted(console, request)
        group = first(form, "group")
        texts = {name: first(form, name) for name in FILTER_FIELDS}
        chosen = [] if "all" in form else [i for i in form.get("selected", []) if i]
        if "selected_only" in form and not chosen:
            raise TidingsError("no letters selected: tick some, or redrive all that match")
        select = selection(texts, chosen or form.get("event_id", []))
        force = checked(form, "force")
        max_redrives = as_int(first(form, "max_redrives", str(DEFAULT_MAX_REDRIVES)),
                              "max redrives")
        the_plan = await _threaded(plan_redrive, console.topology, group, select=select,
                                   force=force, max_redrives=max_redrives,
                                   cluster=console.cluster)
        pending = console.desk.hold("dlq.redrive", group, the_plan.render(), the_plan,
                                    {"group": group}, session.who)
        return confirm_page(session, pending, title=f"Redrive plan for {group}",
                            button=f"Redrive {the_plan.remaining} event(s)",
                            run_path="/dlq/redrive/run", runnable=not the_plan.empty,
                            note="Nothing to redrive.")

    @app.post("/dlq/redrive/run")
    async def redrive_run(request: Request) -> Response:
        session, form = await posted(console, request, operator=True, action="dlq.redrive")
        pending = take_plan(console, form, "dlq.redrive")
        the_plan = pending.plan

        def work(job: Job) -> str:
            targets = sorted({(t.target, t.partition) for t in the_plan.tasks})
            before = end_offsets(console, targets)
            result = execute_redrive(the_plan, console.topology, cluster=console.cluster,
                                     show_progress=False, on_progress=job.update)
            after = end_offsets(console, targets)
            job.copies = {tp: (before[tp], after[tp]) for tp in targets}
            job.result = result
            return f"redrove {result.sent} event(s) in {result.elapsed:.1f}s " \
                   f"(redrive {result.redrive_id})"

        return await run_job(console, session, pending, f"Redrive for {pending.target}", work,
                             after=lambda _: _refresh(console, pending.target))

    @app.post("/dlq/purge/plan", response_class=HTMLResponse)
    async def purge_plan(request: Request) -> Response:
        session, form = await posted(console, request)
        group = first(form, "group")
        the_plan = await _threaded(plan_purge, console.topology, group, first(form, "before"),
                                   cluster=console.cluster)
        pending = console.desk.hold("dlq.purge", group, the_plan.render(), the_plan,
                                    {"group": group}, session.who)
        return confirm_page(session, pending, title=f"Purge plan for {group}",
                            button=f"Delete {the_plan.count} dead letter(s)",
                            run_path="/dlq/purge/run", runnable=the_plan.count > 0,
                            note="Nothing to purge.")

    @app.post("/dlq/purge/run", response_class=HTMLResponse)
    async def purge_run(request: Request) -> Response:
        session, form = await posted(console, request, operator=True, action="dlq.purge")
        pending = take_plan(console, form, "dlq.purge")

        def work() -> str:
            deleted = execute_purge(pending.plan, console.topology, cluster=console.cluster)
            console.dead_letters.refresh(pending.target)
            return f"purged {deleted} dead letter(s) of group {pending.target}"

        return await run_now(console, session, pending, work, f"Purged ({pending.target})")


def _refresh(console: Console, group: str) -> None:
    console.dead_letters.refresh(group)


async def _threaded(fn: Any, *args: Any, **kwargs: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(lambda: fn(*args, **kwargs))


def selection(texts: dict[str, str], event_ids: list[str]) -> LetterFilter:
    ids = [i for raw in event_ids for i in raw.replace(",", " ").split()]
    return LetterFilter.parse(error_class=texts.get("error_class"),
                              event_type=texts.get("event_type"), event_ids=ids,
                              key=texts.get("key") or None, since=texts.get("from"),
                              until=texts.get("to"))


def group_of(console: Console, topic: str) -> str:
    for group in console.dead_letters.groups:
        if topic in [dlq for _, dlq in dlq_topics(console.topology, group)]:
            return group
    raise TidingsError(f"{topic!r} is not a DLQ topic of {console.topology.path.name}")


def filter_form(console: Console, group: str, texts: dict[str, str], classes: list[str],
                types: list[str]) -> str:
    known_types = sorted({*types, *console.topology.events})
    groups = options(console.dead_letters.groups, group)
    class_options = options(classes, texts["error_class"] or None, blank="any")
    type_options = options(known_types, texts["event_type"] or None, blank="any")

    def field(label: str, name: str, size: int, hint: str = "") -> str:
        return (f'<label>{label} <input name="{name}" value="{e(texts[name])}" '
                f'size="{size}" placeholder="{e(hint)}"></label>')

    return (
        '<form method="get" action="/dlq" class="filters" data-filters>'
        f'<label>Group <select name="group">{groups}</select></label>'
        f'<label>Error class <select name="error_class">{class_options}</select></label>'
        f'<label>Event type <select name="event_type">{type_options}</select></label>'
        + field("Event id", "event_id", 14) + field("Key", "key", 10)
        + field("From", "from", 10, "-2h or ISO") + field("To", "to", 10, "now")
        + '<button type="submit">Filter</button></form>')


def letters_table(session: Session, group: str, texts: dict[str, str], letters: list[ShownLetter],
                  redriven: frozenset[tuple[str, int, int]]) -> str:
    rows = []
    for item in letters:
        letter = item.letter
        where = url("/dlq/letter", topic=letter.topic, partition=letter.partition,
                    offset=letter.offset)
        status = "redriven" if letter.coordinate in redriven else "waiting"
        rows.append([
            f'<input type="checkbox" name="selected" value="{e(letter.event_id)}" '
            f'aria-label="select {e(letter.event_id)}">',
            e(format_ms(letter.timestamp_ms).replace("T", " ")), e(letter.event_type),
            f'<a href="{e(where)}" data-letter title="{e(letter.event_id)}">'
            f"<code>{e(short(letter.event_id))}</code></a>",
            f'<code title="{e(letter.key_text or "")}">{e(short(letter.key_text or "-"))}'
            "</code>",
            f'<span class="err">{e(letter.error_class)}</span>: {e(letter.error_message[:90])}',
            e(letter.attempts), e(letter.redrives), f'<span class="{status}">{status}</span>'])
    return (f'<form method="post" action="/dlq/redrive/plan" class="letters">'
            f"{csrf_field(session)}{hidden({'group': group, **texts})}"
            + table(["", "dead-lettered", "event type", "event id", "key", "error", "attempts",
                     "redrives", "status"], rows, cls="letters compact",
                    empty="no dead letters match")
            + '<div class="buttons"><button type="submit" name="selected_only" value="1">'
              "Plan redrive of the selected</button> "
              '<button type="submit" name="all" value="1" data-redrive-all>Plan redrive of '
              "all that match</button></div></form>")


def short(text: str, keep: int = 13) -> str:
    """A long id cut for a table cell (the whole one is in the cell's title)."""
    return text if len(text) <= keep + 1 else text[:keep] + "…"


def pager(group: str, texts: dict[str, str], offset: int, shown: int, total: int,
          limit: int) -> str:
    links = []

    def at(start: int) -> str:
        return e(url("/dlq", group=group, **_q(texts), offset=start, limit=limit))

    if offset > 0:
        links.append(f'<a href="{at(max(0, offset - limit))}" rel="prev">previous</a>')
    if offset + shown < total:
        links.append(f'<a href="{at(offset + shown)}" rel="next">next</a>')
    where = f"letters {offset + 1}-{offset + shown} of {total}" if shown else \
        f"no letters here ({total} match)"
    return f'<p class="pager" data-pager>{e(where)} {" · ".join(links)}</p>'


def _q(texts: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in texts.items() if v}


def purge_form(session: Session, group: str) -> str:
    return (f'<details class="card"><summary>Purge dead letters of {e(group)}</summary>'
            f'<form method="post" action="/dlq/purge/plan">{csrf_field(session)}'
            f'{hidden({"group": group})}<label>Dead-lettered before <input name="before" '
            'placeholder="-7d or 2026-03-14T00:00Z" required></label> '
            '<button type="submit">Plan purge</button></form>'
            '<p class="muted">Kafka deletes a prefix of each partition: everything '
            "dead-lettered before that time goes.</p></details>")


def letter_view(session: Session, group: str, item: ShownLetter, redriven: bool) -> str:
    letter = item.letter
    facts = [
        ["group", e(group)], ["event type", e(letter.event_type)],
        ["event id", f"<code>{e(letter.event_id)}</code>"], ["key", e(letter.key_text or "-")],
        ["attempts", e(letter.attempts)], ["first delivered at", e(letter.original)],
        ["dead-lettered", e(format_ms(letter.timestamp_ms))],
        ["status", "redriven by a finished redrive" if redriven else "waiting"],
    ]
    error = (f'<div class="error-box" data-error><b>{e(letter.error_class)}</b>: '
             f"{e(letter.error_message)}<div class=muted>failed at "
             f"{e(letter.headers.get('failed-at', '?'))}</div></div>")
    history = [[e(i), e(h.get("attempt")), e(h.get("failed-at")), e(h.get("error-class")),
                e(h.get("error-message"))] for i, h in enumerate(letter.history, 1)]
    headers = [[f"<code>{e(k)}</code>", f"<code>{e(v)}</code>"]
               for k, v in sorted(letter.headers.items())]
    if item.record is not None:
        payload = (f'<pre class="json" data-event>'
                   f"{e(json.dumps(item.record, indent=2, sort_keys=True, default=str))}</pre>")
    else:
        payload = (notice(f"does not decode: {item.decode_error}", "info")
                   + f'<pre class="raw">{e(letter.value.hex(" ", 2))}</pre>'
                   + f"<p class=muted>as text: <code>{e(repr(letter.value)[:400])}</code></p>")
    redrive = (f'<form method="post" action="/dlq/redrive/plan">{csrf_field(session)}'
               f'{hidden({"group": group, "event_id": letter.event_id})}'
               f'<button type="submit" data-redrive-one>Plan redrive of this event</button>'
               "</form>")
    return ('<div class="columns"><section><h2>Letter</h2>' + table(["", ""], facts, cls="kv")
            + "<h2>Error</h2>" + error + "<h2>Redrive history</h2>"
            + table(["#", "attempt", "failed at", "error class", "message"], history,
                    empty="never redriven")
            + redrive + "</section><section><h2>Event</h2>" + payload
            + "<h2>Headers</h2>" + table(["header", "value"], headers, cls="headers")
            + "</section></div>")

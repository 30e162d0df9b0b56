"""One consumer group: members, lag per partition of every topic it reads, rates,
retries waiting per tier, dead letters per error class, and the last errors."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from tidings.console.app import html, require
from tidings.console.context import Console
from tidings.console.figures import group_topics
from tidings.console.html import e, number, page, table, url
from tidings.dlq.report import format_ms
from tidings.replay import check_group_and_topic


def register(app: FastAPI, console: Console) -> None:
    @app.get("/groups/{group}", response_class=HTMLResponse)
    def group_page(request: Request, group: str) -> HTMLResponse:
        session = require(console, request)
        check_group_and_topic(console.topology, group, None)
        body = (f'<div data-refresh="{e(url(f"/fragments/groups/{group}"))}" '
                f'data-every="2000">{group_fragment(console, group)}</div>')
        return html(page(f"Group {group}", body, session=session))

    @app.get("/fragments/groups/{group}", response_class=HTMLResponse)
    def fragment(request: Request, group: str) -> HTMLResponse:
        require(console, request)
        check_group_and_topic(console.topology, group, None)
        return html(group_fragment(console, group))


def group_fragment(console: Console, group: str) -> str:
    topology = console.topology
    spec = topology.consumers[group]
    snap = console.figures.snapshot()
    rates = console.figures.rates(snap)
    topics = group_topics(topology, group)
    members = snap.members.get(group, [])
    member_rows = [[e(m.client_id), e(m.host),
                    e(", ".join(f"{t}[{p}]" for t, p in m.assignment) or "-")]
                   for m in members]
    into = sum(rates.into.get(t, 0.0) for t in topics.main)
    lag_rows = []
    for kind, names in (("main", topics.main), *((f"retry {label}", [t]) for label, t
                                                 in topics.retry),
                        ("replay", topics.replay)):
        for topic in names:
            for p in snap.topics.get(topic, []):
                committed = snap.committed.get(group, {}).get((topic, p))
                lag_rows.append([e(kind), e(topic), e(p),
                                 number(snap.high.get((topic, p), 0)),
                                 "-" if committed is None else number(committed),
                                 number(snap.lag(group, topic, p))])
    tiers = [[e(label), e(topic), number(snap.topic_lag(group, topic))]
             for label, topic in topics.retry if topic in snap.topics]
    summary = [
        ["state", e(snap.states.get(group, "?").lower())],
        ["members", e(len(members))],
        ["handler", f"<code>{e(spec.handler)}</code>"],
        ["subscribes", ", ".join(f'<a href="/catalogue#event-{e(name)}">{e(name)}</a>'
                                 for name in spec.subscribes)],
        ["events in", f"{into:,.1f}/s" if rates.seconds else "- /s"],
        ["processed", e(rates.group(group))],
        ["lag", number(sum(snap.topic_lag(group, t) for t in topics.read
                           if t in snap.topics))],
    ]
    parts = ['<div class="columns"><section><h2>Summary</h2>'
             + table(["", ""], summary, cls="kv") + "</section>",
             "<section><h2>Members</h2>"
             + table(["client id", "host", "assigned partitions"], member_rows,
                     empty="no members: the group is not running") + "</section></div>"]
    parts.append("<section><h2>Retries waiting per tier</h2>"
                 + table(["tier", "topic", "waiting"], tiers, empty="no retry tiers")
                 + "</section>")
    if spec.dlq:
        state = console.dead_letters.state(group)
        by_class = [[f'<a href="{e(url("/dlq", group=group, error_class=c))}">{e(c)}</a>',
                     number(n.letters), number(n.events), number(n.waiting)]
                    for c, n in state.by_class.items()]
        errors = [[e(format_ms(r.timestamp_ms)), e(r.event_type),
                   f"{e(r.error_class)}: {e(r.error_message)}",
                   f'<a href="{e(letter_url(r.topic, r.partition, r.offset))}">'
                   f"{e(r.topic)}[{r.partition}]@{r.offset}</a>"] for r in state.newest]
        parts.append(
            '<div class="columns"><section><h2>Dead letters per error class</h2>'
            + table(["error class", "letters", "events", "waiting"], by_class,
                    empty="no dead letters")
            + f'<p><a href="{e(url("/dlq", group=group))}">All dead letters of {e(group)}'
              "</a></p></section><section><h2>Last errors</h2>"
            + table(["dead-lettered", "event type", "error", "letter"], errors,
                    empty="no errors") + "</section></div>")
    parts.append("<section><h2>Lag per partition</h2>"
                 + table(["kind", "topic", "partition", "end offset", "committed", "lag"],
                         lag_rows) + "</section>")
    return "".join(parts)


def letter_url(topic: str, partition: int, offset: int) -> str:
    return url("/dlq/letter", topic=topic, partition=partition, offset=offset)

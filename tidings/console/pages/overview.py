"""The overview: producers -> topics -> consumer groups, with lag, members and DLQ size
on each group, refreshed live."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from tidings.console.app import html, require
from tidings.console.context import Console
from tidings.console.dead_letters import DlqState
from tidings.console.figures import Rates, Snapshot, group_topics
from tidings.console.html import e, number, page, table, url

NODE_H, GAP, TOP = 62, 18, 10
COLUMNS = {"producer": (10, 200), "topic": (300, 240), "group": (640, 270)}


def register(app: FastAPI, console: Console) -> None:
    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request) -> HTMLResponse:
        session = require(console, request)
        began = time.perf_counter()
        body = (f'<div data-refresh="/fragments/overview" data-every="2000">'
                f"{overview_fragment(console)}</div>")
        response = html(page(f"Overview of {console.topology.name}", body, session=session,
                             active="/"))
        response.headers["Server-Timing"] = f"render;dur={(time.perf_counter() - began) * 1000:.1f}"
        return response

    @app.get("/fragments/overview", response_class=HTMLResponse)
    def fragment(request: Request) -> HTMLResponse:
        require(console, request)
        began = time.perf_counter()
        response = html(overview_fragment(console))
        response.headers["Server-Timing"] = f"render;dur={(time.perf_counter() - began) * 1000:.1f}"
        return response


def overview_fragment(console: Console) -> str:
    snap = console.figures.snapshot()
    rates = console.figures.rates(snap)
    return (graph(console, snap, rates) + '<div class="columns">'
            + groups_table(console, snap, rates) + topics_table(console, snap, rates)
            + "</div>" + _footer(console, snap))


def group_lag(snap: Snapshot, console: Console, group: str) -> int:
    return sum(snap.topic_lag(group, t) for t in group_topics(console.topology, group).read
               if t in snap.topics)


def graph(console: Console, snap: Snapshot, rates: Rates) -> str:
    """The topology as an SVG: three columns of nodes and the edges between them."""
    topology = console.topology
    producers = list(topology.producers)
    topics = list(topology.topics)
    groups = list(topology.consumers)
    rows = max(len(producers), len(topics), len(groups), 1)
    height = TOP * 2 + rows * (NODE_H + GAP)

    def place(kind: str, names: list[str]) -> dict[str, tuple[float, float]]:
        x, _ = COLUMNS[kind]
        offset = (height - len(names) * (NODE_H + GAP)) / 2
        return {n: (x, offset + i * (NODE_H + GAP) + GAP / 2) for i, n in enumerate(names)}

    where = {"producer": place("producer", producers), "topic": place("topic", topics),
             "group": place("group", groups)}
    edges: list[str] = []

    def edge(a: tuple[float, float], wa: int, b: tuple[float, float], cls: str) -> None:
        x1, y1 = a[0] + wa, a[1] + NODE_H / 2
        x2, y2 = b[0], b[1] + NODE_H / 2
        mid = (x1 + x2) / 2
        edges.append(f'<path class="edge {cls}" d="M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} '
                     f'{mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"/>')

    for name, spec in topology.producers.items():
        for topic in dict.fromkeys(topology.events[ev].topic for ev in spec.publishes
                                   if ev in topology.events):
            edge(where["producer"][name], COLUMNS["producer"][1], where["topic"][topic], "pub")
    for group in groups:
        for topic in topology.topics_of_consumer(group):
            edge(where["topic"][topic], COLUMNS["topic"][1], where["group"][group], "sub")
    nodes: list[str] = []
    for name, (x, y) in where["producer"].items():
        count = len(topology.producers[name].publishes)
        nodes.append(_node("producer", name, x, y, COLUMNS["producer"][1],
                           [f"publishes {count} event type{'s' if count != 1 else ''}"]))
    for name, (x, y) in where["topic"].items():
        partitions = len(snap.topics.get(name, []))
        lines = [f"{number(snap.size(name))} events · {rates.topic(name)}",
                 f"{partitions} partitions" if partitions else "missing: run topology apply"]
        nodes.append(_node("topic", name, x, y, COLUMNS["topic"][1], lines))
    for name, (x, y) in where["group"].items():
        members = len(snap.members.get(name, []))
        lag = group_lag(snap, console, name)
        lines = [f"lag {number(lag)} · {members} member{'s' if members != 1 else ''}"]
        dlq_class = ""
        if topology.consumers[name].dlq:
            state = console.dead_letters.state(name)
            lines.append(f"DLQ {waiting(state)} waiting · {rates.group(name)}")
            dlq_class = " dlq-full" if state.waiting else ""
        else:
            lines.append(f"no DLQ · {rates.group(name)}")
        nodes.append(_node("group" + dlq_class, name, x, y, COLUMNS["group"][1], lines,
                           href=url(f"/groups/{name}")))
    width = COLUMNS["group"][0] + COLUMNS["group"][1] + 10
    return (f'<svg class="graph" viewBox="0 0 {width} {height:.0f}" role="img" '
            f'aria-label="producers, topics and consumer groups">'
            + "".join(edges) + "".join(nodes) + "</svg>")


def _node(kind: str, name: str, x: float, y: float, width: int, lines: list[str], *,
          href: str | None = None) -> str:
    text = "".join(f'<text x="{x + 12:.0f}" y="{y + 40 + i * 16:.0f}" class="fig">{e(line)}'
                   "</text>" for i, line in enumerate(lines))
    label = (f'<text x="{x + 12:.0f}" y="{y + 21:.0f}" class="name">{e(name)}</text>')
    box = (f'<rect x="{x:.0f}" y="{y:.0f}" width="{width}" height="{NODE_H}" rx="8" '
           f'class="node {kind}"/>')
    inner = f'<g data-node="{e(name)}">{box}{label}{text}</g>'
    return f'<a href="{e(href)}">{inner}</a>' if href else inner


def waiting(state: DlqState) -> str:
    return "…" if state.loading else number(state.waiting)


def groups_table(console: Console, snap: Snapshot, rates: Rates) -> str:
    rows = []
    for name, spec in console.topology.consumers.items():
        topics = group_topics(console.topology, name)
        retries = sum(snap.topic_lag(name, t) for _, t in topics.retry if t in snap.topics)
        if spec.dlq:
            state = console.dead_letters.state(name)
            dlq = (f'<span data-dlq-waiting="{e(name)}">{waiting(state)}</span> waiting'
                   f' <span class="muted">({number(state.letters)} letters, '
                   f"{number(state.events)} events)</span>")
        else:
            dlq = '<span class="muted">no DLQ</span>'
        rows.append([f'<a href="{e(url(f"/groups/{name}"))}">{e(name)}</a>',
                     e(snap.states.get(name, "?").lower()),
                     e(len(snap.members.get(name, []))),
                     f'<span data-lag="{e(name)}">{number(group_lag(snap, console, name))}</span>',
                     e(rates.group(name)), number(retries), dlq])
    return ('<section><h2>Consumer groups</h2>'
            + table(["group", "state", "members", "lag", "processed", "retries waiting",
                     "dead letters"], rows) + "</section>")


def topics_table(console: Console, snap: Snapshot, rates: Rates) -> str:
    rows = [[e(name), e(len(snap.topics.get(name, [])) or "missing"),
             number(snap.size(name)), e(rates.topic(name))]
            for name in console.topology.topics]
    return ('<section><h2>Topics</h2>'
            + table(["topic", "partitions", "events", "in"], rows) + "</section>")


def _footer(console: Console, snap: Snapshot) -> str:
    missing = (f" · {len(snap.missing)} topic(s) missing (run `tidings topology apply`)"
               if snap.missing else "")
    return (f'<p class="muted small">{e(console.cluster.bootstrap)} · {snap.brokers} '
            f"broker(s) · {len(snap.topics)} topics read in {snap.took_ms:.0f} ms{e(missing)}"
            " · figures from committed and end offsets, refreshed every 2 s</p>")

"""The catalogue as a static, offline site: ``index.html`` (no scripts, no fetches)
and ``catalogue.json`` (the same facts for tools, such as the console, to link to)."""

from __future__ import annotations

import dataclasses
import json
from html import escape
from pathlib import Path

from tidings.docs.catalogue import EVENT_HEADERS, FAILURE_HEADERS, Catalogue, EventDoc, FieldDoc

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2430;background:#fafbfc}
header{background:#1d2430;color:#fff;padding:1.2em 2em}header h1{margin:0;font-size:1.4em}
header a{color:#fff}
main{display:grid;grid-template-columns:16em 1fr;gap:2em;padding:1.5em 2em}
nav a{display:block;padding:.15em 0;color:#2456a6;text-decoration:none}
nav h2{font-size:.8em;text-transform:uppercase;color:#667;margin:1.2em 0 .3em}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:1em 1.4em;
margin-bottom:1.4em}
h2{margin-top:0}table{border-collapse:collapse;width:100%;margin:.5em 0 1em}
th,td{text-align:left;border-bottom:1px solid #eceef1;padding:.3em .6em;vertical-align:top}
th{font-size:.8em;text-transform:uppercase;color:#667}code{font-size:.92em}
.tag{display:inline-block;padding:0 .5em;border-radius:3px;font-size:.8em;background:#e8eef8}
.retry{background:#fff3d6}.dlq{background:#fde2e1}.replay{background:#e4f4e8}
.muted{color:#667}details{margin:.4em 0}
"""


def write_site(catalogue: Catalogue, directory: Path | str) -> Path:
    """Write the site into ``directory`` (created if missing); returns its index.html."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.html"
    index.write_text(render(catalogue), encoding="utf-8")
    (out / "catalogue.json").write_text(catalogue_json(catalogue), encoding="utf-8")
    return index


def catalogue_json(catalogue: Catalogue) -> str:
    """The catalogue's facts as JSON (``catalogue.json``)."""
    return json.dumps(dataclasses.asdict(catalogue), indent=2, default=str) + "\n"


def render(catalogue: Catalogue, *, back: tuple[str, str] | None = None) -> str:
    """The catalogue as one HTML page; ``back`` is ``(href, label)`` of a link home
    (the console serves the page with a link back to itself)."""
    events = sorted(catalogue.events.values(), key=lambda e: e.name)
    nav = ["<nav><h2>Events</h2>"]
    nav += [f'<a href="#event-{escape(e.name)}">{escape(e.name)}</a>' for e in events]
    nav.append("<h2>Consumer groups</h2>")
    nav += [f'<a href="#group-{escape(g)}">{escape(g)}</a>' for g in sorted(catalogue.consumers)]
    nav.append('<h2>Topics</h2><a href="#topics">every topic</a></nav>')
    body = [_event(e) for e in events]
    body.append(_groups(catalogue))
    body.append(_topics(catalogue))
    body.append(_headers())
    made = "the Tidings console" if back else "<code>tidings docs html</code>"
    home = f' · <a href="{escape(back[0])}">{escape(back[1])}</a>' if back else ""
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(catalogue.name)} events</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>{escape(catalogue.name)}: event catalogue</h1>"
        f"<div class=\"muted\">from {escape(catalogue.file)} by {made}"
        f" · {len(events)} events · {len(catalogue.consumers)} consumer groups · "
        f"{len(catalogue.channels)} topics{home}</div></header>"
        f"<main>{''.join(nav)}<div>{''.join(body)}</div></main></body></html>\n"
    )


def _event(event: EventDoc) -> str:
    parts = [f'<section id="event-{escape(event.name)}"><h2>{escape(event.name)}</h2>']
    if event.doc:
        parts.append(f"<p>{escape(event.doc)}</p>")
    facts = [("topic", f'<a href="#topic-{escape(event.topic)}"><code>'
                       f'{escape(event.topic)}</code></a>'),
             ("key", f"<code>{escape(event.key)}</code>" if event.key else "none"),
             ("compatibility", escape(event.compatibility)),
             ("model", f"<code>{escape(event.model)}</code>" if event.model else "none"),
             ("published by", ", ".join(escape(p) for p in event.publishers) or "nobody yet")]
    parts.append(_table(["", ""], [[f"<b>{k}</b>", v] for k, v in facts], head=False))
    if event.consumers:
        parts.append("<h3>Consumed by</h3>")
        rows = [[f'<a href="#group-{escape(c.group)}">{escape(c.group)}</a>',
                 " → ".join(escape(t) for t in c.retry) or "none",
                 "yes" if c.dlq else "no", escape(c.batch or "per event")]
                for c in event.consumers]
        parts.append(_table(["group", "retry tiers", "DLQ", "handling"], rows))
    else:
        parts.append('<p class="muted">No consumer group subscribes to it.</p>')
    parts.append("<h3>Schema versions</h3>")
    for version in reversed(event.versions):
        current = " (current: what publishers write)" if version.version == event.current else ""
        opened = " open" if version.version == event.current else ""
        parts.append(f"<details{opened}><summary><b>v{version.version}</b>{current} · "
                     f"<code>{escape(version.file)}</code> · fingerprint "
                     f"<code>{version.fingerprint}</code></summary>")
        parts.append(_fields(version.fields))
        for name, fields in version.nested:
            parts.append(f"<p><b>{escape(name)}</b></p>{_fields(fields)}")
        parts.append("</details>")
    parts.append("</section>")
    return "".join(parts)


def _fields(fields: list[FieldDoc]) -> str:
    rows = [[f"<code>{escape(f.name)}</code>", f"<code>{escape(f.type)}</code>",
             "optional" if f.optional else "required",
             f"<code>{escape(f.default)}</code>" if f.default is not None else "",
             escape(f.doc)] for f in fields]
    return _table(["field", "type", "", "default", "doc"], rows)


def _groups(catalogue: Catalogue) -> str:
    parts = ["<section><h2>Consumer groups</h2>"]
    for group, consumer in sorted(catalogue.consumers.items()):
        topics = [c for c in catalogue.channels.values() if c.group == group]
        parts.append(f'<h3 id="group-{escape(group)}">{escape(group)}</h3>')
        facts = [("subscribes", ", ".join(f'<a href="#event-{escape(e)}">{escape(e)}</a>'
                                          for e in consumer.subscribes)),
                 ("handler", f"<code>{escape(consumer.handler)}</code>"),
                 ("retry tiers", " → ".join(escape(t) for t in consumer.retry) or "none"),
                 ("dead letters", "yes" if consumer.dlq else "dropped (no DLQ)"),
                 ("transaction", escape(consumer.transaction)),
                 ("handling", escape(consumer.batch or f"per event, concurrency "
                                                       f"{consumer.concurrency}")),
                 ("its topics", ", ".join(f'<code>{escape(t.name)}</code>' for t in topics))]
        parts.append(_table(["", ""], [[f"<b>{k}</b>", v] for k, v in facts], head=False))
    parts.append("</section>")
    return "".join(parts)


def _topics(catalogue: Catalogue) -> str:
    rows = []
    for channel in catalogue.channels.values():
        tag = f'<span class="tag {channel.kind}">{escape(channel.kind)}</span>'
        config = ", ".join(f"{escape(k)}={escape(v)}" for k, v in sorted(channel.config.items()))
        rows.append([f'<code id="topic-{escape(channel.name)}">{escape(channel.name)}</code>',
                     tag, str(channel.partitions), str(channel.replication_factor),
                     ", ".join(escape(e) for e in channel.events), escape(config),
                     escape(channel.description)])
    return ('<section id="topics"><h2>Topics</h2>'
            + _table(["topic", "role", "partitions", "replicas", "events", "config", ""], rows)
            + "</section>")


def _headers() -> str:
    rows = [[f"<code>{escape(k)}</code>", "every event", escape(v)]
            for k, v in EVENT_HEADERS.items()]
    rows += [[f"<code>{escape(k)}</code>", "retry tiers and DLQs", escape(v)]
             for k, v in FAILURE_HEADERS.items()]
    return "<section><h2>Headers</h2>" + _table(["header", "on", "meaning"], rows) + "</section>"


def _table(columns: list[str], rows: list[list[str]], *, head: bool = True) -> str:
    header = "<tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>" if head else ""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f"<table>{header}{body}</table>"

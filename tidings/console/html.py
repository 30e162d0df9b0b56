"""Server-rendered HTML: escaping, the page frame, and a few building blocks.

Every value that reaches a page goes through :func:`e` (or a helper built on it).
No template engine, no front-end build: the markup is small enough to read here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from urllib.parse import urlencode

from tidings.console.auth import Session

NAV = [("/", "Overview"), ("/dlq", "Dead letters"), ("/replay", "Replay"),
       ("/topology", "Topology"), ("/catalogue", "Events"), ("/audit", "Audit log")]


def e(value: object) -> str:
    """``value`` as text, escaped for HTML (attributes too)."""
    return escape("" if value is None else str(value), quote=True)


def url(path: str, **params: object) -> str:
    kept = {k: v for k, v in params.items() if v not in (None, "", [], ())}
    return path + ("?" + urlencode(kept, doseq=True) if kept else "")


def page(title: str, body: str, *, session: Session | None, active: str = "",
         status: str = "") -> str:
    """A whole page: header with navigation and who is signed in, then ``body``."""
    nav = "".join(f'<a href="{href}"{" class=active" if href == active else ""}>{e(label)}</a>'
                  for href, label in NAV) if session else ""
    who = ""
    if session is not None:
        who = (f'<span class="who">{e(session.who)} · <b>{e(session.role.value)}</b></span>'
               f'<form method="post" action="/logout" class="inline">'
               f'{csrf_field(session)}<button class="link">sign out</button></form>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} · Tidings console</title>
<link rel="stylesheet" href="/static/console.css">
<script src="/static/console.js" defer></script>
</head><body>
<header><a class="brand" href="/">Tidings</a><nav>{nav}</nav>{who}</header>
<main>{status}<h1>{e(title)}</h1>
{body}
</main></body></html>"""


def csrf_field(session: Session) -> str:
    return f'<input type="hidden" name="csrf" value="{e(session.csrf)}">'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, cls: str = "",
          empty: str = "none") -> str:
    """A table of already-rendered cells (escape them with :func:`e` first)."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        body = f'<tr><td colspan="{len(headers)}" class="muted">{e(empty)}</td></tr>'
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def notice(text: str, kind: str = "error") -> str:
    return f'<div class="notice {kind}" role="alert">{e(text)}</div>'


def options(values: Iterable[str], chosen: str | None, *, blank: str | None = None) -> str:
    out = [f'<option value="">{e(blank)}</option>'] if blank is not None else []
    for value in values:
        mark = " selected" if value == chosen else ""
        out.append(f'<option value="{e(value)}"{mark}>{e(value)}</option>')
    return "".join(out)


def hidden(fields: Mapping[str, object]) -> str:
    out = []
    for name, value in fields.items():
        values = value if isinstance(value, list | tuple) else [value]
        for one in values:
            if one not in (None, ""):
                out.append(f'<input type="hidden" name="{e(name)}" value="{e(one)}">')
    return "".join(out)


def number(value: int | float) -> str:
    return f"{value:,}"

"""Dead-letter operations: list, show, redrive and purge a group's DLQ topics.

    from tidings.dlq import plan_redrive, execute_redrive
    plan = plan_redrive(topology, "inventory",
                        select=LetterFilter.parse(error_class="TimeoutError", since="-1h"))
    print(plan.render())
    execute_redrive(plan, topology, rate=100)
"""

from __future__ import annotations

from tidings.dlq.history import REDRIVE_HISTORY, redrive_headers
from tidings.dlq.index import Census, LetterIndex, LetterRef
from tidings.dlq.letters import (
    DeadLetter,
    dlq_topics,
    groups_with_dlq,
    read_letters,
    read_offsets,
)
from tidings.dlq.purge import PurgePlan, execute_purge, plan_purge
from tidings.dlq.redrive import (
    DEFAULT_MAX_REDRIVES,
    RedriveFilter,
    RedrivePlan,
    RedriveResult,
    execute_redrive,
    plan_redrive,
)
from tidings.dlq.report import (
    DlqSummary,
    LetterPage,
    ShownLetter,
    decode_letters,
    dlq_summary,
    fetch,
    render_letter,
    render_summary,
    show_letters,
)
from tidings.dlq.select import LetterFilter

__all__ = [
    "DEFAULT_MAX_REDRIVES",
    "REDRIVE_HISTORY",
    "Census",
    "DeadLetter",
    "DlqSummary",
    "LetterFilter",
    "LetterIndex",
    "LetterPage",
    "LetterRef",
    "PurgePlan",
    "RedriveFilter",
    "RedrivePlan",
    "RedriveResult",
    "ShownLetter",
    "decode_letters",
    "dlq_summary",
    "dlq_topics",
    "execute_purge",
    "execute_redrive",
    "fetch",
    "groups_with_dlq",
    "plan_purge",
    "plan_redrive",
    "read_letters",
    "read_offsets",
    "redrive_headers",
    "render_letter",
    "render_summary",
    "show_letters",
]

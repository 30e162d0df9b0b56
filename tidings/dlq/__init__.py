"""Dead-letter operations: list, show, redrive and purge a group's DLQ topics.

    from tidings.dlq import plan_redrive, execute_redrive
    plan = plan_redrive(topology, "inventory", error_class="TimeoutError")
    print(plan.render())
    execute_redrive(plan, topology, rate=100)
"""

from __future__ import annotations

from tidings.dlq.history import REDRIVE_HISTORY, redrive_headers
from tidings.dlq.letters import DeadLetter, dlq_topics, groups_with_dlq, read_letters
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
    ShownLetter,
    dlq_summary,
    render_letter,
    render_summary,
    show_letters,
)

__all__ = [
    "DEFAULT_MAX_REDRIVES",
    "REDRIVE_HISTORY",
    "DeadLetter",
    "DlqSummary",
    "PurgePlan",
    "RedriveFilter",
    "RedrivePlan",
    "RedriveResult",
    "ShownLetter",
    "dlq_summary",
    "dlq_topics",
    "execute_purge",
    "execute_redrive",
    "groups_with_dlq",
    "plan_purge",
    "plan_redrive",
    "read_letters",
    "redrive_headers",
    "render_letter",
    "render_summary",
    "show_letters",
]

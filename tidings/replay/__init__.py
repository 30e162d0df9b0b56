"""Replaying a range of a topic to one consumer group, for backfills.

    from tidings.replay import ReplayRequest, plan_replay, execute_replay
    plan = plan_replay(topology, ReplayRequest("analytics", "orders", start="-1h",
                                               reprocess=True))
    print(plan.render())          # dry run: per partition offsets and counts, the mode
    execute_replay(plan, topology, rate=500)

Copy mode copies the range into ``<topic>.<group>.replay`` (read by that group
alone); rewind mode moves the stopped group's committed offsets back, saving the old
ones so :func:`plan_undo` / :func:`execute_undo` can restore them.
"""

from __future__ import annotations

from tidings.replay.api import (
    ReplayRequest,
    ReplayResult,
    UndoPlan,
    check_group_and_topic,
    execute_replay,
    execute_undo,
    parse_partitions,
    plan_replay,
    plan_undo,
    share_text,
)
from tidings.replay.cluster import Cluster, GroupStatus, ReplayError
from tidings.replay.copier import REDRIVE_ID, REPLAY_ID, SOURCE_OFFSET
from tidings.replay.plan import Mode, PartitionSpan, ReplayPlan
from tidings.replay.ranges import Bound, parse_bound
from tidings.replay.throttle import TokenBucket

__all__ = [
    "REDRIVE_ID",
    "REPLAY_ID",
    "SOURCE_OFFSET",
    "Bound",
    "Cluster",
    "GroupStatus",
    "Mode",
    "PartitionSpan",
    "ReplayError",
    "ReplayPlan",
    "ReplayRequest",
    "ReplayResult",
    "TokenBucket",
    "UndoPlan",
    "check_group_and_topic",
    "execute_replay",
    "execute_undo",
    "parse_bound",
    "parse_partitions",
    "plan_replay",
    "plan_undo",
    "share_text",
]

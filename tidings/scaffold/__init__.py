"""``tidings new``: add a consumer group or an event to a project, ready to run.

Each edit of topology.yaml is a round trip through ruamel.yaml, so the file's
comments, order and flow style stay as they are and only the new entry appears. The
files it writes (a handler and its TestBroker test; a v1 schema and its model) are
checked with the topology before the command succeeds: on any problem every change is
undone and the problems are reported as ``topology.yaml:LINE: ...``.
"""

from tidings.scaffold.consumer import new_consumer
from tidings.scaffold.event import new_event

__all__ = ["new_consumer", "new_event"]

"""What every page of the console shares: the topology, the cluster and its figures,
the dead letters, the plans and jobs, the audit log and the sessions."""

from __future__ import annotations

from dataclasses import dataclass

from tidings.audit import AuditLog, AuditRecord, new_record
from tidings.console.auth import Session, Sessions, Tokens
from tidings.console.dead_letters import DeadLetters
from tidings.console.figures import Figures
from tidings.console.jobs import Desk
from tidings.replay.cluster import Cluster
from tidings.topology import Topology


@dataclass
class Console:
    topology: Topology
    cluster: Cluster
    figures: Figures
    dead_letters: DeadLetters
    desk: Desk
    audit: AuditLog
    sessions: Sessions
    catalogue_url: str | None = None
    """A published event catalogue (``tidings docs html``'s site) that the Events link
    opens; None: the console renders the catalogue from its own topology."""

    @classmethod
    def open(cls, topology: Topology, tokens: Tokens, cluster: Cluster | None = None,
             catalogue_url: str | None = None) -> Console:
        cluster = cluster or Cluster(topology)
        return cls(topology, cluster, Figures(topology, cluster),
                   DeadLetters(topology, cluster), Desk(), AuditLog(cluster), Sessions(tokens),
                   catalogue_url)

    def record(self, session: Session, action: str, target: str, plan: str) -> AuditRecord:
        """Record that ``session`` starts ``action``; raises if the log does not take it."""
        return self.audit.start(new_record(
            who=who(session), role=session.role.value, via="console", action=action,
            target=target, plan=plan))


def who(session: Session) -> str:
    """How the audit log names a console user: the name given at sign-in and a short
    hash of the token used (never the token)."""
    return f"{session.who} [token {session.token_hint}]"

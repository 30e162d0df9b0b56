"""Each group's dead letters, kept fresh in the background for the console's pages.

One :class:`~tidings.dlq.LetterIndex` per group (read once, then only what is
appended) and the group's ledger of finished redrives. A letter is *waiting* until a
finished redrive has sent it back; a redriven event that fails again comes back as a
new letter, and waits again.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from tidings.dlq import LetterIndex, LetterRef, groups_with_dlq
from tidings.dlq.redrive import finished_redrives, sent_before
from tidings.errors import TidingsError
from tidings.replay.cluster import Cluster
from tidings.topology import Topology

log = logging.getLogger("tidings.console")


@dataclass(frozen=True)
class ClassCount:
    letters: int
    events: int
    waiting: int


@dataclass(frozen=True)
class DlqState:
    """A group's dead letters at the last refresh."""

    letters: int = 0
    events: int = 0
    waiting: int = 0  # letters no finished redrive has sent back
    waiting_events: int = 0
    by_class: dict[str, ClassCount] = field(default_factory=dict)
    newest: list[LetterRef] = field(default_factory=list)
    redriven: frozenset[tuple[str, int, int]] = frozenset()
    error: str | None = None
    loading: bool = False


class DeadLetters:
    """The DLQ state of every group that has one, refreshed by :meth:`refresh_all`."""

    def __init__(self, topology: Topology, cluster: Cluster) -> None:
        self.topology = topology
        self.cluster = cluster
        self.groups = groups_with_dlq(topology)
        self.indexes = {g: LetterIndex(topology, g, cluster=cluster) for g in self.groups}
        self._states: dict[str, DlqState] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def state(self, group: str) -> DlqState:
        """The state at the last refresh; before the first one, an empty state marked
        ``loading`` (a page never waits for a DLQ to be read)."""
        with self._lock:
            known = self._states.get(group)
        return known or DlqState(loading=True)

    def fresh(self, group: str) -> DlqState:
        """The state after reading what is new (for a page about this one group)."""
        return self.refresh(group)

    def refresh(self, group: str) -> DlqState:
        """Read what is new in the group's DLQ and its redrive ledger."""
        try:
            index = self.indexes[group]
            index.refresh()
            finished = finished_redrives(self.cluster, group)
            refs = index.letters()
            sent = frozenset(r.coordinate for r in refs if sent_before(r, finished))
            state = summarize(refs, sent)
        except TidingsError as exc:
            state = DlqState(error=str(exc))
        with self._lock:
            self._states[group] = state
        return state

    def refresh_all(self) -> None:
        for group in self.groups:
            self.refresh(group)

    def start(self, interval: float = 2.0) -> None:
        """Refresh every ``interval`` seconds in a background thread."""
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.refresh_all()
                except Exception:  # the page shows stale figures rather than none
                    log.exception("refreshing dead letters failed")
                self._stop.wait(interval)

        self._thread = threading.Thread(target=loop, name="tidings-console-dlq", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def summarize(refs: list[LetterRef], sent: frozenset[tuple[str, int, int]]) -> DlqState:
    """Counts of letters, distinct events and waiting letters, per error class too."""
    letters: dict[str, list[LetterRef]] = {}
    for ref in refs:
        letters.setdefault(ref.error_class, []).append(ref)
    by_class = {c: ClassCount(len(rs), len({r.event_id for r in rs}),
                              sum(r.coordinate not in sent for r in rs))
                for c, rs in sorted(letters.items())}
    waiting = [r for r in refs if r.coordinate not in sent]
    return DlqState(len(refs), len({r.event_id for r in refs}), len(waiting),
                    len({r.event_id for r in waiting}), by_class,
                    list(reversed(refs[-5:])), sent)

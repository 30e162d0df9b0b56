"""Plans waiting for a confirmation, and actions running in the background.

A plan shown on a page is kept here under an unguessable id until an operator
confirms it (or it expires), so what runs is exactly what was shown. A long action
(a replay copy, a redrive) runs in a thread as a :class:`Job`; its page polls the
job's progress, which the operation reports through its ``on_progress`` listener.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tidings.replay.progress import ProgressUpdate

PLAN_SECONDS = 15 * 60


@dataclass
class Pending:
    """A plan shown to someone, waiting for an operator's confirmation."""

    id: str
    kind: str  # "dlq.redrive", "dlq.purge", "replay", "replay.undo", "topology.apply"
    target: str
    text: str  # the plan as shown
    plan: Any
    params: dict[str, Any]
    made_by: str
    made_at: float = field(default_factory=time.monotonic)

    @property
    def expired(self) -> bool:
        return time.monotonic() - self.made_at > PLAN_SECONDS


@dataclass
class Job:
    """An action running (or run) in the background."""

    id: str
    kind: str
    target: str
    title: str
    plan_text: str
    done: int = 0
    total: int = 0
    elapsed: float = 0.0
    finished: bool = False
    outcome: str = ""  # "done: ...", "failed: ..."
    result: Any = None
    #: (topic, partition) -> (first, end) offsets the copies occupy, for "processed".
    copies: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)

    def update(self, progress: ProgressUpdate) -> None:
        self.done, self.total, self.elapsed = progress.done, progress.total, progress.elapsed

    @property
    def fraction(self) -> float:
        if self.total <= 0:
            return 1.0 if self.finished else 0.0
        return min(1.0, self.done / self.total)

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        if self.done >= self.total:
            return 0.0
        return (self.total - self.done) / self.rate if self.rate > 0 else None


class Desk:
    """Pending plans and jobs of one console process."""

    def __init__(self) -> None:
        self._pending: dict[str, Pending] = {}
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def hold(self, kind: str, target: str, text: str, plan: Any, params: dict[str, Any],
             made_by: str) -> Pending:
        pending = Pending(secrets.token_urlsafe(16), kind, target, text, plan, params,
                          made_by)
        with self._lock:
            self._pending = {k: p for k, p in self._pending.items() if not p.expired}
            self._pending[pending.id] = pending
        return pending

    def take(self, plan_id: str) -> Pending | None:
        """The pending plan, removed so that it runs once; None if unknown or expired."""
        with self._lock:
            pending = self._pending.pop(plan_id, None)
        if pending is None or pending.expired:
            return None
        return pending

    def start(self, job: Job, work: Callable[[Job], str],
              finished: Callable[[Job], None]) -> Job:
        """Run ``work(job)`` in a thread; its return value (or error) is the outcome."""
        with self._lock:
            self._jobs[job.id] = job

        def run() -> None:
            try:
                job.outcome = f"done: {work(job)}"
            except Exception as exc:  # shown on the job's page and in the audit log
                job.outcome = f"failed: {exc}"
            finally:
                job.finished = True
                finished(job)

        threading.Thread(target=run, name=f"tidings-console-{job.id}", daemon=True).start()
        return job

    def job(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.started_at, reverse=True)


def new_job(kind: str, target: str, title: str, plan_text: str) -> Job:
    return Job(secrets.token_urlsafe(12), kind, target, title, plan_text)

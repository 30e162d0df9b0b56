"""A circuit breaker per endpoint: stop hammering an endpoint that is down.

Closed, deliveries go ahead. After ``threshold`` failures in a row the circuit opens:
deliveries to that endpoint are not attempted but postponed until ``cooldown``
seconds have passed. Then one delivery is let through as a trial (half-open): if it
succeeds the circuit closes, if it fails it opens again for twice as long (up to
``max_cooldown``).

A failure that opens the circuit, or fails its trial, is blamed on the endpoint, not
on the delivery: the handler postpones that delivery too instead of spending one of
its retry tiers, so an outage does not use up the tiers (see handler).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Circuit:
    failures: int = 0
    open_until: float = 0.0
    cooldown: float = 0.0
    trial: bool = False  # a half-open trial is in flight


class CircuitBreakers:
    """The circuits of every endpoint this process delivers to (thread-safe)."""

    def __init__(self, *, threshold: int = 5, cooldown: float = 2.0, max_cooldown: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.clock = clock
        self._circuits: dict[str, _Circuit] = {}
        self._lock = threading.Lock()

    def check(self, endpoint: str) -> float | None:
        """None: deliver now (closed, or this is the half-open trial). Else the seconds to
        wait before the endpoint may be tried again."""
        with self._lock:
            circuit = self._circuits.setdefault(endpoint, _Circuit())
            if circuit.open_until == 0.0:
                return None
            now = self.clock()
            if now < circuit.open_until:
                return circuit.open_until - now
            if circuit.trial:
                return max(0.5, circuit.cooldown / 4)  # a trial is in flight: wait for it
            circuit.trial = True
            return None

    def succeeded(self, endpoint: str) -> None:
        with self._lock:
            self._circuits[endpoint] = _Circuit()

    def failed(self, endpoint: str) -> bool:
        """Record a failure; True when the circuit is open now (blame the endpoint)."""
        with self._lock:
            circuit = self._circuits.setdefault(endpoint, _Circuit())
            if circuit.trial or circuit.open_until:
                circuit.cooldown = min(self.max_cooldown, max(self.base_cooldown,
                                                              circuit.cooldown * 2))
            else:
                circuit.failures += 1
                if circuit.failures < self.threshold:
                    return False
                circuit.cooldown = self.base_cooldown
            circuit.trial = False
            circuit.open_until = self.clock() + circuit.cooldown
            return True

    def state(self, endpoint: str) -> str:
        with self._lock:
            circuit = self._circuits.get(endpoint)
        if circuit is None or circuit.open_until == 0.0:
            return "closed"
        return "half-open" if circuit.trial or self.clock() >= circuit.open_until else "open"

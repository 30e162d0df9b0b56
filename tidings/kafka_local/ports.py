"""Check that ports are free and find free ones."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterable

from tidings.errors import TidingsError
from tidings.kafka_local.layout import HOST

# Below Linux's default ephemeral range (32768+), so outgoing connections made
# by the test run itself do not keep grabbing the ports we picked.
_SEARCH_RANGE = (20000, 32000)


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on ``host:port`` (a bind would succeed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like the JVM's server sockets: a port in TIME_WAIT after `down` counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def ensure_ports_free(
    ports: Iterable[int],
    host: str = HOST,
    hint: str = "(another Kafka?); run `tidings dev down` or choose --port",
) -> None:
    """Raise a one-line :class:`TidingsError` naming the first port already taken."""
    for port in ports:
        if not port_is_free(port, host):
            raise TidingsError(f"port {port} is already in use {hint}")


def find_free_base_port(count: int, host: str = HOST, tries: int = 200) -> int:
    """A port ``p`` such that ``p .. p+count-1`` are all free right now."""
    rng = random.Random()
    low, high = _SEARCH_RANGE
    for _ in range(tries):
        base = rng.randrange(low, high - count)
        if all(port_is_free(p, host) for p in range(base, base + count)):
            return base
    raise TidingsError(f"found no {count} consecutive free ports in {low}-{high}")


def port_accepts(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False

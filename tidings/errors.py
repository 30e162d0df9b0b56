"""Errors a user can cause and fix. The CLI prints them without a traceback."""

from __future__ import annotations


class TidingsError(Exception):
    """A mistake or condition the user can act on; ``str()`` is the whole message."""

    exit_code = 1

    def render(self) -> str:
        """The text the CLI prints to stderr."""
        return f"tidings: {self}"


class ConfigError(TidingsError):
    """Settings or topology.yaml are invalid."""


class BrokerUnavailable(TidingsError):
    """No Kafka cluster answered at the configured bootstrap servers."""


class AuthenticationFailed(BrokerUnavailable):
    """The cluster answered but refused the client's login (SASL credentials, TLS)."""

"""The one error rendering can raise: something in topology.yaml or the options is unusable."""

from __future__ import annotations

from tidings.errors import ConfigError


class DeployError(ConfigError):
    """Manifests cannot be rendered; the message names what and where (file:line)."""

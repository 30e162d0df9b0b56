"""One settings object: environment first, then topology.yaml's ``cluster:`` section.

Any librdkafka property can be passed through the environment as
``TIDINGS_KAFKA_<PROPERTY>`` with dots written as underscores, e.g.
``TIDINGS_KAFKA_SECURITY_PROTOCOL=SASL_SSL`` or ``TIDINGS_KAFKA_SASL_PASSWORD=…``,
so a cluster with SASL/TLS and ACLs needs no code change and no secret in the file.

The file's ``cluster:`` settings may also refer to the environment by name,
``${PROD_KAFKA_BOOTSTRAP}``: the file then holds the reference, never the value, and
each environment of topology.yaml can point at its own variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tidings.errors import ConfigError

DEFAULT_BOOTSTRAP = "127.0.0.1:19092"
KAFKA_ENV_PREFIX = "TIDINGS_KAFKA_"
#: ``${NAME}``: a setting read from the process environment when a client connects.
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Settings(BaseSettings):
    """Process-wide settings read from the environment."""

    model_config = SettingsConfigDict(env_prefix="TIDINGS_", extra="ignore")

    bootstrap_servers: str | None = Field(
        None, validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "TIDINGS_BOOTSTRAP_SERVERS")
    )
    topology: Path = Path("topology.yaml")
    schema_registry_url: str | None = None
    database_url: str = "sqlite:///.tidings/tidings.db"
    metrics_port: int = 0
    admin_timeout_s: float = 10.0
    #: Which of topology.yaml's environments to use (``TIDINGS_ENV``; ``--env`` wins).
    env: str = "local"


def kafka_properties_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """librdkafka properties given as ``TIDINGS_KAFKA_*`` variables."""
    environ = os.environ if environ is None else environ
    props: dict[str, str] = {}
    for name, value in environ.items():
        if name.startswith(KAFKA_ENV_PREFIX) and len(name) > len(KAFKA_ENV_PREFIX):
            props[name[len(KAFKA_ENV_PREFIX):].lower().replace("_", ".")] = value
    return props


def is_reference(value: object) -> bool:
    """True when ``value`` is exactly one ``${NAME}`` reference (fit for a secret)."""
    return isinstance(value, str) and REFERENCE.fullmatch(value.strip()) is not None


def reference_problem(value: object) -> str | None:
    """Why ``value`` holds a malformed ``${...}`` reference, or None."""
    if not isinstance(value, str) or "${" not in value:
        return None
    if "${" in REFERENCE.sub("", value):
        return (f"{value!r} has a malformed reference; write ${{NAME}} with letters, digits "
                "and '_'")
    return None


def expand_references(value: str, what: str, environ: Mapping[str, str] | None = None) -> str:
    """``value`` with each ``${NAME}`` replaced from the environment; raises ConfigError
    naming the setting and the variable when one is not set."""
    environ = os.environ if environ is None else environ

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ConfigError(f"topology.yaml's {what} refers to ${{{name}}}, which is not "
                              "set in the environment")
        return environ[name]

    return REFERENCE.sub(lookup, value)


def resolve_bootstrap(settings: Settings, from_file: str | None,
                      near: Path | None = None) -> str:
    """Where Kafka is: the environment, then topology.yaml, then a running dev cluster
    (found the same way from any working directory: see
    :func:`tidings.kafka_local.cluster.candidate_state_dirs`; ``near`` is the topology
    file's folder)."""
    if settings.bootstrap_servers:
        return settings.bootstrap_servers
    if from_file:
        return expand_references(from_file, "cluster.bootstrap_servers")
    from tidings.kafka_local import running_bootstrap

    return running_bootstrap(near=near) or DEFAULT_BOOTSTRAP


def kafka_client_config(
    settings: Settings | None = None,
    file_properties: Mapping[str, Any] | None = None,
    bootstrap_from_file: str | None = None,
    *,
    near: Path | None = None,
) -> dict[str, Any]:
    """The librdkafka config every client starts from (admin, producer, consumer)."""
    settings = settings or Settings()
    config: dict[str, Any] = {
        "bootstrap.servers": resolve_bootstrap(settings, bootstrap_from_file, near),
    }
    for key, value in (file_properties or {}).items():
        if isinstance(value, str):
            value = expand_references(value, f"cluster.properties.{key}")
        config[key] = str(value).lower() if isinstance(value, bool) else value
    config.update(kafka_properties_from_env())
    return config

"""Kubernetes names and labels for the services and topics of a topology."""

from __future__ import annotations

import hashlib
import re

from tidings.deploy.errors import DeployError

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")  # RFC 1035: Services need it
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
MANAGED_BY = "tidings"


def workload_name(service: str) -> str:
    """The name of a service's Deployment, Service and friends (``order-service``).

    Service names may hold capitals and underscores; Kubernetes names may not, so they
    are lowered and ``_`` becomes ``-``. A name that still does not fit is an error.
    """
    name = service.lower().replace("_", "-")
    if not _DNS_LABEL.match(name):
        raise DeployError(f"service {service!r} cannot name a Kubernetes object ({name!r} is "
                          "not a DNS label: lower case letters, digits and '-', starting "
                          "with a letter, at most 63)")
    return name


def topic_resource_name(topic: str) -> str:
    """A KafkaTopic's ``metadata.name``: the topic itself when Kubernetes allows it, else a
    lowered form with a short hash (the real name then goes in ``spec.topicName``)."""
    if _DNS_SUBDOMAIN.match(topic):
        return topic
    digest = hashlib.sha256(topic.encode()).hexdigest()[:8]
    base = re.sub(r"[^a-z0-9.-]+", "-", topic.lower()).strip("-.")[:200] or "topic"
    return f"{base}-{digest}"


def user_resource_name(principal: str) -> str:
    """The KafkaUser for a principal: ``User:inventory`` -> ``inventory``.

    Strimzi names the principal after the KafkaUser (``User:<name>`` with SCRAM,
    ``User:CN=<name>`` with TLS), so the principal's name must be a Kubernetes name.
    """
    kind, _, name = principal.partition(":")
    name = name.removeprefix("CN=")
    if kind != "User" or not _DNS_SUBDOMAIN.match(name):
        raise DeployError(f"principal {principal!r} cannot be a Strimzi KafkaUser: it must be "
                          "User:<name> with a Kubernetes name (lower case letters, digits, "
                          "'-' and '.'); map the service to one under cluster.principals")
    return name


def labels(part_of: str, name: str, component: str) -> dict[str, str]:
    """The recommended labels every rendered object carries."""
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": _label_value(part_of),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def selector(part_of: str, name: str) -> dict[str, str]:
    """The labels that pick one service's pods."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": _label_value(part_of)}


def _label_value(text: str) -> str:
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63].strip("-._")
    return value or "tidings"

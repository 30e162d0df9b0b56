"""Addressing a reply: the requester's reply topic and partition, and its correlation id."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from tidings import headers as h
from tidings.producer.prepare import PublishRefused

if TYPE_CHECKING:
    from tidings.producer.prepare import PreparedEvent
    from tidings.topology import Topology


class NotARequest(PublishRefused):
    """A reply to an event that was not sent as a request, or that names a reply topic
    this topology does not declare."""


def parse_reply_to(value: str) -> tuple[str, int] | None:
    topic, sep, partition = value.rpartition(":")
    if not sep or not topic or not partition.isdigit():
        return None
    return topic, int(partition)


def address_reply(prepared: PreparedEvent, request: Mapping[str, str],
                  topology: Topology) -> tuple[PreparedEvent, int]:
    """``prepared`` (the reply) addressed to the instance that sent ``request`` (its
    headers): ``(reply, partition)``."""
    correlation = request.get(h.CORRELATION_ID)
    target = parse_reply_to(request.get(h.REPLY_TO) or "")
    event_id = request.get(h.EVENT_ID, "?")
    if not correlation or target is None:
        raise NotARequest(f"event {event_id} was not sent as a request (it has no "
                          f"{h.CORRELATION_ID} and {h.REPLY_TO} headers); publish instead")
    topic, partition = target
    if topic not in set(topology.reply_topics().values()):
        # A responder writes only where topology.yaml says replies go.
        raise NotARequest(f"event {event_id} asks for its reply on {topic!r}, which is not "
                          f"a reply topic of {topology.path.name}")
    headers = [*prepared.headers, (h.CORRELATION_ID, correlation.encode())]
    return replace(prepared, topic=topic, key=correlation.encode(), headers=headers), partition

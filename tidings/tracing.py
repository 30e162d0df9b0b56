"""OpenTelemetry tracing of publishes, handler runs and copies, at no cost without an SDK.

Tidings depends on ``opentelemetry-api`` only, as OpenTelemetry asks of libraries. Until
an application installs the SDK and sets a tracer provider (or :func:`configure_from_
environment` does, from the standard ``OTEL_*`` variables), :func:`active` is false and
nothing here runs per event: the publish path and the consumer check one flag, taken
when a preparer or a worker is made, and create no span objects.

With a provider:

* a publish starts a ``<topic> publish`` span (kind PRODUCER), a child of the caller's
  current span, or of the ``traceparent`` the caller passes, and writes *its* context to
  the event's ``traceparent`` header. A :class:`~tidings.Publisher` ends it at the
  broker's acknowledgement (with partition and offset); the outbox at staging.
* the runtime runs each handler call in a ``<group> process`` span (kind CONSUMER), a
  child of the event's ``traceparent``, with the group, event type, event id, topic,
  partition, offset and attempt as attributes. It is the current span while the handler
  runs, so ``ctx.publish`` (staged in the outbox, relayed later) carries the handler's
  context. A batch handler's one call gets one span, linked to every event's context.
* a copy (a retry, a dead letter, a replay or a redrive) starts a new trace: its
  ``traceparent`` is new, and ``original-traceparent`` keeps the context of the first
  publish, which every later span of the copy carries as a link.

Spans are named and attributed after OpenTelemetry's messaging conventions
(``messaging.*``), plus ``tidings.*`` for what those do not name.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)

from tidings import headers as h

log = logging.getLogger("tidings.tracing")

TRACER_NAME = "tidings"

#: On a copy (retry, dead letter, replay, redrive): the context of the first publish.
ORIGINAL_TRACEPARENT = "original-traceparent"

# Attribute names (OpenTelemetry messaging conventions, then Tidings' own).
SYSTEM = "messaging.system"
OPERATION = "messaging.operation.type"
DESTINATION = "messaging.destination.name"
PARTITION = "messaging.destination.partition.id"
OFFSET = "messaging.kafka.offset"
GROUP = "messaging.consumer.group.name"
MESSAGE_ID = "messaging.message.id"
BATCH_COUNT = "messaging.batch.message_count"
EVENT_TYPE = "tidings.event_type"
ATTEMPT = "tidings.attempt"
PRODUCER = "tidings.producer"
REPROCESS = "tidings.reprocess_id"
COPY = "tidings.copy"

_provider: trace.TracerProvider | None = None  # set by use(); else the global one


def use(provider: trace.TracerProvider | None) -> None:
    """Trace with ``provider`` instead of OpenTelemetry's global one (None: the global
    one again). For tests and for applications that keep a provider of their own; the
    global provider can be set only once per process."""
    global _provider
    _provider = provider


def _current_provider() -> trace.TracerProvider:
    return _provider if _provider is not None else trace.get_tracer_provider()


def active() -> bool:
    """Whether a tracer provider that records is set (an SDK's, or another real one).

    The publish path and the runtime ask once, when a preparer or a worker is made:
    configure tracing before creating publishers and starting consumers."""
    return not isinstance(_current_provider(),
                          trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def tracer() -> Tracer:
    return _current_provider().get_tracer(TRACER_NAME)


# -- the W3C header ---------------------------------------------------------------------------

def format_traceparent(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def parse_traceparent(value: str | None) -> SpanContext | None:
    """The remote span context a ``traceparent`` names; None if it is missing or invalid."""
    if not value:
        return None
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff" or len(parts[1]) != 32 \
            or len(parts[2]) != 16 or len(parts[3]) != 2 or (parts[0] == "00" and len(parts) != 4):
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if trace_id == 0 or span_id == 0:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags & 1))


def _parent(traceparent: str | None) -> Context | None:
    remote = parse_traceparent(traceparent)
    return None if remote is None else trace.set_span_in_context(NonRecordingSpan(remote))


def _link(traceparent: str | None) -> list[Link]:
    remote = parse_traceparent(traceparent)
    return [] if remote is None else [Link(remote)]


# -- publishing ---------------------------------------------------------------------------

def start_publish(service: str, topic: str, event_type: str,
                  traceparent: str | None) -> tuple[trace.Span, str]:
    """A ``<topic> publish`` span, child of ``traceparent`` if given, else of the current
    span; returns it (not ended) and the ``traceparent`` to send."""
    span = tracer().start_span(
        f"{topic} publish", context=_parent(traceparent), kind=SpanKind.PRODUCER,
        attributes={SYSTEM: "kafka", OPERATION: "send", DESTINATION: topic,
                    EVENT_TYPE: event_type, PRODUCER: service})
    return span, format_traceparent(span.get_span_context())


def end_publish(span: Any, event_id: str, outcome: Any = None) -> None:
    """End a publish span: ``outcome`` is the broker's Delivery, the error, or None (the
    event was staged in an outbox, to be relayed later)."""
    span.set_attribute(MESSAGE_ID, event_id)
    partition = getattr(outcome, "partition", None)
    if partition is not None:
        span.set_attribute(PARTITION, str(partition))
        span.set_attribute(OFFSET, outcome.offset)
    elif isinstance(outcome, BaseException):
        span.record_exception(outcome)
        span.set_status(Status(StatusCode.ERROR, f"{type(outcome).__name__}: {outcome}"))
    span.end()


# -- consuming -------------------------------------------------------------------------------

def traced_handler(handler: Callable[..., Any], group: str, *,
                   batch: bool) -> Callable[..., Any]:
    """``handler`` as the runtime calls it: in a ``<group> process`` span when tracing is
    :func:`active`, unchanged (no wrapper at all) when it is not."""
    if not active():
        return handler
    name, tracer_ = f"{group} process", tracer()
    if batch:
        def run_batch(events: Sequence[Any], ctx: Any) -> Any:  # a BatchContext
            links: list[Link] = []
            for item in ctx.items:
                links += _link(item.meta.headers.get(h.TRACEPARENT))
            attributes: dict[str, Any] = {SYSTEM: "kafka", OPERATION: "process",
                                          GROUP: group, BATCH_COUNT: len(ctx.items)}
            topics = {item.meta.topic for item in ctx.items}
            if len(topics) == 1:
                attributes[DESTINATION] = topics.pop()
            with tracer_.start_as_current_span(name, kind=SpanKind.CONSUMER, links=links,
                                               attributes=attributes):
                return handler(events, ctx)
        return run_batch

    def run(event: Any, ctx: Any) -> Any:  # a HandlerContext
        meta = ctx.meta
        headers = meta.headers
        attributes: dict[str, Any] = {
            SYSTEM: "kafka", OPERATION: "process", GROUP: group, DESTINATION: meta.topic,
            PARTITION: str(meta.partition), OFFSET: meta.offset, MESSAGE_ID: meta.event_id,
            EVENT_TYPE: meta.event_type, ATTEMPT: meta.attempt}
        if meta.reprocess_id:
            attributes[REPROCESS] = meta.reprocess_id
        with tracer_.start_as_current_span(
                name, context=_parent(headers.get(h.TRACEPARENT)), kind=SpanKind.CONSUMER,
                links=_link(headers.get(ORIGINAL_TRACEPARENT)), attributes=attributes):
            return handler(event, ctx)
    return run


# -- copies -----------------------------------------------------------------------------------

def copy_trace(headers: dict[str, str], topic: str) -> None:
    """Give a copy bound for ``topic`` (a retry tier, a DLQ) a trace of its own, in place:
    ``original-traceparent`` keeps the first publish's context, ``traceparent`` is new."""
    original = headers.get(ORIGINAL_TRACEPARENT) or headers.get(h.TRACEPARENT)
    if original:
        headers[ORIGINAL_TRACEPARENT] = original
    headers[h.TRACEPARENT] = _copy_traceparent(topic, original, headers.get(h.EVENT_ID))


def copied(headers: Iterable[tuple[str, bytes]], topic: str) -> list[tuple[str, bytes]]:
    """:func:`copy_trace` for the raw headers of a replay or redrive copy."""
    out: list[tuple[str, bytes]] = []
    current = original = event_id = None
    for name, value in headers:
        if name == h.TRACEPARENT:
            current = value
            continue
        if name == ORIGINAL_TRACEPARENT:
            original = value
        elif name == h.EVENT_ID:
            event_id = value
        out.append((name, value))
    if original is None and current:
        original = current
        out.append((ORIGINAL_TRACEPARENT, current))
    traceparent = _copy_traceparent(
        topic, original.decode("ascii", "replace") if original else None,
        event_id.decode("utf-8", "replace") if event_id else None)
    out.append((h.TRACEPARENT, traceparent.encode()))
    return out


def _copy_traceparent(topic: str, original: str | None, event_id: str | None) -> str:
    if not active():
        return _random_traceparent()
    attributes: dict[str, Any] = {SYSTEM: "kafka", OPERATION: "send", DESTINATION: topic,
                                  COPY: True}
    if event_id:
        attributes[MESSAGE_ID] = event_id
    span = tracer().start_span(f"{topic} publish", context=Context(), kind=SpanKind.PRODUCER,
                               links=_link(original), attributes=attributes)
    span.end()
    return format_traceparent(span.get_span_context())


class _RandomContexts:
    """Random sampled W3C contexts, from one read of the OS's random source per 64."""

    _PER_READ = 64

    def __init__(self) -> None:
        self._pool = ""
        self._at = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            if self._at >= len(self._pool):
                self._pool, self._at = os.urandom(24 * self._PER_READ).hex(), 0
            x = self._pool[self._at:self._at + 48]
            self._at += 48
        return f"00-{x[:32]}-{x[32:]}-01"


_random_traceparent = _RandomContexts().next


# -- exporting -------------------------------------------------------------------------------

def configure_from_environment(service: str) -> bool:
    """Set up the SDK from the standard ``OTEL_*`` variables, if it is installed and they
    ask for exporting; returns whether this call set a provider.

    Nothing happens when a provider is set already (``opentelemetry-instrument``, or the
    application's own), when ``OTEL_SDK_DISABLED`` is true, or when neither
    ``OTEL_TRACES_EXPORTER`` (other than ``none``) nor an ``OTEL_EXPORTER_OTLP_*ENDPOINT``
    is set. ``service.name`` is ``service`` unless ``OTEL_SERVICE_NAME`` or
    ``OTEL_RESOURCE_ATTRIBUTES`` name one. The sampler (``OTEL_TRACES_SAMPLER``), the
    batch processor (``OTEL_BSP_*``) and the exporters' own settings are read by the SDK.
    """
    env = os.environ
    if active() or env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    names = env.get("OTEL_TRACES_EXPORTER", "").strip()
    if not names and (env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                      or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        names = "otlp"
    if not names or names.lower() == "none":
        return False
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_TRACES_EXPORTER is %r but opentelemetry-sdk is not installed; "
                    "not tracing (pip install opentelemetry-sdk and an exporter)", names)
        return False
    exporters = [_exporter(name.strip()) for name in names.split(",") if name.strip()]
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    log.info("tracing: exporting spans of %s with %s", resource.attributes.get(SERVICE_NAME),
             names)
    return True


def _exporter(name: str) -> Any:
    """An exporter by its ``opentelemetry_traces_exporter`` entry point, with ``otlp``
    resolved as the SDK does: by ``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL`` (gRPC by
    default)."""
    from importlib.metadata import entry_points

    from tidings.errors import ConfigError

    if name == "otlp":
        protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                    or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc").strip()
        name = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}.get(protocol, "")
        if not name:
            raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r} is not supported "
                              "(grpc or http/protobuf)")
    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        package = {"otlp_proto_grpc": "opentelemetry-exporter-otlp-proto-grpc",
                   "otlp_proto_http": "opentelemetry-exporter-otlp-proto-http"}.get(name)
        hint = f"pip install {package}" if package else "is its package installed?"
        raise ConfigError(f"OTEL_TRACES_EXPORTER names {name!r}, which no installed package "
                          f"provides ({hint})")
    return next(iter(found)).load()()


"""Publish typed events for one producer service declared in topology.yaml."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tidings import tracing
from tidings.errors import TidingsError
from tidings.producer import scheduled as scheduling
from tidings.producer.conversations import Conversations
from tidings.producer.metrics import ProducerMetrics
from tidings.producer.prepare import EventCodec, EventPreparer, PreparedEvent, PublishRefused
from tidings.producer.reliable import Delivery, DeliveryFailed, ReliableProducer
from tidings.settings import Settings, kafka_client_config
from tidings.topology import Topology, load_topology

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from tidings.codec.events import Event


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector off while a batch is prepared.

    Preparing allocates a few container objects per event; every few hundred of them
    the collector runs, and each run walks whatever else the process holds (a large
    list of inputs, say), which cost several µs per event. The batch creates no cycles
    worth collecting meanwhile; the collector runs again right after.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class PublishFailed(TidingsError):
    """Some events of a batch were not delivered; ``deliveries`` has the ones that were."""

    def __init__(self, message: str, deliveries: list[Delivery | None]) -> None:
        super().__init__(message)
        self.deliveries = deliveries


__all__ = ["Delivery", "DeliveryFailed", "PublishFailed", "PublishRefused", "Publisher"]


class Publisher(Conversations):
    """Publishes the events a producer service is declared to publish.

    ``publish`` returns only once the broker has the event (idempotent producer,
    ``acks=all``) or raises within ``delivery_timeout`` seconds. Use it as a context
    manager so queued events are flushed on exit. Given a Prometheus ``registry``, it
    counts what it publishes there (see :mod:`tidings.producer.metrics`).
    """

    def __init__(
        self,
        topology: Topology,
        service: str,
        *,
        settings: Settings | None = None,
        delivery_timeout: float = 30.0,
        producer_config: dict[str, Any] | None = None,
        codec: EventCodec | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.preparer = EventPreparer(topology, service, codec=codec)
        self.metrics = ProducerMetrics(service, registry) if registry is not None else None
        self.topology = topology
        self.service = service
        config = kafka_client_config(settings, topology.cluster.client_properties,
                                     topology.cluster.bootstrap_servers,
                                     near=topology.root)
        config.update(producer_config or {})
        self.kafka_config = config
        self._producer = ReliableProducer(config, delivery_timeout=delivery_timeout)
        self.delivery_timeout = delivery_timeout

    @classmethod
    def from_file(cls, path: str | Path, service: str, **kwargs: Any) -> Publisher:
        """A publisher for ``service`` from a topology file (handlers are not imported)."""
        return cls(load_topology(path, check_imports=False), service, **kwargs)

    def prepare(self, event: Event, **kwargs: Any) -> PreparedEvent:
        """Validate, encode and address ``event`` without sending it."""
        return self.preparer.prepare(event, **kwargs)

    # -- sending ---------------------------------------------------------------------

    def send_prepared(self, prepared: PreparedEvent) -> Future[Delivery]:
        future = self._producer.send(prepared.topic, prepared.value, key=prepared.key,
                                     headers=prepared.headers, event_id=prepared.event_id)
        if self.metrics is not None or prepared.span is not None:
            began = time.perf_counter()
            future.add_done_callback(lambda done: self._settled(
                [prepared], [done.exception() or done.result()], began))
        return future

    def publish(self, event: Event, **kwargs: Any) -> Delivery:
        """Publish one event; returns where the broker stored it, or raises.

        ``delay=timedelta(...)`` or ``deliver_at=datetime`` (and ``schedule_id=``) send
        it to the scheduler instead, which delivers it when due (a ScheduledDelivery).
        """
        if kwargs and scheduling.OPTIONS.intersection(kwargs):
            return scheduling.publish_later(self, event, **kwargs)
        future = self.send_prepared(self.prepare(event, **kwargs))
        try:
            return future.result(timeout=self.delivery_timeout + 5)
        except TimeoutError:
            raise DeliveryFailed(
                f"no delivery report within {self.delivery_timeout:g}s "
                f"from {self._producer.bootstrap}"
            ) from None

    def publish_many(self, events: Iterable[Event]) -> list[Delivery]:
        """Publish a batch; returns deliveries in order, or raises :class:`PublishFailed`."""
        with gc_paused():
            prepared = [self.prepare(event) for event in events]
        return self.send_all(prepared)

    def send_all(self, prepared: Sequence[PreparedEvent]) -> list[Delivery]:
        began = time.perf_counter()
        batch = self._producer.send_batch(
            [(p.topic, p.value, p.key, p.headers, p.event_id) for p in prepared])
        batch.wait(timeout=self.delivery_timeout + 5)
        if self.metrics is not None or self.preparer.traced:
            self._settled(prepared, list(batch.results), began)
        deliveries: list[Delivery | None] = []
        errors: list[str] = []
        for outcome in list(batch.results):
            if isinstance(outcome, Delivery):
                deliveries.append(outcome)
            else:
                deliveries.append(None)
                errors.append("no delivery report" if outcome is None else str(outcome))
        if errors:
            raise PublishFailed(
                f"{len(errors)} of {len(deliveries)} events were not delivered: {errors[0]}",
                deliveries,
            )
        return [d for d in deliveries if d is not None]

    def _settled(self, prepared: Sequence[PreparedEvent],
                 outcomes: Sequence[Delivery | BaseException | None], began: float) -> None:
        """Count a batch's outcomes and end its publish spans (once per batch)."""
        if self.metrics is not None:
            self.metrics.record(
                ((p.event_type, p.topic) for p, o in zip(prepared, outcomes, strict=True)
                 if isinstance(o, Delivery)),
                (o for o in outcomes if not isinstance(o, Delivery)),
                time.perf_counter() - began)
        for p, outcome in zip(prepared, outcomes, strict=True):
            if p.span is not None:
                tracing.end_publish(p.span, p.event_id, outcome)

    async def publish_async(self, event: Event, **kwargs: Any) -> Delivery:
        """Like :meth:`publish`, awaiting the delivery without blocking the event loop."""
        if kwargs and scheduling.OPTIONS.intersection(kwargs):
            return await asyncio.to_thread(scheduling.publish_later, self, event, **kwargs)
        future = self.send_prepared(self.prepare(event, **kwargs))
        return await asyncio.wait_for(asyncio.wrap_future(future),
                                      timeout=self.delivery_timeout + 5)

    # -- lifecycle -------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued event is delivered; raises if some are not."""
        remaining = self._producer.flush(timeout)
        if remaining:
            raise DeliveryFailed(f"{remaining} event(s) still undelivered after flush")

    def close(self) -> None:
        self.close_requests()
        remaining = self._producer.close()
        if remaining:
            raise DeliveryFailed(f"{remaining} event(s) undelivered when the publisher closed")

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close_requests()
        remaining = self._producer.close()
        if remaining and kind is None:
            raise DeliveryFailed(f"{remaining} event(s) undelivered when the publisher closed")

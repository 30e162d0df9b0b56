"""What a :class:`~tidings.producer.publisher.Publisher` does besides publishing now:
cancel a scheduled event, and send requests that expect a reply.

Kept apart from the publish path (``publisher.py``): the logic lives in
:mod:`tidings.producer.scheduled` and :mod:`tidings.producer.requester`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tidings.codec.events import Event
    from tidings.producer.reliable import Delivery
    from tidings.producer.requester import Requester


class Conversations:
    """Cancellation and request-reply for a publisher (a mixin of ``Publisher``)."""

    _requester: Requester | None = None

    def cancel(self, schedule_id: str) -> Delivery:
        """Cancel what was scheduled under ``schedule_id`` and is not delivered yet
        (an event published with ``delay=``/``deliver_at=``; the schedule id is the one
        given then, else the event id). Returns once the broker has the cancellation."""
        from tidings.producer.scheduled import cancel

        return cancel(self._publisher(), schedule_id)

    async def request(self, event: Event, *, expect: type[Any], timeout: float = 5.0,
                      **kwargs: Any) -> Any:
        """Publish ``event`` as a request and await its reply, an ``expect`` event.

        Raises :class:`~tidings.requests.RequestTimeout` when none arrives within
        ``timeout`` seconds. The service must declare ``replies: true`` in topology.yaml.
        """
        return await self.requester().request(event, expect, timeout, **kwargs)

    def request_sync(self, event: Event, *, expect: type[Any], timeout: float = 5.0,
                     **kwargs: Any) -> Any:
        """:meth:`request`, blocking the calling thread."""
        return self.requester().request_sync(event, expect, timeout, **kwargs)

    def requester(self) -> Requester:
        """This publisher's reply listener (one partition of the reply topic), started on
        first use."""
        if self._requester is None:
            from tidings.producer.requester import Requester

            publisher = self._publisher()
            self._requester = Requester(publisher, publisher.kafka_config)
        return self._requester

    def close_requests(self) -> None:
        """Stop the reply listener; requests still waiting fail."""
        if self._requester is not None:
            self._requester.close()
            self._requester = None

    def _publisher(self) -> Any:
        return self

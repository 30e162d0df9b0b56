"""Request-reply over Kafka: ``reply = await publisher.request(event, expect=Reply)``.

A request is an ordinary event with two more headers, ``correlation-id`` and
``reply-to``; a handler answers with ``ctx.reply(event)``, which stages the reply in
the group's outbox, in the handler's transaction. The requesting side lives in
:mod:`tidings.producer.requester`, reply addressing in :mod:`tidings.producer.replies`;
this package gathers the names. See docs/request-reply.md.
"""

from tidings.producer.replies import NotARequest, address_reply
from tidings.producer.requester import (
    Requester,
    RequestFailed,
    RequestMetrics,
    RequestTimeout,
    UnexpectedReply,
)

__all__ = ["NotARequest", "RequestFailed", "RequestMetrics", "RequestTimeout", "Requester",
           "UnexpectedReply", "address_reply"]

"""The producer side: typed events in, acknowledged Kafka records out.

``Publisher`` (one typed call, returns once the broker has the event),
``EventPreparer`` (validation, key, Avro bytes and headers), ``ReliableProducer``
(idempotent, ``acks=all``, delivery reports) and the transactional ``Outbox``
with its relay.
"""

"""Scenario 1, produce: N order.created events from business data to acknowledged.

Each contender starts its timer after its client is connected (one warm-up message
delivered) and stops it when the broker has acknowledged every event.

- raw: ``Producer.produce`` of pre-encoded Avro values and keys (encoded before the
  timer: the floor, with no per-event work at all).
- tidings: ``Publisher.publish_many`` of typed models built from the dicts
  (pydantic validation + Avro single-object encoding + the six standard headers).
- faststream: ``KafkaBroker.publish_batch`` of the same pydantic models (FastStream's
  natural JSON path), 500 events per batch, batches spread over the partitions.
- floor: the minimal pure-Python loop that does Tidings' work, the same every run:
  ``OrderCreated.model_validate`` of each dict, ``model_dump``, fastavro
  ``schemaless_writer`` behind the 10-byte single-object header, and
  ``Producer.produce`` with the key and the six headers Tidings sends, one shared
  delivery callback. Tidings is reported as a percentage of it.
- quix: ``Application.get_producer()`` with ``topic.serialize`` (Quix's natural
  JSON serializer, orjson) of the same dicts.
- quix-avro: Quix configured for the same work: ``model_validate`` of each dict, then
  ``topic.serialize`` with Quix's ``AvroSerializer`` (schemaless Avro, fastavro).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from benchmarks import event as ev
from benchmarks.harness import Context, TidingsSetup, create_topics, delete_topics
from benchmarks.report import ScenarioResult
from benchmarks.rounds import Contender, alternate

FASTSTREAM_BATCH = 500


def _result(n: int, seconds: float, payload_bytes: int, **extra: Any) -> dict[str, Any]:
    return {"msgs": n, "seconds": seconds, "bytes": payload_bytes, **extra}


def prepared_events(topology_path: str, n: int, start: int = 0) -> list[Any]:
    """``n`` events prepared by Tidings (what the raw contenders send pre-encoded)."""
    from schemas.models import OrderCreated
    from tidings.producer.prepare import EventPreparer
    from tidings.topology import load_topology

    preparer = EventPreparer(load_topology(topology_path, check_imports=False), "bench-service")
    return [preparer.prepare(OrderCreated.model_validate(d)) for d in ev.orders(n, start)]


def raw(params: dict[str, Any]) -> dict[str, Any]:
    from confluent_kafka import Producer

    topic, n = params["topic"], params["n"]
    events = prepared_events(params["topology"], n)
    pairs = [(p.key, p.value) for p in events]
    del events
    failures: list[Any] = []

    def on_delivery(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(error)

    producer = Producer({"bootstrap.servers": params["bootstrap"], **ev.RAW_PRODUCER_CONFIG,
                         "on_delivery": on_delivery})
    producer.produce(topic, pairs[0][1], key=pairs[0][0])
    producer.flush(30)
    began = time.perf_counter()
    for key, value in pairs:
        while True:
            try:
                producer.produce(topic, value, key=key)
                break
            except BufferError:
                producer.poll(0.01)
    left = producer.flush(60)
    seconds = time.perf_counter() - began
    if left or failures:
        raise RuntimeError(f"{left} undelivered, {len(failures)} failed: {failures[:1]}")
    return _result(n, seconds, sum(len(v) for _, v in pairs))


def floor(params: dict[str, Any]) -> dict[str, Any]:
    """The publish floor: the work Tidings does per event, each piece in the cheapest
    plain way, so the percentage says what the platform costs on top.

    Per event: ``model_validate``, ``model_dump``, fastavro ``schemaless_writer`` behind
    the single-object header, the key, one read of the OS random source for the event
    id (UUID 4) and the traceparent, and ``produce`` with the six headers. Built once:
    the parsed schema, the constant headers, the producer and its one delivery callback;
    the occurred-at text is formatted when the millisecond changes (every event of that
    millisecond carries the same text).
    """
    import os
    from io import BytesIO

    from confluent_kafka import Producer
    from fastavro import schemaless_writer

    from benchmarks import wire
    from schemas.models import OrderCreated
    from tidings import headers as h

    topic, n = params["topic"], params["n"]
    data = ev.orders(n)
    parsed, framing = wire.parsed_schema(), wire.single_object_header()
    event_type = (h.EVENT_TYPE, b"order.created")
    schema = (h.SCHEMA, wire.fingerprint().hex().encode())
    producer_name = (h.PRODUCER, b"bench-service")
    failures: list[Any] = []

    def on_delivery(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(error)

    producer = Producer({"bootstrap.servers": params["bootstrap"], **ev.RAW_PRODUCER_CONFIG,
                         "on_delivery": on_delivery})
    producer.produce(topic, b"warm-up")
    producer.flush(30)
    payload = 0
    last_ms, occurred_at = -1, (h.OCCURRED_AT, b"")
    began = time.perf_counter()
    for record in data:
        model = OrderCreated.model_validate(record)
        out = BytesIO()
        out.write(framing)
        schemaless_writer(out, parsed, model.model_dump())
        value = out.getvalue()
        payload += len(value)
        ms = time.time_ns() // 1_000_000
        if ms != last_ms:
            second, milli = divmod(ms, 1000)
            occurred_at = (h.OCCURRED_AT, b"%s.%03dZ" % (
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode(), milli))
            last_ms = ms
        x = os.urandom(40).hex()  # 16 bytes of event id, 16 of trace id, 8 of span id
        event_id = (f"{x[:8]}-{x[8:12]}-4{x[13:16]}-{'89ab'[int(x[16], 16) & 3]}{x[17:20]}"
                    f"-{x[20:32]}")
        headers = [(h.EVENT_ID, event_id.encode()), event_type, schema, occurred_at,
                   producer_name, (h.TRACEPARENT, f"00-{x[32:64]}-{x[64:80]}-01".encode())]
        while True:
            try:
                producer.produce(topic, value, key=model.order_id.encode(), headers=headers)
                break
            except BufferError:
                producer.poll(0.01)
    left = producer.flush(60)
    seconds = time.perf_counter() - began
    if left or failures:
        raise RuntimeError(f"{left} undelivered, {len(failures)} failed: {failures[:1]}")
    return _result(n, seconds, payload)


def tidings(params: dict[str, Any]) -> dict[str, Any]:
    from schemas.models import OrderCreated
    from tidings.producer.publisher import Publisher

    n, batch = params["n"], params["batch"]
    data = ev.orders(n)
    publisher = Publisher.from_file(params["topology"], "bench-service")
    with publisher:
        publisher.publish(OrderCreated.model_validate(ev.order(n + 1)))  # warm-up
        payload = 0
        began = time.perf_counter()
        for start in range(0, n, batch):
            chunk = data[start:start + batch]
            publisher.publish_many(OrderCreated.model_validate(d) for d in chunk)
        seconds = time.perf_counter() - began
    sample = publisher.prepare(OrderCreated.model_validate(data[0]))
    payload = len(sample.value) * n
    return _result(n, seconds, payload, header_bytes=sum(len(k) + len(v)
                                                         for k, v in sample.headers))


def faststream(params: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    return asyncio.run(_faststream(params))


async def _faststream(params: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    from faststream.kafka import KafkaBroker

    from schemas.models import OrderCreated

    topic, n = params["topic"], params["n"]
    data = ev.orders(n)
    # aiokafka's batch is 16 KB by default, too small for one publish_batch of 500
    # events; 1 MB matches librdkafka's batch.size default.
    broker = KafkaBroker(params["bootstrap"], acks=ev.ACKS, enable_idempotence=True,
                         linger_ms=ev.LINGER_MS, max_batch_size=1_000_000, logger=None)
    await broker.start()
    try:
        await broker.publish(OrderCreated.model_validate(ev.order(n + 1)), topic)  # warm-up
        pending = []
        began = time.perf_counter()
        for index, start in enumerate(range(0, n, FASTSTREAM_BATCH)):
            models = [OrderCreated.model_validate(d) for d in data[start:start + FASTSTREAM_BATCH]]
            pending.append(await broker.publish_batch(
                *models, topic=topic, partition=index % ev.PARTITIONS, no_confirm=True))
        await asyncio.gather(*pending)
        seconds = time.perf_counter() - began
    finally:
        await broker.stop()
    size = len(OrderCreated.model_validate(data[0]).model_dump_json())
    return _result(n, seconds, size * n)


def quix(params: dict[str, Any]) -> dict[str, Any]:
    from quixstreams import Application

    topic_name, n = params["topic"], params["n"]
    data = ev.orders(n)
    app = Application(
        broker_address=params["bootstrap"], loglevel="WARNING", auto_create_topics=False,
        producer_extra_config={"acks": ev.ACKS, "enable.idempotence": True,
                               "linger.ms": ev.LINGER_MS},
    )
    topic = app.topic(topic_name, value_serializer="json", key_serializer="str")
    payload = 0
    with app.get_producer() as producer:
        warm = topic.serialize(key="warm-up", value=_json_ready(ev.order(n + 1)))
        producer.produce(topic=topic.name, key=warm.key, value=warm.value)
        producer.flush()
        began = time.perf_counter()
        for record in data:
            message = topic.serialize(key=record["order_id"], value=_json_ready(record))
            payload += len(message.value or b"")
            producer.produce(topic=topic.name, key=message.key, value=message.value)
    seconds = time.perf_counter() - began  # leaving the block flushed every event
    return _result(n, seconds, payload)


def quix_avro(params: dict[str, Any]) -> dict[str, Any]:
    """Quix doing Tidings' work: each dict validated into the pydantic model, dumped, and
    serialized by Quix's own ``AvroSerializer`` (schemaless Avro; Quix sends no headers)."""
    from quixstreams import Application
    from quixstreams.models.serializers.avro import AvroSerializer

    from benchmarks import wire
    from schemas.models import OrderCreated

    topic_name, n = params["topic"], params["n"]
    data = ev.orders(n)
    app = Application(
        broker_address=params["bootstrap"], loglevel="WARNING", auto_create_topics=False,
        producer_extra_config={"acks": ev.ACKS, "enable.idempotence": True,
                               "linger.ms": ev.LINGER_MS},
    )
    topic = app.topic(topic_name, value_serializer=AvroSerializer(wire.schema()),
                      key_serializer="str")
    payload = 0
    with app.get_producer() as producer:
        warm = OrderCreated.model_validate(ev.order(n + 1))
        message = topic.serialize(key=warm.order_id, value=warm.model_dump())
        producer.produce(topic=topic.name, key=message.key, value=message.value)
        producer.flush()
        began = time.perf_counter()
        for record in data:
            model = OrderCreated.model_validate(record)
            message = topic.serialize(key=model.order_id, value=model.model_dump())
            payload += len(message.value or b"")
            producer.produce(topic=topic.name, key=message.key, value=message.value)
    seconds = time.perf_counter() - began  # leaving the block flushed every event
    return _result(n, seconds, payload)


def _json_ready(record: dict[str, Any]) -> dict[str, Any]:
    """Quix's JSON serializer (orjson, datetimes passed through) needs a string."""
    return {**record, "created_at": record["created_at"].isoformat()}


# -- the parent side -----------------------------------------------------------------------


def scenario(ctx: Context) -> ScenarioResult:
    n, rounds = ctx.sizes.produce_n, ctx.sizes.rounds
    setup = TidingsSetup.create(ctx.workdir / "produce", ctx.unique("produce-tidings"), [])
    topics = {name: ctx.unique(f"produce-{name}")
              for name in ("raw", "floor", "faststream", "quix", "quix-avro")}
    create_topics(ctx.bootstrap, list(topics.values()))
    batch = ctx.sizes.publish_batch

    def params(name: str) -> Callable[[int], dict[str, Any]]:
        topic = setup.topic if name == "tidings" else topics[name]
        return lambda _round: {"topic": topic, "n": n, "topology": str(setup.path),
                               "batch": batch}

    contenders = [
        Contender("raw", "confluent-kafka `Producer.produce`, pre-encoded Avro bytes",
                  "benchmarks.produce:raw", params("raw")),
        Contender("floor", "minimal loop: `model_validate`, `model_dump`, fastavro "
                  "`schemaless_writer` single-object, `produce` with the six headers",
                  "benchmarks.produce:floor", params("floor")),
        Contender("tidings", f"`Publisher.publish_many` of typed models, {batch} per call",
                  "benchmarks.produce:tidings", params("tidings")),
        Contender("faststream", f"`KafkaBroker.publish_batch` of pydantic models (JSON), "
                  f"{FASTSTREAM_BATCH} per batch", "benchmarks.produce:faststream",
                  params("faststream")),
        Contender("quix", "`app.get_producer()` + `topic.serialize` of dicts (JSON)",
                  "benchmarks.produce:quix", params("quix")),
        Contender("quix-avro", "`model_validate`, then `topic.serialize` with Quix's "
                  "`AvroSerializer`", "benchmarks.produce:quix_avro", params("quix-avro")),
    ]
    rows = alternate(ctx, "produce", contenders, rounds)
    delete_topics(ctx.bootstrap, [*topics.values(), setup.topic])
    return ScenarioResult(
        "produce", "1. Produce", f"{n:,} events from business data (dicts) to acknowledged by "
        "the broker, timer after a warm-up message.",
        rows, ["msgs", "runs", "mb", "ratio", "floor", "peak"], floor="floor",
        notes=["MB/s counts each contender's own message values (Avro single-object for "
               "raw, floor and Tidings, JSON for FastStream and Quix, schemaless Avro for "
               "quix-avro), not headers or keys.",
               "The floor and Tidings send the six standard headers; the others send none.",
               "FastStream's publish_batch takes no per-message keys: its batches go to "
               "explicit partitions round-robin. Tidings and Quix key by order_id."],
    )

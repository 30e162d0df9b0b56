"""Scenario 2, consume: N events already on a topic, read by a fresh consumer group.

The timer runs from the first event reaching user code to the N-th (group join and
start-up are reported apart, as ``startup_s``).

- raw: ``Consumer.consume(num_messages=500)`` loop that touches nothing.
- tidings: the consumer runtime of ``tidings run`` with its defaults: decode the
  Avro single-object payload, build the typed model, claim the event id in SQLite in
  the handler's transaction, call a no-op handler, commit offsets every second.
- faststream: a ``@broker.subscriber`` whose handler takes the pydantic model
  (FastStream's natural path: JSON decoded, the model validated), default ack policy.
- quix: an ``Application`` with a JSON topic and ``sdf.update`` calling a no-op.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks import probe
from benchmarks.harness import (
    Context,
    TidingsSetup,
    create_topics,
    delete_topics,
    latency_summary,
    progress,
)
from benchmarks.report import ScenarioResult
from benchmarks.rounds import Contender, alternate

BATCH = 500


def _result(n: int, began_process: float, payload_bytes: int, **extra: Any) -> dict[str, Any]:
    seconds = probe.last_at - probe.first_at
    return {"msgs": n, "seconds": seconds, "bytes": payload_bytes,
            "startup_s": probe.first_at - began_process, "rss_mb": probe.rss_mb(), **extra}


def raw(params: dict[str, Any]) -> dict[str, Any]:
    from confluent_kafka import Consumer

    began = time.monotonic()
    n = params["n"]
    probe.reset(n)
    consumer = Consumer({"bootstrap.servers": params["bootstrap"], "group.id": params["group"],
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([params["topic"]])
    try:
        while probe.count < n and not probe.STOP.is_set():
            # Ask for exactly what is left, so the last call does not wait out its timeout.
            messages = consumer.consume(num_messages=min(BATCH, n - probe.count), timeout=1.0)
            if messages:
                probe.hit(len(messages))
        rss = probe.rss_mb()
    finally:
        consumer.close()
    result = _result(n, began, params["payload_size"] * n)
    result["rss_mb"] = rss
    return result


def tidings(params: dict[str, Any]) -> dict[str, Any]:
    from tidings.consumer.group import resolve_group
    from tidings.consumer.runtime import ConsumerRuntime, RuntimeOptions
    from tidings.db import open_database
    from tidings.topology import load_topology

    began = time.monotonic()
    n = params["n"]
    probe.reset(n, record_latency=params.get("latency", False))
    topology = load_topology(params["topology"])
    setup = resolve_group(topology, params["group"], open_database(params["database"]))
    runtime = ConsumerRuntime(setup, {"bootstrap.servers": params["bootstrap"]},
                              RuntimeOptions())
    failure: list[BaseException] = []

    def run() -> None:
        try:
            runtime.run()
        except BaseException as exc:
            failure.append(exc)
            probe.done.set()

    thread = threading.Thread(target=run, name="runtime", daemon=True)
    thread.start()
    _wait(n)
    rss = probe.rss_mb()
    runtime.stop()
    thread.join(timeout=60)
    if failure:
        raise failure[0]
    result = _result(probe.count, began, params["payload_size"] * probe.count)
    result["rss_mb"] = rss
    if probe.latencies is not None:
        result.update(latency_summary(probe.latencies[params.get("warmup", 0):]))
    result["counts"] = {o.value: c for o, c in runtime.counts.items() if c}
    return result


def _wait(n: int) -> None:
    """Until ``n`` events were handled, or SIGTERM (the latency and scaling runs)."""
    while not probe.done.wait(0.1):
        if probe.STOP.is_set():
            probe.last_at = probe.last_at or time.monotonic()
            return


def faststream(params: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    return asyncio.run(_faststream(params))


async def _faststream(params: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    from faststream.kafka import KafkaBroker

    from schemas.models import OrderCreated

    began = time.monotonic()
    n = params["n"]
    probe.reset(n)
    broker = KafkaBroker(params["bootstrap"], logger=None)

    @broker.subscriber(params["topic"], group_id=params["group"],  # type: ignore[untyped-decorator]
                       auto_offset_reset="earliest")
    async def handle(order: OrderCreated) -> None:
        probe.hit()

    await broker.start()
    try:
        while not probe.done.is_set() and not probe.STOP.is_set():
            await asyncio.sleep(0.05)
        rss = probe.rss_mb()
    finally:
        await broker.stop()
    result = _result(n, began, params["payload_size"] * n)
    result["rss_mb"] = rss
    return result


def quix(params: dict[str, Any]) -> dict[str, Any]:
    from quixstreams import Application

    began = time.monotonic()
    n = params["n"]
    probe.reset(n)
    app = Application(broker_address=params["bootstrap"], consumer_group=params["group"],
                      auto_offset_reset="earliest", loglevel="WARNING",
                      auto_create_topics=False, state_dir=params["state_dir"])
    topic = app.topic(params["topic"], value_deserializer="json")
    sdf = app.dataframe(topic)
    rss: list[float] = []

    def handle(_value: Any) -> None:
        probe.hit()
        if probe.done.is_set() and not rss:
            rss.append(probe.rss_mb())
            app.stop()

    sdf.update(handle)
    app.run()
    result = _result(n, began, params["payload_size"] * n)
    result["rss_mb"] = rss[0] if rss else probe.rss_mb()
    return result


def prefill(params: dict[str, Any]) -> dict[str, Any]:
    """Put ``n`` events on the Avro topic (published by Tidings: unique event ids, the
    standard headers) and the same events as JSON on the JSON topic."""
    from confluent_kafka import Producer

    from benchmarks import event as ev
    from benchmarks.produce import prepared_events
    from schemas.models import OrderCreated

    n = params["n"]
    producer = Producer({"bootstrap.servers": params["bootstrap"], **ev.RAW_PRODUCER_CONFIG})

    def send(topic: str, value: bytes, key: bytes | None, headers: Any) -> None:
        while True:
            try:
                producer.produce(topic, value, key=key, headers=headers)
                return
            except BufferError:
                producer.poll(0.05)

    started = time.perf_counter()
    if params.get("avro_topic"):
        for prepared in prepared_events(params["topology"], n, params.get("start", 0)):
            send(params["avro_topic"], prepared.value, prepared.key, prepared.headers)
    if params.get("json_topic"):
        for record in ev.orders(n, params.get("start", 0)):
            body = OrderCreated.model_validate(record).model_dump_json().encode()
            send(params["json_topic"], body, record["order_id"].encode(),
                 [("content-type", b"application/json")])
    left = producer.flush(120)
    if left:
        raise RuntimeError(f"{left} events not delivered while filling the topics")
    return {"msgs": n, "seconds": time.perf_counter() - started}


# -- the parent side -----------------------------------------------------------------------


def scenario(ctx: Context) -> ScenarioResult:
    n, rounds = ctx.sizes.consume_n, ctx.sizes.rounds
    groups = [f"tidings-r{r}" for r in range(rounds)]
    setup = TidingsSetup.create(ctx.workdir / "consume", ctx.unique("consume-avro"), groups)
    json_topic = ctx.unique("consume-json")
    create_topics(ctx.bootstrap, [json_topic])
    progress(f"consume: filling two topics with {n:,} events each")
    ctx.child("benchmarks.consume:prefill", {"n": n, "topology": str(setup.path),
                                             "avro_topic": setup.topic,
                                             "json_topic": json_topic}, timeout=600)
    avro, json_size = ctx.payload["avro_bytes"], ctx.payload["json_bytes"]

    def params(topic: str, size: int, **extra: Any) -> Callable[[int], dict[str, Any]]:
        return lambda r: {"topic": topic, "n": n, "payload_size": size,
                          "group": f"{ctx.unique('group')}-r{r}", **extra}

    def tidings_params(r: int) -> dict[str, Any]:
        return {"n": n, "payload_size": avro, "topology": str(setup.path),
                "group": groups[r], "database": setup.database_url(groups[r])}

    contenders = [
        Contender("raw", "confluent-kafka `consume(num_messages=500)`, touches nothing",
                  "benchmarks.consume:raw", params(setup.topic, avro)),
        Contender("tidings", "consumer runtime: decode, model, SQLite idempotency, no-op "
                  "handler, commit", "benchmarks.consume:tidings", tidings_params),
        Contender("faststream", "`@broker.subscriber`, handler takes the pydantic model (JSON)",
                  "benchmarks.consume:faststream", params(json_topic, json_size)),
        Contender("quix", "`Application` + `sdf.update` no-op (JSON dicts)",
                  "benchmarks.consume:quix",
                  params(json_topic, json_size, state_dir=str(ctx.workdir / "quix-state"))),
    ]
    rows = alternate(ctx, "consume", contenders, rounds)
    delete_topics(ctx.bootstrap, [json_topic, setup.topic])
    return ScenarioResult(
        "consume", "2. Consume", f"{n:,} events already on the topic, read by a fresh "
        "group; timer from the first event in user code to the last.",
        rows, ["msgs", "runs", "mb", "ratio", "startup", "rss", "peak"],
        notes=["Steady RSS is the process's resident memory when the last event was handled "
               "(librdkafka's pre-fetch buffers included).",
               "Raw and Tidings read the Avro topic Tidings published (with its headers); "
               "FastStream and Quix read the same events as JSON."],
    )

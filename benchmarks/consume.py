"""Scenario 2, consume: N events already on a topic, read by a fresh consumer group.

The timer runs from the first event reaching user code to the N-th (group join and
start-up are reported apart, as ``startup_s``).

- raw: ``Consumer.consume(num_messages=500)`` loop that touches nothing.
- floor: the minimal pure-Python loop that does the decoding work, the same every run:
  the same ``consume(500)`` loop over the topic Tidings filled, each body read by
  fastavro ``schemaless_reader`` after the 10-byte single-object header (checked
  against the writer's), with the parsed writer schema, then
  ``OrderCreated.model_validate``. No idempotency, no headers. Tidings is reported as
  a percentage of it.
- tidings: the consumer runtime of ``tidings run`` with its defaults: decode the
  Avro single-object payload, build the typed model, claim the event id in SQLite in
  the handler's transaction, call a no-op handler, commit offsets.
- tidings-pg: the same runtime with the group's database (idempotency store) on
  PostgreSQL at durable settings (fsync, synchronous_commit and full_page_writes on,
  PostgreSQL's defaults): one throwaway server for the scenario, a fresh database per
  round.
- faststream: a ``@broker.subscriber`` whose handler takes the pydantic model
  (FastStream's natural path: JSON decoded, the model validated), default ack policy.
- quix: an ``Application`` with a JSON topic and ``sdf.update`` calling a no-op.
- quix-avro: Quix configured for the same work as the floor: its ``AvroDeserializer``
  on a topic of the same events as schemaless Avro (what Quix reads), then
  ``sdf.apply(OrderCreated.model_validate)`` and the no-op.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
from benchmarks.report import Row, ScenarioResult
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


def floor(params: dict[str, Any]) -> dict[str, Any]:
    """The consume floor: what any typed Avro consumer must do per event, nothing more."""
    from io import BytesIO

    from confluent_kafka import Consumer
    from fastavro import schemaless_reader

    from benchmarks import wire
    from schemas.models import OrderCreated

    began = time.monotonic()
    n = params["n"]
    probe.reset(n)
    parsed, framing, skip = wire.parsed_schema(), wire.single_object_header(), wire.HEADER_SIZE
    validate, hit = OrderCreated.model_validate, probe.hit
    consumer = Consumer({"bootstrap.servers": params["bootstrap"], "group.id": params["group"],
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([params["topic"]])
    try:
        while probe.count < n and not probe.STOP.is_set():
            for message in consumer.consume(num_messages=min(BATCH, n - probe.count),
                                            timeout=1.0):
                if message.error() is not None:
                    continue
                value = message.value()
                if value is None or value[:skip] != framing:
                    raise RuntimeError(f"offset {message.offset()}: not order.created v2 "
                                       "single-object Avro")
                body = BytesIO(value)
                body.seek(skip)
                validate(schemaless_reader(body, parsed, None))
                hit()
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


def quix_avro(params: dict[str, Any]) -> dict[str, Any]:
    """Quix doing the floor's work: its Avro deserializer, a pydantic step, the no-op."""
    from quixstreams import Application
    from quixstreams.models.serializers.avro import AvroDeserializer

    from benchmarks import wire
    from schemas.models import OrderCreated

    began = time.monotonic()
    n = params["n"]
    probe.reset(n)
    app = Application(broker_address=params["bootstrap"], consumer_group=params["group"],
                      auto_offset_reset="earliest", loglevel="WARNING",
                      auto_create_topics=False, state_dir=params["state_dir"])
    topic = app.topic(params["topic"], value_deserializer=AvroDeserializer(wire.schema()))
    sdf = app.dataframe(topic).apply(OrderCreated.model_validate)
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
    standard headers), the same events as JSON on the JSON topic, and their schemaless
    Avro bodies (the single-object body without its 10-byte header) on the plain Avro
    topic."""
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
    if params.get("avro_topic") or params.get("plain_avro_topic"):
        from benchmarks import wire

        for prepared in prepared_events(params["topology"], n, params.get("start", 0)):
            if params.get("avro_topic"):
                send(params["avro_topic"], prepared.value, prepared.key, prepared.headers)
            if params.get("plain_avro_topic"):
                send(params["plain_avro_topic"], prepared.value[wire.HEADER_SIZE:],
                     prepared.key, None)
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


@dataclass
class PostgresSlot:
    """The scenario's PostgreSQL server: its URL, or why there is none (``unavailable``:
    nothing to run it with here; ``error``: it is there but would not start)."""

    url: str | None = None
    unavailable: str | None = None
    error: str | None = None


@contextlib.contextmanager
def durable_postgres() -> Iterator[PostgresSlot]:
    """One throwaway PostgreSQL server for the whole scenario, at durable settings
    (PostgreSQL's defaults), stopped and deleted on exit."""
    import importlib.util

    from tidings.testing.postgres import (
        PostgresUnavailable,
        postgres_available,
        postgres_server,
    )

    missing = postgres_available()
    if missing is None and importlib.util.find_spec("psycopg") is None:
        missing = "psycopg is not installed (pip install 'tidings[postgres]')"
    if missing is not None:
        yield PostgresSlot(unavailable=missing)
        return
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(postgres_server(durable=True))
        except PostgresUnavailable as exc:
            slot = PostgresSlot(error=str(exc)[:500])
        else:
            slot = PostgresSlot(url=url)
        yield slot


def postgres_databases(url: str, names: list[str]) -> tuple[list[str], str]:
    """A fresh database per round on the server at ``url``: their URLs, and one line on
    the server (version, the durability settings in force, the data directory's file
    system: fsync on tmpfs would cost nothing)."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        for name in names:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
            connection.execute(f'CREATE DATABASE "{name}"')
        row = connection.execute(
            "SELECT current_setting('server_version'), current_setting('fsync'), "
            "current_setting('synchronous_commit'), current_setting('full_page_writes'), "
            "current_setting('data_directory')").fetchone()
    assert row is not None
    version, fsync, synchronous_commit, full_page_writes, data_directory = row
    where = urlsplit(url)
    urls = [urlunsplit(where._replace(path=f"/{name}")) for name in names]
    return urls, (f"PostgreSQL {version}: fsync={fsync}, synchronous_commit="
                  f"{synchronous_commit}, full_page_writes={full_page_writes}, data on "
                  f"{_file_system(data_directory)}")


def postgres_claims(urls: list[str]) -> list[int]:
    """How many claims each round's database holds (proof the store was PostgreSQL)."""
    import psycopg

    from tidings.consumer.idempotency import TABLE

    counts: list[int] = []
    for url in urls:
        with psycopg.connect(url, autocommit=True) as connection:
            row = connection.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
            counts.append(int(row[0]) if row else 0)
    return counts


def _file_system(path: str) -> str:
    """The type of the file system ``path`` lives on (longest mount point prefix)."""
    best, kind = "", "?"
    with contextlib.suppress(OSError), open("/proc/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) < 3:
                continue
            mount = fields[1]
            inside = path == mount or path.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best):
                best, kind = mount, fields[2]
    return kind


def scenario(ctx: Context) -> ScenarioResult:
    progress("consume: starting a throwaway PostgreSQL server (durable settings)")
    with durable_postgres() as postgres:
        return _scenario(ctx, postgres)


def _scenario(ctx: Context, postgres: PostgresSlot) -> ScenarioResult:
    n, rounds = ctx.sizes.consume_n, ctx.sizes.rounds
    groups = [f"tidings-r{r}" for r in range(rounds)]
    pg_groups = [f"tidings-pg-r{r}" for r in range(rounds)]
    setup = TidingsSetup.create(ctx.workdir / "consume", ctx.unique("consume-avro"),
                                groups + (pg_groups if postgres.url else []))
    json_topic = ctx.unique("consume-json")
    plain_topic = ctx.unique("consume-plain-avro")
    create_topics(ctx.bootstrap, [json_topic, plain_topic])
    progress(f"consume: filling three topics with {n:,} events each")
    ctx.child("benchmarks.consume:prefill", {"n": n, "topology": str(setup.path),
                                             "avro_topic": setup.topic,
                                             "json_topic": json_topic,
                                             "plain_avro_topic": plain_topic}, timeout=600)
    avro, json_size = ctx.payload["avro_bytes"], ctx.payload["json_bytes"]
    plain_size = avro - 10  # the single-object header is not part of a plain body
    notes: list[str] = []

    def params(topic: str, size: int, **extra: Any) -> Callable[[int], dict[str, Any]]:
        return lambda r: {"topic": topic, "n": n, "payload_size": size,
                          "group": f"{ctx.unique('group')}-r{r}", **extra}

    def tidings_params(r: int) -> dict[str, Any]:
        return {"n": n, "payload_size": avro, "topology": str(setup.path),
                "group": groups[r], "database": setup.database_url(groups[r])}

    quix_state = str(ctx.workdir / "quix-state")
    contenders = [
        Contender("raw", "confluent-kafka `consume(num_messages=500)`, touches nothing",
                  "benchmarks.consume:raw", params(setup.topic, avro)),
        Contender("floor", "minimal loop: `consume(500)`, fastavro `schemaless_reader` "
                  "after the header, `model_validate`; no idempotency",
                  "benchmarks.consume:floor", params(setup.topic, avro)),
        Contender("tidings", "consumer runtime: decode, model, SQLite idempotency, no-op "
                  "handler, commit", "benchmarks.consume:tidings", tidings_params),
    ]
    pg_what = "the same runtime, idempotency store on PostgreSQL (durable)"
    pg_row: Row | None = None
    if postgres.url is not None:
        try:
            pg_urls, server = postgres_databases(
                postgres.url, [f"bench_{g.replace('-', '_')}" for g in pg_groups])
        except Exception as exc:  # the row says why; the other contenders still run
            pg_row = Row("tidings-pg", pg_what, error=f"cannot create the databases: {exc}")
        else:
            notes.append(f"tidings-pg: {server}; a fresh database per round.")
            contenders.append(Contender(
                "tidings-pg", pg_what, "benchmarks.consume:tidings",
                lambda r: {**tidings_params(r), "group": pg_groups[r],
                           "database": pg_urls[r]}))
    else:
        pg_row = Row("tidings-pg", pg_what, error=postgres.error,
                     unavailable=postgres.unavailable and f"unavailable: {postgres.unavailable}")
    contenders += [
        Contender("faststream", "`@broker.subscriber`, handler takes the pydantic model (JSON)",
                  "benchmarks.consume:faststream", params(json_topic, json_size)),
        Contender("quix", "`Application` + `sdf.update` no-op (JSON dicts)",
                  "benchmarks.consume:quix", params(json_topic, json_size, state_dir=quix_state)),
        Contender("quix-avro", "Quix `AvroDeserializer` + `sdf.apply(model_validate)` + no-op",
                  "benchmarks.consume:quix_avro",
                  params(plain_topic, plain_size, state_dir=quix_state)),
    ]
    rows = alternate(ctx, "consume", contenders, rounds)
    if pg_row is not None:
        rows.insert(3, pg_row)
    else:
        measured = len(next(r for r in rows if r.contender == "tidings-pg").runs)
        with contextlib.suppress(Exception):  # a note, not a number: never fail the scenario
            claims = postgres_claims(pg_urls[:measured])
            notes.append("tidings-pg: claims recorded in PostgreSQL per round: "
                         + " / ".join(f"{c:,}" for c in claims) + ".")
    delete_topics(ctx.bootstrap, [json_topic, plain_topic, setup.topic])
    return ScenarioResult(
        "consume", "2. Consume", f"{n:,} events already on the topic, read by a fresh "
        "group; timer from the first event in user code to the last.",
        rows, ["msgs", "runs", "mb", "ratio", "floor", "startup", "rss", "peak"],
        floor="floor",
        notes=["Steady RSS is the process's resident memory when the last event was handled "
               "(librdkafka's pre-fetch buffers included).",
               "Raw, the floor and Tidings read the Avro single-object topic Tidings "
               "published (with its headers); FastStream and Quix read the same events as "
               "JSON, quix-avro as schemaless Avro bodies.", *notes],
    )

"""Scenario 3, end-to-end latency: publish → handler entry at a fixed rate.

A producer process publishes at a fixed rate (1,000 events/s by default) for a fixed
time, stamping each event with the wall-clock time of the publish call; a consumer
process (already in its group) records, at handler entry, how long ago that was.
The first 2 s of events are a warm-up and not counted (a fresh consumer's first
fetches wait up to ``fetch.wait.max.ms``, 500 ms, whatever the client).

- raw: confluent-kafka ``produce`` of pre-encoded bytes; a ``poll()`` loop consumer
  (the canonical low-latency loop) that reads the header.
- tidings: ``Publisher.prepare`` + ``send_prepared`` (the asynchronous publish: no
  wait for the acknowledgement before the next event) and the consumer runtime with
  its defaults, the stamp read from ``ctx.headers`` in a no-op handler.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

from benchmarks import event as ev
from benchmarks import probe
from benchmarks.harness import (
    BenchError,
    Context,
    TidingsSetup,
    create_topics,
    delete_topics,
    latency_summary,
    progress,
    wait_for_group,
)
from benchmarks.report import Row, ScenarioResult

WARMUP_S = 2.0


def _paced(n: int, rate: int) -> Iterable[int]:
    """0..n-1, each yielded at its slot of a fixed-rate schedule (no catching up in bursts
    beyond what fell behind)."""
    began = time.perf_counter()
    for i in range(n):
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield i


def raw_producer(params: dict[str, Any]) -> dict[str, Any]:
    from confluent_kafka import Producer

    from benchmarks.produce import prepared_events

    n, rate = params["n"], params["rate"]
    pairs = [(p.key, p.value) for p in prepared_events(params["topology"], n)]
    producer = Producer({"bootstrap.servers": params["bootstrap"], **ev.RAW_PRODUCER_CONFIG})
    topic = params["topic"]
    began = time.perf_counter()
    for i in _paced(n, rate):
        key, value = pairs[i]
        producer.produce(topic, value, key=key,
                         headers=[(ev.SENT_HEADER, str(time.time_ns()).encode())])
        producer.poll(0)
    seconds = time.perf_counter() - began
    if producer.flush(30):
        raise RuntimeError("events left undelivered")
    return {"msgs": n, "seconds": seconds}


def tidings_producer(params: dict[str, Any]) -> dict[str, Any]:
    from schemas.models import OrderCreated
    from tidings.producer.publisher import Publisher

    n, rate = params["n"], params["rate"]
    data = ev.orders(n)
    futures = []
    with Publisher.from_file(params["topology"], "bench-service") as publisher:
        publisher.publish(OrderCreated.model_validate(ev.order(n + 1)))  # warm-up
        began = time.perf_counter()
        for i in _paced(n, rate):
            sent = str(time.time_ns()).encode()
            prepared = publisher.prepare(OrderCreated.model_validate(data[i]))
            prepared = dataclasses.replace(
                prepared, headers=[*prepared.headers, (ev.SENT_HEADER, sent)])
            futures.append(publisher.send_prepared(prepared))
        seconds = time.perf_counter() - began
        for future in futures:
            future.result(timeout=30)
    return {"msgs": n, "seconds": seconds}


def raw_consumer(params: dict[str, Any]) -> dict[str, Any]:
    from confluent_kafka import Consumer

    n = params["n"]
    probe.reset(n, record_latency=True)
    consumer = Consumer({"bootstrap.servers": params["bootstrap"], "group.id": params["group"],
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([params["topic"]])
    try:
        while not probe.done.is_set() and not probe.STOP.is_set():
            message = consumer.poll(1.0)
            if message is None or message.error() is not None:
                continue
            probe.hit_with_headers(dict(message.headers() or ()))
        rss = probe.rss_mb()
    finally:
        consumer.close()
    assert probe.latencies is not None
    return {"msgs": probe.count, "rss_mb": rss,
            **latency_summary(probe.latencies[params.get("warmup", 0):])}


# -- the parent side -----------------------------------------------------------------------


def scenario(ctx: Context) -> ScenarioResult:
    rate, seconds = ctx.sizes.latency_rate, ctx.sizes.latency_seconds
    rounds = ctx.sizes.latency_rounds
    n = int(rate * seconds)
    groups = [f"latency-r{r}" for r in range(rounds)]
    setup = TidingsSetup.create(ctx.workdir / "latency", ctx.unique("latency-tidings"), groups)
    raw_topic = ctx.unique("latency-raw")
    create_topics(ctx.bootstrap, [raw_topic])
    rows = {
        "raw": Row("raw", "`produce` pre-encoded → `poll()` loop reading the header"),
        "tidings": Row("tidings", "`prepare` + `send_prepared` → consumer runtime, no-op "
                       "handler"),
    }
    plans: list[tuple[str, str, str, Callable[[int], dict[str, Any]]]] = [
        ("raw", "benchmarks.latency:raw_consumer", "benchmarks.latency:raw_producer",
         lambda r: {"topic": raw_topic, "group": f"{ctx.unique('latency-raw')}-r{r}"}),
        ("tidings", "benchmarks.consume:tidings", "benchmarks.latency:tidings_producer",
         lambda r: {"topic": setup.topic, "group": groups[r],
                    "database": setup.database_url(groups[r]), "latency": True,
                    "payload_size": ctx.payload["avro_bytes"]}),
    ]
    warmup = int(rate * WARMUP_S)
    common = {"n": n + warmup, "rate": rate, "topology": str(setup.path), "warmup": warmup}
    for r in range(rounds):
        for name, consumer_target, producer_target, extra in plans:
            row = rows[name]
            if row.error:
                continue
            params = {**common, **extra(r)}
            consumer = ctx.start(consumer_target, params)
            try:
                wait_for_group(ctx.bootstrap, params["group"], params["topic"], 1)
                produced = ctx.child(producer_target, params, timeout=seconds * 3 + 60)
                consumer_result = consumer.result(timeout=60)
            except BenchError as exc:
                row.error = str(exc)
                progress(f"latency {name}: FAILED {exc}")
                continue
            finally:
                consumer.kill()
            run = {**consumer_result, "msgs": produced["msgs"], "seconds": produced["seconds"],
                   "producer_peak_rss_mb": produced.get("peak_rss_mb")}
            row.runs.append(run)
            progress(f"latency round {r + 1}/{rounds} {name}: p50 {run['p50_ms']:.1f} ms, "
                     f"p99 {run['p99_ms']:.1f} ms, p99.9 {run['p999_ms']:.1f} ms")
    delete_topics(ctx.bootstrap, [raw_topic, setup.topic])
    return ScenarioResult(
        "latency", "3. End-to-end latency",
        f"{rate:,} events/s for {seconds:g} s (after {WARMUP_S:g} s of warm-up, not counted), "
        "publish call → handler entry. Wall clock; producer and consumer in separate "
        "processes.",
        list(rows.values()), ["msgs", "p50", "p99", "p999", "rss", "peak"],
        notes=["msgs/s is the rate the producer held; RSS columns are the consumer's."],
    )



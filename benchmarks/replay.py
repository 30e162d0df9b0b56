"""Scenario 4, replay copy: every event of a topic copied into a group's replay topic.

- raw: a confluent-kafka consume → produce pipe (assigned partitions from the start,
  ``consume(500)`` batches, the same idempotent ``acks=all`` producer settings,
  key, value and headers kept, same partition), flushed at the end.
- tidings: ``tidings replay`` in copy mode through its API (``plan_replay`` +
  ``execute_replay``): the range is copied into ``<topic>.<group>.replay`` with its
  bookkeeping headers and resumable progress. Timed around ``execute_replay`` only.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks import event as ev
from benchmarks.harness import (
    Context,
    TidingsSetup,
    create_topics,
    delete_topics,
    progress,
)
from benchmarks.report import Row, ScenarioResult
from benchmarks.rounds import Contender, alternate

BATCH = 500


def raw_pipe(params: dict[str, Any]) -> dict[str, Any]:
    from confluent_kafka import Consumer, Producer, TopicPartition

    n, source, target = params["n"], params["topic"], params["target"]
    producer = Producer({"bootstrap.servers": params["bootstrap"], **ev.RAW_PRODUCER_CONFIG})
    began = time.perf_counter()
    consumer = Consumer({"bootstrap.servers": params["bootstrap"],
                         "group.id": f"raw-pipe-{time.time_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(source, p, 0) for p in range(ev.PARTITIONS)])
    copied = 0
    payload = 0
    try:
        while copied < n:
            for message in consumer.consume(min(BATCH, n - copied), timeout=0.5):
                if message.error() is not None:
                    continue
                value = message.value() or b""
                while True:
                    try:
                        producer.produce(target, value, key=message.key(),
                                         headers=message.headers(),
                                         partition=message.partition() or 0)
                        break
                    except BufferError:
                        producer.poll(0.05)
                producer.poll(0)
                copied += 1
                payload += len(value)
        if producer.flush(60):
            raise RuntimeError("copies left undelivered")
        seconds = time.perf_counter() - began
    finally:
        consumer.close()
    return {"msgs": copied, "seconds": seconds, "bytes": payload}


def tidings(params: dict[str, Any]) -> dict[str, Any]:
    from tidings.replay import ReplayRequest, execute_replay, plan_replay
    from tidings.topology import load_topology

    topology = load_topology(params["topology"])
    plan = plan_replay(topology, ReplayRequest(params["group"], params["topic"], start="-7d",
                                               mode="copy"))
    began = time.perf_counter()
    result = execute_replay(plan, topology, show_progress=False)
    seconds = time.perf_counter() - began
    if result.events != params["n"]:
        raise RuntimeError(f"replay copied {result.events} events, not {params['n']}")
    return {"msgs": result.events, "seconds": seconds,
            "bytes": result.events * params["payload_size"]}


def replay_api_missing() -> str | None:
    """Why ``tidings replay``'s copy API cannot be used here, or None when it can."""
    try:
        from tidings.replay import ReplayRequest, execute_replay, plan_replay  # noqa: F401
    except ImportError as exc:
        return f"not available yet (`tidings.replay`: {exc})"
    return None


# -- the parent side -----------------------------------------------------------------------


def scenario(ctx: Context) -> ScenarioResult:
    n, rounds = ctx.sizes.replay_n, ctx.sizes.rounds
    group = "replayed"
    setup = TidingsSetup.create(ctx.workdir / "replay", ctx.unique("replay-source"), [group])
    target = ctx.unique("replay-raw-target")
    create_topics(ctx.bootstrap, [target])
    progress(f"replay: filling the source topic with {n:,} events")
    ctx.child("benchmarks.consume:prefill", {"n": n, "topology": str(setup.path),
                                             "avro_topic": setup.topic}, timeout=600)

    def params(_round: int) -> dict[str, Any]:
        return {"n": n, "topic": setup.topic, "target": target, "group": group,
                "topology": str(setup.path), "payload_size": ctx.payload["avro_bytes"]}

    contenders = [Contender("raw", "consume → produce pipe, confluent-kafka",
                            "benchmarks.replay:raw_pipe", params)]
    missing = replay_api_missing()
    if missing is None:
        contenders.append(Contender("tidings", "`tidings replay` copy mode "
                                    "(`plan_replay` + `execute_replay`)",
                                    "benchmarks.replay:tidings", params))
    rows = alternate(ctx, "replay", contenders, rounds)
    if missing is not None:
        rows.append(Row("tidings", "`tidings replay` copy mode", unavailable=missing))
    delete_topics(ctx.bootstrap, [target, setup.topic, f"{setup.topic}.{group}.replay"])
    return ScenarioResult(
        "replay", "4. Replay copy", f"{n:,} events copied from a topic into another "
        "(the group's replay topic for Tidings), events/s.",
        rows, ["msgs", "runs", "mb", "ratio", "peak"],
    )

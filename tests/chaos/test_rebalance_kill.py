"""A consumer killed (SIGKILL) in the middle of the rebalance a second instance causes by
joining: no effect happens twice, and committed offsets never move back.

Inventory runs as real ``tidings run`` processes on the chaos cluster. Each round
publishes a burst of slow orders (10 ms each), so that the instance holding the
partitions is busy with them when a new instance starts and joins. Once the broker
reports the group preparing a rebalance and the holder's poll loop has been stuck in its
revoke for a second (waiting for its handlers; its offsets not committed yet), one of
the two is killed: in two rounds the holder, giving its partitions up, in one the
instance joining. All along, a sampler reads the group's committed offsets and then the
latest effect committed, so that afterwards each sample can be checked against the
effects table: a committed offset never moves back, and never passes an event whose
effect was not committed before it.
"""

from __future__ import annotations

import threading
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from chaos_support import Shop, an_order, lag, make_shop
from confluent_kafka import ConsumerGroupState, KafkaException
from process_support import Run, committed_offsets, fleet, wait_until

from tidings.kafka_clients import admin_client
from tidings.kafka_local import LocalCluster
from tidings.producer.publisher import Delivery, Publisher

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

#: Orders per round, 10 ms each in the handler (two workers: at most 200 a second), so
#: the holder still has hundreds in flight when the joining instance has started.
BURST, SLOW = 2_000, "slow:0.01"
#: The broker's group.min.session.timeout.ms: how long a killed member keeps the group
#: waiting before the broker gives its partitions to the others.
SESSION_TIMEOUT = 6
#: Whose instance each round kills: the one giving its partitions up, or the one joining.
ROUNDS = ("leaving", "leaving", "joining")
#: The poll loop turns every 100 ms or so; stuck a second, it is inside a rebalance
#: callback, here the revoke that waits for the events in flight before committing.
IN_REVOKE = 1.0


@dataclass
class Sample:
    """The group's committed offset per partition, then the rowid of the latest effect."""

    offsets: dict[int, int]
    last_effect: int


class OffsetSampler:
    """Samples the group in a thread, five times a second, and when asked to."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.samples: list[Sample] = []
        self._lock = threading.Lock()  # samples stay in the order they were taken
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> Sample:
        with self._lock:
            offsets = committed_offsets(self.shop.bootstrap, self.shop.group("inventory"),
                                        self.shop.topic)
            # Read second: an effect committed before its offset is visible by now.
            taken = Sample(offsets, self.shop.last_effect("inventory"))
            self.samples.append(taken)
            return taken

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            with suppress(KafkaException):  # a slow answer: the next sample comes soon
                self.sample()

    def __enter__(self) -> OffsetSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@dataclass
class Kill:
    role: str               # "leaving" or "joining"
    in_revoke_for: float    # seconds the holder's poll loop had been in its revoke
    in_flight: float        # events the holder had handed to its workers, not finished
    done_uncommitted: int   # events with their effect committed but not their offset


def rebalancing(admin: Any, group: str) -> bool:
    description = admin.describe_consumer_groups([group], request_timeout=30)[group]
    return bool(description.result(timeout=30).state
                == ConsumerGroupState.PREPARING_REBALANCING)


def alone(admin: Any, group: str) -> bool:
    """Whether the group is stable with one member (a killed one has been removed)."""
    description = admin.describe_consumer_groups([group], request_timeout=30)[group]
    found = description.result(timeout=30)
    return bool(found.state == ConsumerGroupState.STABLE and len(found.members) == 1)


def check_offsets(samples: list[Sample], deliveries: list[Delivery],
                  rows: list[tuple[int, str]]) -> None:
    """Committed offsets never decrease, and every event below a committed offset had its
    effect committed by the time the offset was read."""
    first_effect: dict[str, int] = {}
    for rowid, event in rows:
        first_effect[event] = min(rowid, first_effect.get(event, rowid))
    by_partition: dict[int, dict[int, str]] = {}
    for delivery in deliveries:
        assert delivery.event_id is not None
        by_partition.setdefault(delivery.partition, {})[delivery.offset] = delivery.event_id
    # needed[p][c]: the rowid by which every event below offset c of p took effect.
    needed: dict[int, list[int]] = {}
    for partition, events in by_partition.items():
        assert sorted(events) == list(range(len(events))), "the log holds only these orders"
        latest, needed[partition] = 0, [0]
        for offset in range(len(events)):
            latest = max(latest, first_effect[events[offset]])
            needed[partition].append(latest)
    previous: dict[int, int] = {}
    for index, sample in enumerate(samples):
        for partition, offset in sample.offsets.items():
            if offset < 0:  # nothing committed yet
                continue
            assert offset >= previous.get(partition, 0), (
                f"sample {index}: partition {partition}'s committed offset moved back from "
                f"{previous[partition]} to {offset}")
            previous[partition] = offset
            assert needed[partition][offset] <= sample.last_effect, (
                f"sample {index}: partition {partition} committed up to {offset} before "
                f"the effects of the events below it")


@pytest.mark.timeout(600)
def test_a_consumer_killed_in_the_rebalance_a_joining_instance_causes_duplicates_nothing(
        healthy: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", healthy.bootstrap)
    shop = make_shop(tmp_path, healthy.bootstrap)
    group, topology = shop.group("inventory"), shop.root / "topology.yaml"
    url = f"sqlite:///{shop.database('inventory')}"
    admin = admin_client({"bootstrap.servers": shop.bootstrap})
    deliveries: list[Delivery] = []
    kills: list[Kill] = []
    skipped = 0.0
    with fleet(tmp_path, shop.bootstrap) as processes, \
            Publisher(shop.topology, "order-service") as publisher, \
            OffsetSampler(shop) as sampler:
        def start() -> Run:
            return processes.start(group, topology, url,
                                   extra_args=["--session-timeout", str(SESSION_TIMEOUT)])

        holder = start()
        wait_until(lambda: "assigned" in holder.text(), 90, "the first instance's partitions",
                   [holder])
        for role in ROUNDS:
            deliveries += publisher.publish_many([an_order(SLOW) for _ in range(BURST)])
            handled = shop.handled("inventory")
            wait_until(lambda h=handled: shop.handled("inventory") > h + 50, 60,
                       "the holder to be busy with the burst", [holder])
            joiner = start()
            wait_until(lambda h=holder: rebalancing(admin, group)
                       and h.metric("tidings_poll_age_seconds") > IN_REVOKE, 90,
                       "the joining instance's rebalance, the holder in its revoke",
                       [holder, joiner])
            in_revoke_for = holder.metric("tidings_poll_age_seconds")
            in_flight = holder.metric("tidings_events_in_flight")
            victim, survivor = (holder, joiner) if role == "leaving" else (joiner, holder)
            skipped += victim.metric("tidings_events_duplicates_skipped_total")
            processes.kill(victim)
            at_kill = sampler.sample()
            effects = set(shop.effects("inventory"))
            kills.append(Kill(role, in_revoke_for, in_flight, sum(
                1 for d in deliveries if d.event_id in effects
                and d.offset >= max(0, at_kill.offsets.get(d.partition, 0)))))
            wait_until(lambda: alone(admin, group), 120,
                       "the group to settle on the instance left", [survivor])
            handled = shop.handled("inventory")
            wait_until(lambda h=handled: shop.handled("inventory") > h, 60,
                       "the instance left to go on handling events", [survivor])
            holder = survivor
        expected = {d.event_id for d in deliveries}
        wait_until(lambda: shop.handled("inventory") >= len(expected)
                   and expected <= set(shop.effects("inventory")), 180,
                   "every order to take effect", [holder])
        wait_until(lambda: lag(shop.bootstrap, group, shop.topic) == 0, 60,
                   "the group's lag to return to 0", [holder])
        sampler.sample()
        skipped += holder.metric("tidings_events_duplicates_skipped_total")
        code, _ = processes.terminate(holder, 60)
    assert code == 0, holder.text()[-3000:]
    effects = shop.effects("inventory")
    assert set(effects) == expected
    assert [e for e, n in effects.items() if n > 1] == [], "an effect happened twice"
    check_offsets(sampler.samples, deliveries, shop.effect_rows("inventory"))
    # A kill with nothing handled-but-uncommitted would redeliver nothing: the rounds
    # would not test what they are for.
    assert sum(k.done_uncommitted for k in kills if k.role == "leaving") > 0, kills
    print(f"\nchaos kill during a rebalance: {len(kills)} SIGKILLs while the group was "
          "preparing a rebalance a joining instance caused: " + "; ".join(
              f"the {k.role} instance, holder {k.in_revoke_for:.1f} s into its revoke with "
              f"{k.in_flight:.0f} in flight, {k.done_uncommitted} effects committed but not "
              f"their offsets" for k in kills)
          + f"; {len(deliveries)} orders, {len(effects)} effects, duplicated effects "
          f"{sum(n - 1 for n in effects.values())}; {skipped:.0f} redelivered events "
          f"skipped as done; {len(sampler.samples)} samples of committed offsets, none "
          f"moved back or passed an effect; lag 0")

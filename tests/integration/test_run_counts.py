"""``tidings run``'s closing summary and /metrics count each event once.

A batch group once reported ``done: 605 processed`` for 55 events: its outcomes were
counted once per partition of the batch. Here a batch group runs as a process over
three partitions, gets 55 deliveries (50 events and 5 redeliveries of them), and its
``done:`` line and /metrics must both say exactly that.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from process_support import fleet, wait_until
from runtime_support import make_group
from shop_support import an_order

from tidings.producer.publisher import Publisher

pytestmark = pytest.mark.integration


def test_a_batch_groups_counters_equal_its_events(
    tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    group = make_group(tmp_path, batch=True)  # 3 partitions, batches of up to 50
    with Publisher(group.topology, "order-service") as publisher:
        prepared = [publisher.prepare(an_order()) for _ in range(50)]
        publisher.send_all(prepared)
        publisher.send_all(prepared[::10])  # five redeliveries, same event ids
    with fleet(tmp_path, kafka_bootstrap) as processes:
        run = processes.start(group.name, group.topology.path, group.database_url)
        wait_until(lambda: run.metric("tidings_events_processed_total")
                   + run.metric("tidings_events_duplicates_skipped_total") >= 55, 90,
                   "all 55 deliveries", [run])
        wait_until(lambda: len(group.effects()) == 50, 30, "the effects", [run])
        scraped = {name: run.metric(f"tidings_events_{name}_total")
                   for name in ("consumed", "processed", "duplicates_skipped")}
        code, _ = processes.terminate(run, 60)
    assert code == 0, run.text()[-3000:]
    assert scraped == {"consumed": 55, "processed": 50, "duplicates_skipped": 5}
    assert run.done_counts() == {"processed": 50, "duplicate": 5}, run.text()[-3000:]
    assert len(group.effects()) == 50

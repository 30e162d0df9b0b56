"""Read each consumer service's counters from its /metrics endpoint."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

COUNTERS = {
    "tidings_events_processed": "processed",
    "tidings_events_duplicates_skipped": "duplicates",
    "tidings_events_retried": "retried",
    "tidings_events_dead_lettered": "dead_lettered",
}


@dataclass
class GroupCounts:
    processed: int = 0
    duplicates: int = 0
    retried: int = 0
    dead_lettered: int = 0
    in_flight: int = 0
    lag: int = 0
    reachable: bool = False

    def line(self) -> str:
        return (f"{self.processed:>5} done {self.duplicates:>2} dup {self.retried:>2} retry "
                f"{self.dead_lettered:>2} dlq")


def scrape(port: int) -> GroupCounts:
    counts = GroupCounts()
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return counts
    counts.reachable = True
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name.endswith("_total") and family.name in COUNTERS:
                field = COUNTERS[family.name]
                setattr(counts, field, getattr(counts, field) + int(sample.value))
            elif sample.name == "tidings_events_in_flight":
                counts.in_flight += int(sample.value)
            elif sample.name == "tidings_consumer_lag":
                counts.lag += int(sample.value)
    return counts

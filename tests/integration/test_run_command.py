"""What a new team meets when it starts its own group with ``tidings run``: a broker that
does not answer, topics not applied yet, the ports and places it uses, where a new
group starts (``start_from``) and how fast a restarted static member is back."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from process_support import REPO, fleet, wait_until
from runtime_support import make_group, running
from shop_support import an_order, eventually

from tidings.producer.publisher import Publisher
from tidings.topology import load_topology, sync

pytestmark = pytest.mark.integration


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once it is closed


def tidings_run(root: Path, group: str, env: dict[str, str],
                *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidings", "run", group, "-f", str(root / "topology.yaml"),
         "--database", f"sqlite:///{root / 'run.db'}", *args],
        cwd=root, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=120, check=False)


def test_an_unreachable_broker_fails_fast_in_one_line_naming_it(
    tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    group = make_group(tmp_path)
    nowhere = f"127.0.0.1:{closed_port()}"
    import os

    result = tidings_run(tmp_path, group.name, {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": nowhere})
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("tidings:")]
    assert errors == [errors[-1]] and nowhere in errors[0] and "no Kafka broker" in errors[0]
    assert "consuming" not in result.stderr


def test_a_group_started_before_apply_names_the_missing_topics_and_creates_none(
    tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    group = make_group(tmp_path)
    # A second group, added to the file but not applied.
    path = tmp_path / "topology.yaml"
    text = path.read_text()
    module = group.name.replace("-", "_")
    handler = re.search(r"handler: (\S+)", text)
    assert handler is not None
    path.write_text(text + f"  {group.prefix}loyalty2:\n    subscribes: [order.created]\n"
                    f"    handler: {handler.group(1)}\n    retry: [1s]\n")
    import os

    result = tidings_run(tmp_path, f"{group.prefix}loyalty2", dict(os.environ))
    assert result.returncode == 1, result.stderr + module
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    dlq = f"{group.topic}.{group.prefix}loyalty2.dlq"
    retry = f"{group.topic}.{group.prefix}loyalty2.retry.1s"
    assert f"group {group.prefix}loyalty2 cannot start" in message
    assert dlq in message and retry in message and "tidings topology apply" in message
    # Nothing was auto-created with the broker's defaults: the plan still creates them
    # with the declared layout.
    view = sync.connect(load_topology(path))
    planned = {change.topic for change in sync.plan(view).changes}
    assert {dlq, retry} <= planned


def test_the_service_logs_where_it_runs_and_the_metrics_port_it_picked(
    tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    group = make_group(tmp_path)
    with fleet(tmp_path, kafka_bootstrap) as processes:
        run = processes.start(group.name, group.topology.path, group.database_url,
                              extra_args=["--metrics-port", "0"])
        line = wait_until(lambda: re.search(r"consuming .*", run.text()), 60, "the start line",
                          [run])
        started = line.group(0)
        assert kafka_bootstrap in started and group.database_url in started
        port = re.search(r"metrics http://127\.0\.0\.1:(\d+)/metrics", started)
        assert port is not None and port.group(1) != "0", started
        body = urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/metrics",
                                      timeout=10).read().decode()
        assert "tidings_events_in_flight" in body


LATE_GROUP = """\
  {p}late:
    subscribes: [order.created]
    handler: {handler}
    start_from: {start_from}
"""


@pytest.mark.parametrize("start_from", ["latest", "moment"])
def test_a_new_group_starts_where_start_from_says_and_keeps_that_start(
    tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, start_from: str
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    group = make_group(tmp_path)
    with Publisher(group.topology, "order-service") as publisher:
        history = publisher.publish_many([an_order() for _ in range(20)])
        time.sleep(0.5)
        moment = datetime.now(UTC)
        time.sleep(0.5)
        if start_from == "moment":
            later = publisher.publish_many([an_order() for _ in range(7)])
    path = group.topology.path
    text = path.read_text()
    handler = re.search(r"handler: (\S+)", text)
    assert handler is not None
    value = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z") \
        if start_from == "moment" else "latest"
    path.write_text(text + LATE_GROUP.format(p=group.prefix, handler=handler.group(1),
                                             start_from=f'"{value}"'))
    topology = load_topology(path)
    view = sync.connect(topology)
    sync.apply(view, sync.plan(view))
    late = type(group)(group.root, group.prefix, topology, f"{group.prefix}late",
                       f"sqlite:///{tmp_path / 'late.db'}")
    with running(late.runtime(commit_interval=0.2)) as runtime:
        eventually(lambda: runtime.assigned, 30, "the assignment")
        with Publisher(group.topology, "order-service") as publisher:
            fresh = publisher.publish_many([an_order() for _ in range(5)])
        expected = {d.event_id for d in fresh}
        if start_from == "moment":
            expected |= {d.event_id for d in later}
        eventually(lambda: {e[0] for e in late.effects()} == expected, 30,
                   "the new group to apply only what its start_from covers")
    # Restarted, it keeps its start: nothing of the history shows up.
    with running(late.runtime(commit_interval=0.2)):
        time.sleep(2.0)
    assert {e[0] for e in late.effects()} == expected
    assert not {d.event_id for d in history} & expected


def test_a_restarted_static_member_gets_its_partitions_back_before_its_session_expires(
    tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    group = make_group(tmp_path)
    session = 60.0  # a dynamic member's partitions would wait this long after a kill -9
    args = ["--instance-id", "pod-0", "--session-timeout", str(session)]
    with fleet(tmp_path, kafka_bootstrap) as processes:
        first = processes.start(group.name, group.topology.path, group.database_url,
                                extra_args=args)
        wait_until(lambda: "assigned 12 partition(s)" in first.text(), 60, "the first start",
                   [first])
        assert f"static member {group.name}-pod-0" in first.text()
        processes.kill(first)
        killed_at = time.monotonic()
        second = processes.start(group.name, group.topology.path, group.database_url,
                                 extra_args=args)
        with Publisher(group.topology, "order-service") as publisher:
            deliveries = publisher.publish_many([an_order() for _ in range(6)])
        wait_until(lambda: {e[0] for e in group.effects()} == {d.event_id for d in deliveries},
                   session, "the restarted member to process", [second])
        back_after = time.monotonic() - killed_at
    assert back_after < session, f"waited out the session ({back_after:.1f}s)"
    print(f"\nstatic member back and processing {back_after:.1f}s after kill -9 "
          f"(session timeout {session:.0f}s)")

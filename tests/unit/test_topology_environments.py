"""One topology.yaml, several environments: each resolves, each mistake names its line."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tidings.cli import main
from tidings.errors import ConfigError
from tidings.settings import kafka_client_config
from tidings.topology import TopologyInvalid, environments, load_topology, model
from tidings.topology import load as load_module
from tidings.topology.load import load_environments, resolve_file

REPO = Path(__file__).resolve().parents[2]

BASE = """\
name: env-test
defaults:
  partitions: 3
  replication_factor: 1
  config:
    min.insync.replicas: 1
topics:
  orders:
    partitions: 6
    config:
      retention.ms: 1d
      segment.ms: 1h
events:
  order.created: {topic: orders, schema: schemas/order.created.v1.avsc, key: order_id}
producers:
  shop:
    publishes: [order.created]
consumers:
  inventory:
    subscribes: [order.created]
    handler: json:dumps
    retry: [10s, 1m]
environments:
  prod:
    cluster:
      brokers: 3
    defaults:
      replication_factor: 3
      config:
        min.insync.replicas: 2
    topics:
      orders:
        partitions: 12
        config:
          segment.ms: null
    consumers:
      inventory:
        retry: [30s]
        concurrency: 4
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "schemas").mkdir()
    shutil.copy(REPO / "schemas" / "order.created.v1.avsc", tmp_path / "schemas")
    return tmp_path


def write(workdir: Path, text: str) -> Path:
    path = workdir / "topology.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def line_of(text: str, needle: str, after: str = "environments:") -> int:
    """The 1-based line of the first ``needle`` after the line holding ``after``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if after in line)
    return next(i for i, line in enumerate(lines) if i >= start and needle in line) + 1


def problems_of(path: Path, **kwargs: object) -> list[tuple[int | None, str]]:
    with pytest.raises(TopologyInvalid) as caught:
        load_topology(path, **kwargs)  # type: ignore[arg-type]
    return [(p.line, p.message) for p in caught.value.problems]


def test_local_is_the_file_as_written(workdir: Path) -> None:
    topology = load_topology(write(workdir, BASE))
    assert topology.env == "local"
    assert topology.environments == ("local", "prod")
    assert topology.replication_of("orders") == 1
    assert topology.partitions_of("orders") == 6
    assert topology.topic_config("orders") == {
        "min.insync.replicas": "1", "retention.ms": "86400000", "segment.ms": "3600000"}
    assert [d.label for d in topology.consumers["inventory"].retry] == ["10s", "1m"]


def test_prod_merges_its_overrides_key_by_key(workdir: Path) -> None:
    path = write(workdir, BASE)
    topology = load_topology(path, env="prod")
    assert topology.env == "prod"
    assert topology.cluster.brokers == 3
    assert topology.replication_of("orders") == 3
    assert topology.partitions_of("orders") == 12
    # Mappings merge (retention.ms stays), null removes (segment.ms), lists replace.
    assert topology.topic_config("orders") == {
        "min.insync.replicas": "2", "retention.ms": "86400000"}
    inventory = topology.consumers["inventory"]
    assert [d.label for d in inventory.retry] == ["30s"]
    assert inventory.concurrency == 4
    assert inventory.handler == "json:dumps"
    names = [t.name for t in topology.desired_topics()]
    assert "orders.inventory.retry.30s" in names and "orders.inventory.retry.10s" not in names
    derived = {t.name: t for t in topology.desired_topics()}["orders.inventory.retry.30s"]
    assert (derived.partitions, derived.replication_factor) == (12, 3)


def test_resolved_lines_point_at_the_override(workdir: Path) -> None:
    text = textwrap.dedent(BASE)
    topology = load_topology(write(workdir, BASE), env="prod")
    assert topology.line_of(("defaults", "replication_factor")) == \
        line_of(text, "replication_factor: 3")
    assert topology.line_of(("topics", "orders", "partitions")) == \
        line_of(text, "partitions: 12")
    assert topology.line_of(("consumers", "inventory", "retry", 0)) == \
        line_of(text, "retry: [30s]")
    # What the environment leaves alone keeps the line it has in the file.
    assert topology.line_of(("topics", "orders", "config", "retention.ms")) == \
        line_of(text, "retention.ms: 1d", after="topics:")


def test_tidings_env_chooses_the_environment_and_env_wins(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(workdir, BASE)
    monkeypatch.setenv("TIDINGS_ENV", "prod")
    assert load_topology(path).replication_of("orders") == 3
    assert load_topology(path, env="local").replication_of("orders") == 1


def test_the_shop_declares_local_and_prod() -> None:
    local = load_topology(REPO / "topology.yaml", env="local")
    prod = load_topology(REPO / "topology.yaml", env="prod")
    assert local.environments == ("local", "prod")
    assert (local.replication_of("orders"), prod.replication_of("orders")) == (1, 3)
    assert (local.partitions_of("orders"), prod.partitions_of("orders")) == (12, 24)
    assert prod.topic_config("orders")["min.insync.replicas"] == "2"
    assert prod.cluster.bootstrap_servers == "${PROD_KAFKA_BOOTSTRAP}"
    assert local.cluster.bootstrap_servers is None
    dlq = {t.name: t for t in prod.desired_topics()}["orders.inventory.dlq"]
    assert dlq.config["retention.ms"] == str(60 * 86_400_000)
    assert prod.consumers["email"].concurrency == 32


# (what to replace in BASE, what to put instead, the line's text, words of the message)
INVALID = [
    pytest.param("      orders:\n        partitions: 12\n",
                 "      payments:\n        partitions: 12\n", "payments:",
                 "[prod] environments.prod.topics.payments overrides topic 'payments', which is "
                 "not declared under topics", id="override-of-a-missing-topic"),
    pytest.param("      replication_factor: 3\n", "      replication_factor: 4\n",
                 "replication_factor: 4",
                 "[prod] topic 'orders': replication factor 4 is larger than the cluster "
                 "(3 brokers)", id="replication-above-the-known-brokers"),
    pytest.param("        min.insync.replicas: 2\n", "        min.insync.replicas: 3\n",
                 "min.insync.replicas: 3",
                 "[prod] topic 'orders': min.insync.replicas=3 equals its replication factor",
                 id="min-insync-equals-replication"),
    pytest.param("        min.insync.replicas: 2\n", "        min.insync.replicas: 4\n",
                 "min.insync.replicas: 4",
                 "[prod] topic 'orders': min.insync.replicas=4 is more than its replication "
                 "factor 3", id="min-insync-above-replication"),
    pytest.param("        partitions: 12\n", "        partitions: 0\n", "partitions: 0",
                 "[prod] topics.orders.partitions must be at least 1 (got 0)",
                 id="bad-value-in-an-override"),
    pytest.param("    topics:\n      orders:\n", "    topic:\n      orders:\n", "topic:",
                 "[prod] unknown key 'topic' in environments.prod (did you mean 'topics'?)",
                 id="unknown-section"),
    pytest.param("    consumers:\n", "    events:\n      order.created: {key: id}\n"
                 "    consumers:\n", "    events:",
                 "[prod] environments.prod.events: events are the same in every environment",
                 id="events-are-fixed"),
    pytest.param("        concurrency: 4\n", "        handler: json:loads\n", "json:loads",
                 "[prod] environments.prod.consumers.inventory.handler: handler is the same in "
                 "every environment", id="handlers-are-fixed"),
    pytest.param("    cluster:\n", "    cluster:\n      properties: {sasl.password: hunter2}\n",
                 "hunter2", "[prod] sasl.password looks like a secret", id="secret-in-an-env"),
    pytest.param("    cluster:\n", "    cluster:\n      bootstrap_servers: ${KAFKA\n",
                 "${KAFKA", "malformed reference", id="malformed-reference"),
]


@pytest.mark.parametrize(("old", "new", "at", "message"), INVALID)
def test_a_mistake_in_an_environment_names_its_line(
    workdir: Path, old: str, new: str, at: str, message: str
) -> None:
    text = textwrap.dedent(BASE)
    assert old in text, "the test's anchor text must exist in the file"
    broken = text.replace(old, new, 1)
    path = write(workdir, broken)
    expected = line_of(broken, at)
    found = problems_of(path, env="prod")
    assert any(line == expected and message in m for line, m in found), \
        f"expected line {expected}: {message!r}; got {found}"
    # `validate` resolves every environment, so it finds the mistake too.
    with pytest.raises(TopologyInvalid) as caught:
        load_environments(path)
    assert any(p.line == expected and message in p.message for p in caught.value.problems)


def test_an_environment_that_is_not_declared_is_one_clear_error(workdir: Path) -> None:
    path = write(workdir, BASE)
    found = problems_of(path, env="staging")
    assert found == [(line_of(BASE, "environments:"),
                      "environment 'staging' is not declared under environments "
                      "(declared: local, prod)")]
    assert problems_of(path, env="prd")[0][1].startswith(
        "environment 'prd' is not declared under environments (did you mean 'prod'?")


def test_validate_reports_what_only_one_environment_breaks_once_and_labelled(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = textwrap.dedent(BASE).replace("      replication_factor: 3\n",
                                         "      replication_factor: 4\n")
    text = text.replace("retry: [10s, 1m]", "retry: [10s, soon]")  # broken everywhere
    path = write(workdir, text)
    code = main(["topology", "validate", "-f", str(path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("'soon' is not a duration") == 1
    assert f"topology.yaml:{line_of(text, 'replication_factor: 4')}: [prod] topic 'orders': " \
           "replication factor 4 is larger than the cluster" in err
    assert err.strip().endswith(f"2 problems in {path}")


def test_validate_names_every_environment_it_checked() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tidings", "topology", "validate"],
        capture_output=True, text=True, cwd=REPO, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("topology.yaml: valid in local, prod — ")


def test_a_section_added_to_the_model_can_be_overridden_per_environment(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Any section the model registers is overridable with no change to environments.py;
    # here a hypothetical one keyed by service (the real deploy: section has its own test
    # in test_deploy_section.py).
    class PlacementSpec(model._Strict):
        replicas: int = 1

    monkeypatch.setitem(model.SECTION_ENTRY_MODELS, "placement", PlacementSpec)
    monkeypatch.setitem(environments.OVERRIDE_NAMES, "placement",
                        ("placement", "producers", "consumers"))
    monkeypatch.setattr(load_module, "TOP_LEVEL_KEYS", (*model.TOP_LEVEL_KEYS, "placement"))
    text = textwrap.dedent(BASE).replace("environments:\n", "placement:\n  inventory:\n"
                                         "    replicas: 2\nenvironments:\n")
    text += "    placement:\n      inventory: {replicas: 6}\n      shop: {replicas: 3}\n"
    path = write(workdir, text)
    load_topology(path, env="prod")
    resolved = resolve_file(path, "prod")
    assert resolved.data["placement"] == {"inventory": {"replicas": 6}, "shop": {"replicas": 3}}
    assert resolved.lines[("placement", "inventory", "replicas")] == \
        line_of(text, "inventory: {replicas: 6}")
    # A service, not just an entry of placement:, may be named; an unknown one may not.
    broken = text.replace("shop: {replicas: 3}", "shoop: {replicas: 3}")
    found = problems_of(write(workdir, broken), env="prod")
    assert any("overrides placement 'shoop', which is not declared under placement or producers "
               "or consumers" in m for _, m in found), found


def test_show_prints_what_prod_gets_with_the_override_lines(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = textwrap.dedent(BASE)
    path = write(workdir, BASE)
    assert main(["topology", "show", "--env", "prod", "-f", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"  replication_factor: 3  # prod: line {line_of(text, 'replication_factor: 3')}" \
        in out
    assert f"    retry: [30s]  # prod: line {line_of(text, 'retry: [30s]')}" in out
    assert "segment.ms" not in out
    shown = yaml.safe_load(out)
    assert "environments" not in shown
    assert shown["topics"]["orders"] == {"partitions": 12, "config": {"retention.ms": "1d"}}
    assert "#   orders.inventory.retry.30s" in out and "12 partitions, replication 3" in out


def test_cluster_settings_refer_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("TIDINGS_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("PROD_KAFKA_BOOTSTRAP", "kafka-1.prod:9093")
    monkeypatch.setenv("PROD_KAFKA_PASSWORD", "s3cret")
    config = kafka_client_config(None, {"sasl.password": "${PROD_KAFKA_PASSWORD}"},
                                 "${PROD_KAFKA_BOOTSTRAP}")
    assert config["bootstrap.servers"] == "kafka-1.prod:9093"
    assert config["sasl.password"] == "s3cret"
    monkeypatch.delenv("PROD_KAFKA_PASSWORD")
    with pytest.raises(ConfigError, match=r"cluster.properties.sasl.password refers to "
                       r"\$\{PROD_KAFKA_PASSWORD\}, which is not set"):
        kafka_client_config(None, {"sasl.password": "${PROD_KAFKA_PASSWORD}"}, None)

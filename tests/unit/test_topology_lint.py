"""The production lint: each warning at the line that sets the value; --strict fails."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tidings.cli import main
from tidings.topology import load_topology
from tidings.topology.lint import lint_topology

REPO = Path(__file__).resolve().parents[2]

FILE = """\
name: lint-test
defaults:
  partitions: 3
  replication_factor: 1
topics:
  orders:
    config:
      retention.ms: 7d
  cancellations:
    replication_factor: 3
    config:
      retention.ms: 7d
      min.insync.replicas: 2
events:
  order.created: {topic: orders, schema: schemas/order.created.v1.avsc, key: order_id}
  order.cancelled: {topic: cancellations, schema: schemas/order.cancelled.v1.avsc, key: order_id}
consumers:
  inventory:
    subscribes: [order.created]
    handler: json:dumps
    retry: [10s]
    dlq_config:
      retention.ms: 1d
  billing:
    subscribes: [order.cancelled]
    handler: json:dumps
    retry: [1m, 1h]
environments:
  prod:
    defaults:
      replication_factor: 2
      config:
        min.insync.replicas: 1
    topics:
      cancellations:
        config:
          retention.ms: 30m
"""


@pytest.fixture
def path(tmp_path: Path) -> Path:
    (tmp_path / "schemas").mkdir()
    for name in ("order.created.v1.avsc", "order.cancelled.v1.avsc"):
        shutil.copy(REPO / "schemas" / name, tmp_path / "schemas")
    file = tmp_path / "topology.yaml"
    file.write_text(FILE)
    return file


def line(text: str, after: str | None = None) -> int:
    lines = FILE.splitlines()
    start = next(i for i, item in enumerate(lines) if after in item) if after else 0
    return next(i for i, item in enumerate(lines) if i >= start and text in item) + 1


EXPECTED = [
    ("replication_factor: 2", None,
     "[prod] topic 'orders': replication factor 2 is below 3"),
    ("min.insync.replicas: 1", None,
     "[prod] topic 'orders': min.insync.replicas=1 is below 2"),
    ("retention.ms: 30m", None,
     "[prod] topic 'cancellations': retention.ms=1800000 (30m) is shorter than billing's "
     f"longest retry tier 1h (line {line('retry: [1m, 1h]')}); an event waiting in "
     "cancellations.billing.retry.1h is deleted before it is due"),
    ("retention.ms: 1d", "dlq_config",
     "[prod] orders.inventory.dlq keeps dead letters 1d, less than its source topic 'orders' "
     "keeps events (7d)"),
]


def test_each_lint_fires_at_its_line(path: Path) -> None:
    found = [(w.line, w.message, w.severity)
             for w in lint_topology(load_topology(path, env="prod"))]
    assert len(found) == len(EXPECTED), found
    for text, after, message in EXPECTED:
        want = line(text, after)
        assert any(at == want and message in m and severity == "warning"
                   for at, m, severity in found), f"line {want}: {message!r}; got {found}"


def test_validate_prints_warnings_for_prod_only_and_passes(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["topology", "validate", "-f", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "valid in local, prod" in out
    assert f"topology.yaml:{line('replication_factor: 2')}: warning: [prod] topic 'orders': " \
           "replication factor 2 is below 3" in err
    assert "[local]" not in err, "local is not linted unless asked"
    assert err.count("warning: ") == len(EXPECTED)


def test_strict_turns_the_warnings_into_errors(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["topology", "validate", "--strict", "-f", str(path)]) == 1
    err = capsys.readouterr().err
    assert "warning:" not in err
    assert f"topology.yaml:{line('retention.ms: 30m')}: [prod] topic 'cancellations': " in err
    assert err.strip().endswith(f"{len(EXPECTED)} problems in {path}")
    assert main(["topology", "lint", "--strict", "-f", str(path)]) == 1


def test_the_lint_command_and_its_switches(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["topology", "lint", "-f", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.strip().endswith(f"lint of prod: {len(EXPECTED)} warnings")
    assert main(["topology", "lint", "--env", "local", "-f", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "warning: [local] topic 'orders': min.insync.replicas is not set" in err
    assert "warning: [local] topic 'orders': replication factor 1 is below 3" in err
    assert main(["topology", "validate", "--no-lint", "-f", str(path)]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["topology", "validate", "--env", "local", "--lint", "-f", str(path)]) == 0
    assert "warning: [local]" in capsys.readouterr().err


def test_the_shop_is_production_grade_in_prod(capsys: pytest.CaptureFixture[str]) -> None:
    assert lint_topology(load_topology(REPO / "topology.yaml", env="prod")) == []
    assert main(["topology", "lint", "--strict", "-f", str(REPO / "topology.yaml")]) == 0
    assert "lint of prod: no warnings" in capsys.readouterr().out

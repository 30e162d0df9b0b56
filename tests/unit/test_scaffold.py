"""``tidings new``: entries added to topology.yaml with its comments kept, and code that
passes ``tidings topology validate`` and its own generated test at once.

Runs on a copy of the shop (topology.yaml, schemas, services) in a temp directory, with
the commands as a user types them."""

from __future__ import annotations

import difflib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tidings.errors import TidingsError
from tidings.scaffold import consumer as scaffold_consumer
from tidings.scaffold import new_consumer
from tidings.topology import TopologyInvalid
from tidings.topology.source import Problem

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("schemas", "consumers", "producers"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=ignore)
    for name in ("topology.yaml", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    return tmp_path


def tidings(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tidings", *args], cwd=root,
                          capture_output=True, text=True, timeout=120, check=False)


def added_lines(before: str, after: str) -> list[str]:
    """The lines ``after`` adds to ``before``; fails if it changes or drops any."""
    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    assert [line for line in diff if line.startswith("- ")] == []
    return [line[2:] for line in diff if line.startswith("+ ")]


def test_new_event_and_consumers_validate_and_pass_their_tests_at_once(shop: Path) -> None:
    before = (shop / "topology.yaml").read_text()
    steps = [
        ("new", "event", "loyalty.points-earned", "--topic", "loyalty", "--key", "customer_id",
         "--fields", "customer_id:string,points:int,earned_at:timestamp,note:string?",
         "--publisher", "loyalty", "--doc", "A customer earned loyalty points."),
        ("new", "consumer", "loyalty", "--subscribes", "order.created,order.cancelled",
         "--retry", "10s,1m"),
        ("new", "consumer", "points-ledger", "--subscribes",
         "loyalty.points-earned,inventory.rejected", "--batch"),
    ]
    for step in steps:
        result = tidings(shop, *step)
        assert result.returncode == 0, result.stderr
        assert "warning" not in result.stdout, result.stdout
    after = (shop / "topology.yaml").read_text()
    assert added_lines(before, after) == [
        "  loyalty: {}",
        "  loyalty.points-earned:",
        "    topic: loyalty",
        "    schema: schemas/loyalty.points-earned.v1.avsc",
        "    key: customer_id",
        "    model: schemas.loyalty_points_earned:LoyaltyPointsEarned",
        "  loyalty:",
        "    publishes: [loyalty.points-earned]",
        "  loyalty:",
        "    subscribes: [order.created, order.cancelled]",
        "    handler: consumers.loyalty:handle",
        "    retry: [10s, 1m]",
        "    dlq: true",
        "  points-ledger:",
        "    subscribes: [loyalty.points-earned, inventory.rejected]",
        "    handler: consumers.points_ledger:handle_batch",
        "    dlq: true",
        "    batch: {max_events: 500, max_wait: 2s}",
    ]
    validate = tidings(shop, "topology", "validate")
    assert validate.returncode == 0, validate.stderr
    assert "11 events" in validate.stdout and "7 consumers" in validate.stdout  # 10 + 1, 5 + 2
    tests = sorted(str(p) for p in (shop / "tests" / "unit").glob("test_*_consumer.py"))
    assert [Path(t).name for t in tests] == ["test_loyalty_consumer.py",
                                            "test_points_ledger_consumer.py"]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          *tests], cwd=shop, capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "4 passed" in run.stdout


@pytest.mark.parametrize(("args", "words"), [
    (("consumer", "loyalty", "--subscribes", "order.shipped"),
     "--subscribes: no event order.shipped in topology.yaml"),
    (("consumer", "email", "--subscribes", "order.created"),
     "already declares consumer group 'email'"),
    (("consumer", "loyalty", "--subscribes", "order.created", "--retry", "soon"),
     "--retry: 'soon' is not a duration"),
    (("event", "order.created", "--topic", "orders"), "already declares event 'order.created'"),
    (("event", "loyalty.earned", "--topic", "loyalty", "--fields", "points:integer"),
     "unknown type 'integer'"),
])
def test_a_mistake_is_one_line_and_changes_nothing(shop: Path, args: tuple[str, ...],
                                                   words: str) -> None:
    before = sorted(p.relative_to(shop) for p in shop.rglob("*"))
    text = (shop / "topology.yaml").read_text()
    result = tidings(shop, "new", *args)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr, \
        result.stderr
    assert (shop / "topology.yaml").read_text() == text
    assert sorted(p.relative_to(shop) for p in shop.rglob("*")) == before


def test_a_result_that_does_not_validate_is_undone(shop: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    text = (shop / "topology.yaml").read_text()

    def invalid(path: Path) -> None:
        raise TopologyInvalid("topology.yaml", [Problem(70, "something is off")])

    monkeypatch.setattr(scaffold_consumer, "reload", invalid)
    with pytest.raises(TidingsError, match=r"topology\.yaml:70: something is off"):
        new_consumer(shop / "topology.yaml", "loyalty", ["order.created"], retry=[])
    assert (shop / "topology.yaml").read_text() == text
    assert not (shop / "consumers" / "loyalty").exists()
    assert list((shop / "tests" / "unit").iterdir()) == []

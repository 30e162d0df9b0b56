"""Plans a reviewer can read: markdown grouped by resource and topic, and CI exit codes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tidings.topology import load_topology
from tidings.topology.plan import (
    ClusterState,
    Grade,
    LiveConfig,
    LiveTopic,
    Resource,
    plan_topology,
)
from tidings.topology.review import Located, Review, ReviewItem, items_from_plan

REPO = Path(__file__).resolve().parents[2]

FILE = """\
name: review-test
defaults: {partitions: 6, replication_factor: 1}
topics:
  orders:
    config: {retention.ms: 1d}
events:
  order.created: {topic: orders, schema: schemas/order.created.v1.avsc, key: order_id}
consumers:
  inventory:
    subscribes: [order.created]
    handler: json:dumps
    retry: [10s]
"""


@pytest.fixture
def review(tmp_path: Path) -> Review:
    (tmp_path / "schemas").mkdir()
    shutil.copy(REPO / "schemas" / "order.created.v1.avsc", tmp_path / "schemas")
    (tmp_path / "topology.yaml").write_text(FILE)
    topology = load_topology(tmp_path / "topology.yaml")
    names = [t.name for t in topology.desired_topics()]
    day = LiveConfig("86400000", overridden=True)
    live = {name: LiveTopic(name, 3, 1, {"retention.ms": day}) for name in names}
    # A tier dropped from the file: its topic is still on the cluster, this topology's.
    live["orders.inventory.retry.5s"] = LiveTopic("orders.inventory.retry.5s", 3, 1,
                                                  {"retention.ms": day})
    state = ClusterState(brokers=1, topics=live, managed=frozenset(live))
    plan = plan_topology(topology.desired_topics(), state)
    return Review("Topology plan", "`review-test`, environment `local`",
                  "against `kafka:9092` (1 broker)", items=items_from_plan(plan, topology),
                  in_sync=plan.topics_in_sync)


def test_markdown_groups_a_topic_with_its_copies(review: Review) -> None:
    text = review.markdown()
    assert text.startswith("### Topology plan: `review-test`, environment `local`\n")
    assert "Against `kafka:9092` (1 broker): **5 changes: 4 caution, 1 destructive**." in text
    assert "> [!WARNING]" in text
    assert "| topic | change | grade | why |" in text
    # Four topics grow the same way: one row, the declared topic first, its copies under it.
    assert ("| `orders`<br>↳ `orders.inventory.retry.10s`<br>↳ `orders.inventory.dlq`<br>"
            "↳ `orders.inventory.replay` | partitions 3 → 6 | 🟡 caution | events of an "
            "existing key may land on a new partition") in text
    # The deleted tier topic is no longer in the file, yet it is grouped with orders.
    rows = [row for row in text.splitlines() if row.startswith("| ")]
    assert rows[-1].startswith("| ↳ `orders.inventory.retry.5s` | delete topic | "
                               "🔴 **destructive** |")


def test_every_resource_has_its_group_in_a_fixed_order(review: Review) -> None:
    review.items += [
        ReviewItem(Resource.SCHEMA, "order.created", Grade.SAFE, "writes v1 → v2",
                   "schemas check passes"),
        # ACLs are not managed yet; a change kind for them only names Resource.ACL.
        ReviewItem(Resource.ACL, "User:inventory", Grade.SAFE, "allow READ on orders"),
    ]
    text = review.markdown()
    headings = [line for line in text.splitlines() if line.startswith("#### ")]
    assert headings == ["#### Topics", "#### ACLs", "#### Schemas"]
    assert "| principal | change | grade | why |" in text
    assert "| `User:inventory` | allow READ on orders | 🟢 safe |  |" in text


def test_refusals_and_lint_warnings_are_listed_with_their_lines(review: Review) -> None:
    review.refusals.append(Located("orders: partitions 6 -> 3 refused | no way",
                                   "topology.yaml:4"))
    review.warnings.append(Located("[prod] topic 'orders': replication factor 1 is below 3",
                                   "topology.yaml:2"))
    text = review.markdown()
    assert "#### Refused\n\n- `topology.yaml:4` orders: partitions 6 -> 3 refused \\| no way" \
        in text
    assert "#### Production lint (1 warning)\n\n- `topology.yaml:2` [prod] topic 'orders'" in text


def test_no_changes_says_so() -> None:
    empty = Review("Topology plan", "`shop`, environment `prod`", "against `kafka:9092`",
                   in_sync=16)
    assert "No changes against `kafka:9092`. 16 topics in sync." in empty.markdown()


def item(grade: Grade) -> ReviewItem:
    return ReviewItem(Resource.TOPIC, "orders", grade, "a change")


@pytest.mark.parametrize(("grades", "refused", "detailed", "code"), [
    ([], False, True, 0),
    ([Grade.SAFE], False, True, 2),
    ([Grade.SAFE, Grade.CAUTION], False, True, 2),
    ([Grade.SAFE, Grade.DESTRUCTIVE], False, True, 3),
    ([Grade.SAFE], True, True, 1),
    ([Grade.DESTRUCTIVE], False, False, 0),
    ([], True, False, 1),
])
def test_detailed_exit_codes(grades: list[Grade], refused: bool, detailed: bool,
                             code: int) -> None:
    review = Review("t", "s", "a", items=[item(g) for g in grades],
                    refusals=[Located("refused")] if refused else [])
    assert review.exit_code(detailed) == code

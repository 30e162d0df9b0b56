"""A secure broker enforces the ACLs that ``topology apply`` derives from topology.yaml.

On the session's SASL_SSL/SCRAM-SHA-512 broker (StandardAuthorizer, nothing allowed
that no ACL allows), each service connects as its own principal with raw
confluent-kafka clients, so what is refused is refused by the broker, not by Tidings'
own checks. Every refusal is paired with the same client doing what it is allowed,
so a broker that refused everything would fail these tests too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from process_support import count_rows, fleet, wait_until
from shop_support import an_order

from tidings.kafka_local.security import load_security
from tidings.producer.publisher import Publisher
from tidings.testing import SecureKafka
from tidings.topology import load_topology

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

SHOP = """\
name: secure-{p}
defaults: {{partitions: 2, replication_factor: 1}}
topics:
  {p}orders: {{}}
  {p}inventory: {{}}
events:
  order.created:
    topic: {p}orders
    schema: schemas/order.created.v2.avsc
    key: order_id
    model: schemas:OrderCreated
  inventory.reserved:
    topic: {p}inventory
    schema: schemas/inventory.reserved.v1.avsc
    key: order_id
    model: schemas:InventoryReserved
producers:
  {p}shop: {{publishes: [order.created]}}
  {p}stock: {{publishes: [inventory.reserved]}}
consumers:
  {p}inventory:
    subscribes: [order.created]
    handler: secure_handlers:handle
    retry: [1s]
    dlq: true
  {p}email:
    subscribes: [order.created]
    handler: secure_handlers:handle
    dlq: true
"""

HANDLER = '''
def setup(connection, database):
    connection.execute("CREATE TABLE IF NOT EXISTS seen (event_id TEXT)")


def handle(event, ctx):
    ctx.db.execute(ctx.sql("INSERT INTO seen VALUES (?)"), (ctx.event_id,))
'''


@dataclass
class SecureShop:
    kafka: SecureKafka
    root: Path
    path: Path
    prefix: str

    def name(self, service: str) -> str:
        return f"{self.prefix}{service}"

    def cli(self, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith("TIDINGS_KAFKA_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
        return subprocess.run([sys.executable, "-m", "tidings", *args, "-f", str(self.path)],
                              cwd=self.root, env={**clean, **env, "PYTHONPATH": str(REPO)},
                              capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def shop(secure_kafka: SecureKafka, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[SecureShop]:
    root = tmp_path_factory.mktemp("secure-shop")
    prefix = f"s{uuid.uuid4().hex[:6]}-"
    shutil.copytree(REPO / "schemas", root / "schemas",
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (root / "secure_handlers.py").write_text(HANDLER)
    path = root / "topology.yaml"
    path.write_text(SHOP.format(p=prefix))
    secure_kafka.add_users(*(f"{prefix}{s}" for s in ("shop", "stock", "inventory", "email")))
    found = SecureShop(secure_kafka, root, path, prefix)
    applied = found.cli("topology", "apply", "-y", env=secure_kafka.env())
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert f"User:{prefix}shop WRITE TOPIC {prefix}orders" in applied.stdout, applied.stdout
    yield found


def delivery_error(config: dict[str, Any], topic: str) -> KafkaError | None:
    """Produce one record; the delivery report's error (None: it is in the log)."""
    producer = Producer({**config, "enable.idempotence": True, "message.timeout.ms": 15000})
    reports: list[KafkaError | None] = []
    producer.produce(topic, b"x", key=b"k", on_delivery=lambda err, _msg: reports.append(err))
    producer.flush(30)
    assert len(reports) == 1, "the delivery report came"
    return reports[0]


def first_fetch_error(config: dict[str, Any], group: str, topic: str) -> KafkaError | None:
    """Assign both partitions of ``topic`` under ``group``, poll, commit: the first error."""
    consumer = Consumer({**config, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(topic, p) for p in (0, 1)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                if message.error().code() == KafkaError._PARTITION_EOF:
                    continue
                return message.error()  # type: ignore[no-any-return]
            try:
                consumer.commit(message=message, asynchronous=False)
            except KafkaException as exc:
                return exc.args[0]  # type: ignore[no-any-return]
            return None
        raise AssertionError(f"no record and no error from {topic} under {group}")
    finally:
        consumer.close()


def test_plan_after_apply_says_no_changes_for_acls_too(shop: SecureShop) -> None:
    result = shop.cli("topology", "plan", env=shop.kafka.env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes" in result.stdout, result.stdout
    assert "ACL" in result.stdout, "the plan counts the ACLs it found in sync"


def test_a_service_is_refused_by_the_broker_what_it_does_not_publish(shop: SecureShop) -> None:
    as_shop = shop.kafka.config(shop.name("shop"))
    assert delivery_error(as_shop, shop.name("orders")) is None, "it publishes order.created"
    refused = delivery_error(as_shop, shop.name("inventory"))
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused
    # The consumer group may route its own failures, but never publish a domain event.
    as_inventory = shop.kafka.config(shop.name("inventory"))
    assert delivery_error(as_inventory, f"{shop.name('orders')}.{shop.name('inventory')}.dlq") \
        is None
    refused = delivery_error(as_inventory, shop.name("orders"))
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused


def test_a_group_cannot_read_another_groups_dlq_nor_consume_under_its_id(
        shop: SecureShop) -> None:
    as_email = shop.kafka.config(shop.name("email"))
    email, inventory = shop.name("email"), shop.name("inventory")
    orders = shop.name("orders")
    with Publisher(load_topology(shop.path, check_imports=False), shop.name("shop"),
                   producer_config=shop.kafka.config(shop.name("shop"))) as publisher:
        publisher.publish(an_order())
    assert delivery_error(shop.kafka.config(), f"{orders}.{inventory}.dlq") is None  # admin
    assert first_fetch_error(as_email, email, orders) is None, "email reads its subscription"
    refused = first_fetch_error(as_email, email, f"{orders}.{inventory}.dlq")
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused
    refused = first_fetch_error(as_email, inventory, orders)
    assert refused is not None and refused.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, refused


def test_a_wrong_password_is_one_line_naming_the_principal_and_the_servers(
        shop: SecureShop) -> None:
    env = {**shop.kafka.env(shop.name("shop")), "TIDINGS_KAFKA_SASL_PASSWORD": "not-it"}
    result = shop.cli("topology", "plan", env=env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert shop.name("shop") in lines[0] and shop.kafka.bootstrap in lines[0], lines[0]
    assert "not-it" not in result.stderr + result.stdout


def test_a_service_on_its_own_principal_works_and_logs_no_password(shop: SecureShop) -> None:
    group = shop.name("inventory")
    database = shop.root / "inventory.db"
    with Publisher(load_topology(shop.path, check_imports=False), shop.name("shop"),
                   producer_config=shop.kafka.config(shop.name("shop"))) as publisher:
        publisher.publish_many([an_order() for _ in range(5)])
    with fleet(shop.root, shop.kafka.bootstrap) as processes:
        processes.env = {k: v for k, v in processes.env.items()
                         if not k.startswith("TIDINGS_KAFKA_")}
        processes.env.update(shop.kafka.env(group))
        run = processes.start(group, shop.path, f"sqlite:///{database}",
                              extra_env={"TIDINGS_LOG_LEVEL": "DEBUG"})
        wait_until(lambda: count_rows(database, "SELECT COUNT(*) FROM seen") >= 5, 90,
                   "inventory to handle the orders as its own principal", [run])
        code, _ = processes.terminate(run, 60)
        assert code == 0, run.text()[-3000:]
    log = run.text()
    assert f"{group}: consuming" in log, log[-2000:]
    security = shop.kafka.security
    for user in [security.admin, *security.users.values()]:
        assert user.password not in log, f"{user.username}'s password is in the service log"


def test_the_demo_runs_on_the_secure_cluster_each_service_as_itself(
        secure_kafka: SecureKafka) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TIDINGS_KAFKA_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
    # TIDINGS_STATE_DIR makes the demo find the session's secure cluster as the dev cluster.
    result = subprocess.run(
        [sys.executable, "-m", "tidings", "demo", "--secure", "--orders", "40",
         "--timeout", "150"], cwd=REPO, capture_output=True, text=True, timeout=400,
        check=False, env={**env, "TIDINGS_STATE_DIR": str(secure_kafka.state_root)})
    out = result.stdout + result.stderr
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "Demo passed" in result.stdout and "0 sent twice" in result.stdout
    assert "Using the secure local Kafka cluster" in result.stdout
    # The demo created its users on the cluster: read them back from credentials.json.
    security = load_security(secure_kafka.cluster.state_dir)
    assert security is not None
    for service in ("order-service", "inventory", "email", "analytics", "order-status"):
        assert service in security.users, f"{service} has a user of its own"
    logs = "".join(p.read_text(errors="replace")
                   for p in (REPO / ".tidings" / "demo" / "logs").glob("*.log"))
    assert logs, "the services wrote logs"
    for user in [security.admin, *security.users.values()]:
        assert user.password not in out, f"{user.username}'s password in the demo's output"
        assert user.password not in logs, f"{user.username}'s password in a service log"

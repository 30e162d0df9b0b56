"""`tidings deploy render` writes objects the real Kubernetes, Strimzi and KEDA schemas accept,
and what topology.yaml says shows up in them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from manifest_schemas import CORE_KINDS, check_object

from tidings.topology import load_topology

REPO = Path(__file__).resolve().parents[2]
IMAGE = "registry.example/tidings-shop:1.0"


def render(topology: Path, out: Path, *extra: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "tidings", "deploy", "render", "--target", "k8s", "-f",
         str(topology), "--image", IMAGE, "--out", str(out), *extra],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    objects = []
    for path in sorted(out.glob("*.yaml")):
        assert path.read_text().startswith("# Rendered by `tidings deploy render`")
        objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return objects


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return render(REPO / "topology.yaml", tmp_path_factory.mktemp("shop"), "--namespace", "shop")


def test_every_rendered_object_of_the_shop_passes_its_real_schema(
        shop: list[dict[str, Any]]) -> None:
    kinds = {o["kind"] for o in shop}
    assert kinds == {"Deployment", "Service", "PodDisruptionBudget", "ScaledObject",
                     "KafkaTopic", "KafkaUser"}
    for obj in shop:
        check_object(obj)
        assert obj["metadata"]["namespace"] == "shop"
    print(f"\n{len(shop)} objects valid: " + ", ".join(
        f"{sum(o['kind'] == k for o in shop)} {k}" for k in sorted(kinds)))


def test_the_core_kinds_pass_kubernetes_validate_strict_on_the_command_line(
        shop: list[dict[str, Any]], tmp_path: Path) -> None:
    core = tmp_path / "core.yaml"
    core.write_text(yaml.safe_dump_all([o for o in shop if o["kind"] in CORE_KINDS]))
    tool = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run([str(tool), "--strict", str(core)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "INFO" in result.stdout and "ERROR" not in result.stdout


def test_a_wrong_field_is_caught_by_the_schemas(shop: list[dict[str, Any]]) -> None:
    """The checks can fail: a typo in each kind is refused."""
    import copy

    import jsonschema
    import kubernetes_validate

    for kind, mutate in [
        ("Deployment", lambda o: o["spec"]["template"]["spec"].update(gracePeriod=5)),
        ("KafkaTopic", lambda o: o["spec"].update(partitons=3)),
        ("KafkaUser", lambda o: o["spec"]["authorization"]["acls"][0].update(
            operations=["Scribble"])),
        ("ScaledObject", lambda o: o["spec"].update(maxReplicas=3)),
    ]:
        broken = copy.deepcopy(next(o for o in shop if o["kind"] == kind))
        mutate(broken)
        with pytest.raises((AssertionError, kubernetes_validate.ValidationError,
                            jsonschema.ValidationError)):
            check_object(broken)


def test_the_shop_renders_what_its_topology_declares(shop: list[dict[str, Any]]) -> None:
    topology = load_topology(REPO / "topology.yaml", check_imports=False)
    deployments = by_kind(shop, "Deployment")
    groups = set(topology.consumers)
    assert set(deployments) == groups | set(topology.producers)
    assert set(by_kind(shop, "Service")) == set(deployments)
    assert set(by_kind(shop, "PodDisruptionBudget")) == set(deployments)
    scaled = by_kind(shop, "ScaledObject")
    assert set(scaled) == groups
    for group in groups:
        partitions = max(topology.partitions_of(t) for t in topology.topics_of_consumer(group))
        spec = scaled[group]["spec"]
        assert 1 <= spec["maxReplicaCount"] <= partitions
        assert {t["metadata"]["consumerGroup"] for t in spec["triggers"]} == {group}
        pod = deployments[group]["spec"]["template"]
        container = pod["spec"]["containers"][0]
        assert container["command"] == ["tidings", "run"]
        assert container["args"][0] == group
        timeout = float(container["args"][container["args"].index("--shutdown-timeout") + 1])
        assert pod["spec"]["terminationGracePeriodSeconds"] > timeout
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["resources"]["requests"]
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == \
            str(container["ports"][0]["containerPort"])
        assert container["securityContext"]["runAsNonRoot"] is True
    assert scaled["inventory"]["spec"]["maxReplicaCount"] == 6  # deploy.services says so
    assert scaled["email"]["spec"]["maxReplicaCount"] == 12  # orders has 12 partitions
    order_service = deployments["order-service"]["spec"]["template"]["spec"]["containers"][0]
    assert order_service["command"] == ["python", "-m", "producers.order_service"]
    # Secrets only ever by reference.
    env = {e["name"]: e for e in order_service["env"]}
    assert env["ORDER_SERVICE_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == \
        {"name": "order-service-db", "key": "url"}
    assert env["TIDINGS_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == \
        {"name": "order-service", "key": "password"}


def test_kafka_topics_are_what_topology_apply_would_make(shop: list[dict[str, Any]]) -> None:
    topology = load_topology(REPO / "topology.yaml", check_imports=False)
    rendered = {o["spec"].get("topicName", o["metadata"]["name"]): o["spec"]
                for o in shop if o["kind"] == "KafkaTopic"}
    wanted = {t.name: t for t in topology.desired_topics()}
    assert set(rendered) == set(wanted)
    for name, topic in wanted.items():
        assert rendered[name]["partitions"] == topic.partitions
        assert rendered[name]["replicas"] == topic.replication_factor
        assert rendered[name].get("config", {}) == dict(topic.config)


def test_kafka_users_carry_the_derived_acls(shop: list[dict[str, Any]]) -> None:
    users = by_kind(shop, "KafkaUser")
    assert set(users) == {"order-service", "inventory", "email", "analytics", "order-status",
                          "webhooks", "scheduler", "tidings-operator"}

    def rules(user: str) -> set[tuple[str, str, str]]:
        return {(acl["resource"]["type"], acl["resource"].get("name", ""), op)
                for acl in users[user]["spec"]["authorization"]["acls"]
                for op in acl["operations"]}

    published = ("orders", "order-updates", "reminders", "stock-queries", "reports",
                 "shop.schedule", "shop.schedule.cancelled")  # the last two: publish later
    assert rules("order-service") == {
        *(("topic", t, op) for t in published for op in ("Write", "Describe")),
        ("topic", "order-service.replies", "Read"),  # replies to its requests
        ("group", "order-service.replies.", "Read"), ("cluster", "", "IdempotentWrite")}
    assert ("topic", "order-service.replies", "Write") in rules("inventory")  # it answers
    assert ("transactionalId", "shop.schedule.scheduler.", "Write") in rules("scheduler")
    email = rules("email")
    assert ("topic", "orders.email.retry.30s", "Write") in email
    assert ("group", "email", "Read") in email
    assert not [r for r in email if ".inventory." in r[1] or r[1] == "inventory"]
    assert all(u["spec"]["authentication"]["type"] == "scram-sha-512" for u in users.values())


def test_a_change_to_topology_yaml_shows_up_in_the_objects(tmp_path: Path) -> None:
    work = tmp_path / "shop"
    shutil.copytree(REPO / "schemas", work / "schemas",
                    ignore=shutil.ignore_patterns("__pycache__"))
    text = (REPO / "topology.yaml").read_text()
    (work / "topology.yaml").write_text(text)
    out = tmp_path / "out"
    before = render(work / "topology.yaml", out)
    assert "fraud" not in by_kind(before, "Deployment")

    changed = text.replace("    partitions: 12\n", "    partitions: 24\n", 1).replace(
        "consumers:\n", "consumers:\n  fraud:\n    subscribes: [order.created]\n"
        "    handler: consumers.fraud:handle\n    retry: [1m]\n", 1)
    assert changed != text
    (work / "topology.yaml").write_text(changed)
    after = render(work / "topology.yaml", out)

    assert by_kind(after, "Deployment")["fraud"]["spec"]["template"]["spec"]["containers"][0][
        "args"][0] == "fraud"
    assert by_kind(after, "ScaledObject")["fraud"]["spec"]["maxReplicaCount"] == 24
    assert by_kind(after, "ScaledObject")["email"]["spec"]["maxReplicaCount"] == 24
    topics = by_kind(after, "KafkaTopic")
    assert topics["orders"]["spec"]["partitions"] == 24
    assert topics["orders.fraud.retry.1m"]["spec"]["partitions"] == 24
    assert "orders.fraud.dlq" in topics and "orders.fraud.replay" in topics
    assert ("topic", "orders.fraud.dlq") in {
        (a["resource"]["type"], a["resource"].get("name"))
        for a in by_kind(after, "KafkaUser")["fraud"]["spec"]["authorization"]["acls"]}
    for obj in after:
        check_object(obj)

    # Removing the group again removes its file from the output directory.
    (work / "topology.yaml").write_text(text)
    render(work / "topology.yaml", out)
    assert not (out / "fraud.yaml").exists()

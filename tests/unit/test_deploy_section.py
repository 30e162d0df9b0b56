"""The deploy: section of topology.yaml: every mistake with its line; secrets only referenced."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tidings.deploy import DeployError, RenderOptions, render_k8s
from tidings.topology import TopologyInvalid, load_topology

REPO = Path(__file__).resolve().parents[2]

BASE = """\
name: deploy-test
topics:
  orders: {partitions: 4}
events:
  order.created: {topic: orders, schema: schemas/order.created.v1.avsc, key: order_id}
producers:
  shop: {publishes: [order.created]}
consumers:
  inventory:
    subscribes: [order.created]
    handler: json:dumps
    retry: [10s]
deploy:
"""


def write(tmp_path: Path, deploy: str) -> Path:
    (tmp_path / "schemas").mkdir(exist_ok=True)
    shutil.copy(REPO / "schemas" / "order.created.v1.avsc", tmp_path / "schemas")
    path = tmp_path / "topology.yaml"
    path.write_text(BASE + textwrap.indent(textwrap.dedent(deploy), "  "))
    return path


def problems(path: Path) -> list[tuple[int | None, str]]:
    with pytest.raises(TopologyInvalid) as caught:
        load_topology(path)
    return [(p.line, p.message) for p in caught.value.problems]


def test_a_sound_section_loads(tmp_path: Path) -> None:
    topology = load_topology(write(tmp_path, """\
        image: registry.example/shop:1
        services:
          inventory:
            max_replicas: 4
            resources: {requests: {cpu: 250m, memory: 256Mi}}
            env:
              TIDINGS_DATABASE_URL: {secret: inventory-db, key: url}
              FEATURE: true
          shop: {command: [python, -m, shop], port: 8080}
        """))
    assert topology.deploy is not None
    assert topology.deploy.services["inventory"].max_replicas == 4


def test_every_mistake_is_reported_with_its_line(tmp_path: Path) -> None:
    found = problems(write(tmp_path, """\
        imgae: x
        defaults:
          resources: {requests: {cpu: lots}}
        services:
          inventroy: {replicas: 2}
          inventory:
            max_replicas: 9
            port: 8080
          shop: {max_replicas: 3}
        """))
    assert found == [
        (14, "unknown key 'imgae' in deploy (did you mean 'image'?)"),
        (16, "deploy.defaults.resources.requests: cpu: 'lots' is not a Kubernetes "
             "quantity (e.g. 250m, 1, 256Mi, 1Gi)"),
        (18, "deploy.services names 'inventroy', which is neither a producer nor a consumer "
             "(did you mean 'inventory'?)"),
        (20, "max_replicas 9 of inventory is more than its 4 partitions; the extra replicas "
             "would sit idle"),
        (21, "inventory is a consumer group: it serves /healthz and /metrics on "
             "deploy.metrics_port (9400), not on a port of its own"),
        (22, "shop is not a consumer group; only consumer groups scale on lag (set replicas "
             "instead)"),
    ]


@pytest.mark.parametrize("env", [
    "DB_PASSWORD: hunter2",
    "API_TOKEN: abc",
    "DATABASE_URL: postgresql://app:hunter2@db/shop",
])
def test_an_inlined_secret_is_refused(tmp_path: Path, env: str) -> None:
    [(line, message)] = problems(write(tmp_path, f"""\
        services:
          inventory:
            env:
              {env}
        """))
    assert line == 17
    assert "{secret: NAME, key: KEY}" in message
    assert "hunter2" not in message and "abc" not in message


def test_a_producer_must_say_how_it_starts(tmp_path: Path) -> None:
    topology = load_topology(write(tmp_path, """\
        services:
          shop: {replicas: 2}
        """))
    with pytest.raises(DeployError) as caught:
        render_k8s(topology, RenderOptions(image="x/y:1"))
    assert ":15: producer 'shop' is not a consumer group" in str(caught.value)
    assert "deploy.services.shop.command and .port" in str(caught.value)


def test_the_command_line_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "services: {}\n")
    result = subprocess.run([sys.executable, "-m", "tidings", "deploy", "render", "-f", str(path),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("tidings: no image to deploy: pass --image REF")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_replicas_never_exceed_the_partitions_and_the_grace_outlasts_shutdown(
        tmp_path: Path) -> None:
    topology = load_topology(write(tmp_path, """\
        defaults: {replicas: 9, shutdown_timeout: 1m}
        services:
          shop: {command: [python, -m, shop], port: 8080}
        """))
    rendered = render_k8s(topology, RenderOptions(image="x/y:1"))
    objects = {(o["kind"], o["metadata"]["name"]): o for o in rendered.objects()}
    scaled = objects[("ScaledObject", "inventory")]["spec"]
    assert scaled["minReplicaCount"] == scaled["maxReplicaCount"] == 4
    pod = objects[("Deployment", "inventory")]["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"][-2:] == ["--shutdown-timeout", "60"]
    assert pod["terminationGracePeriodSeconds"] == 75
    assert objects[("Deployment", "shop")]["spec"]["replicas"] == 9
    assert any("TIDINGS_DATABASE_URL" in w for w in rendered.warnings)


def test_an_environment_overrides_the_deploy_section(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        services:
          inventory: {max_replicas: 2}
          shop: {command: [python, -m, shop], port: 8080}
        """)
    path.write_text(path.read_text() + textwrap.dedent("""\
        environments:
          prod:
            deploy:
              namespace: shop-prod
              services:
                inventory: {max_replicas: 4}
        """))
    local = render_k8s(load_topology(path), RenderOptions(image="x/y:1"))
    prod = render_k8s(load_topology(path, env="prod"), RenderOptions(image="x/y:1"))

    def scaled(rendered: object) -> dict[str, object]:
        [obj] = [o for o in rendered.objects()  # type: ignore[attr-defined]
                 if o["kind"] == "ScaledObject"]
        return obj  # type: ignore[no-any-return]

    assert scaled(local)["spec"]["maxReplicaCount"] == 2  # type: ignore[index]
    assert scaled(prod)["spec"]["maxReplicaCount"] == 4  # type: ignore[index]
    assert scaled(prod)["metadata"]["namespace"] == "shop-prod"  # type: ignore[index]
    assert "namespace" not in scaled(local)["metadata"]  # type: ignore[index,operator]

"""The one image (ops/image/Dockerfile) runs a consumer service against the test broker.

Built with podman (or docker) once per session: the base comes from mmdebstrap where no
image registry answers, the wheels from a wheelhouse built on this machine, so the
build needs no network and a rebuild after a code change takes seconds. Without a
container engine the test is skipped, saying so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from shop_support import an_order, eventually

from ops.demo.processes import free_port
from ops.image import build as image
from tidings.producer.publisher import Publisher
from tidings.topology import load_topology, sync

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TAG = "localhost/tidings:test"

TOPOLOGY = """\
name: image-{p}
defaults: {{partitions: 2, replication_factor: 1}}
topics:
  {p}orders: {{}}
events:
  order.created:
    topic: {p}orders
    schema: schemas/order.created.v2.avsc
    key: order_id
    model: schemas.models:OrderCreated
producers:
  order-service: {{publishes: [order.created]}}
consumers:
  {p}analytics:
    subscribes: [order.created]
    handler: consumers.analytics:handle_batch
    batch: {{max_events: 50, max_wait: 200ms}}
"""


@pytest.fixture(scope="session")
def built_image() -> tuple[str, dict[str, str]]:
    engine = image.find_engine()
    if engine is None:
        pytest.skip("no container engine: install podman (apt-get install podman runc) or "
                    "docker to build and run ops/image/Dockerfile")
    env = image.engine_env(engine)
    try:
        base = None
        if engine == "podman":
            base = image.ensure_local_base(engine, env) if shutil.which("mmdebstrap") else None
        # Offline from a host-built wheelhouse when its wheels fit the base's Python;
        # otherwise pip inside the build fetches them.
        offline = (base is None or image.wheels_fit_local_base()) and image.ensure_wheels() > 0
        image.build(engine=engine, tag=TAG, base=base, offline=offline, network="host")
    except image.BuildError as exc:
        pytest.fail(f"the image does not build: {exc}")
    return engine, env


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Mounted into the container, whose user (10001) must be able to read it: pytest's own
    # temporary directories are private to root.
    path = Path(tempfile.mkdtemp(prefix="tidings-image-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            return str(reply.read().decode())
    except OSError:
        return ""


def processed(text: str, group: str) -> int:
    pattern = rf'^tidings_events_processed_total{{[^}}]*group="{re.escape(group)}"[^}}]*}} (\S+)$'
    return int(sum(float(m) for m in re.findall(pattern, text, re.M)))


def test_the_image_runs_a_consumer_group_and_drains_on_sigterm(
        built_image: tuple[str, dict[str, str]], workdir: Path, kafka_bootstrap: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    engine, env = built_image
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    prefix = f"i{uuid.uuid4().hex[:8]}-"
    group = f"{prefix}analytics"
    shutil.copytree(REPO / "schemas", workdir / "schemas",
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (workdir / "topology.yaml").write_text(TOPOLOGY.format(p=prefix))
    for path in [workdir / "topology.yaml", *(workdir / "schemas").iterdir()]:
        path.chmod(0o644)
    (workdir / "schemas").chmod(0o755)
    topology = load_topology(workdir / "topology.yaml")
    view = sync.connect(topology)
    sync.apply(view, sync.plan(view))
    with Publisher(topology, "order-service") as publisher:
        publisher.publish_many([an_order() for _ in range(40)])

    port = free_port()
    name = f"tidings-test-{prefix.strip('-')}"
    run = subprocess.run(
        [engine, "run", "-d", "--name", name, "--network", "host",
         "-v", f"{workdir}:/work:ro", "-e", f"KAFKA_BOOTSTRAP_SERVERS={kafka_bootstrap}",
         TAG, group, "-f", "/work/topology.yaml", "--metrics-port", str(port),
         "--shutdown-timeout", "10"],
        env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    try:
        text = eventually(lambda: processed(scrape(port), group) >= 40 and scrape(port), 90,
                          "the container to process the 40 orders")
        assert processed(text, group) == 40
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
            assert reply.status == 200
        stop = subprocess.run([engine, "stop", "-t", "30", name], env=env, capture_output=True,
                              text=True, timeout=60)
        assert stop.returncode == 0, stop.stderr
        status = subprocess.run([engine, "inspect", "-f", "{{.State.ExitCode}}", name], env=env,
                                capture_output=True, text=True, timeout=30)
        logs = subprocess.run([engine, "logs", name], env=env, capture_output=True, text=True,
                              timeout=30)
        assert status.stdout.strip() == "0", logs.stdout + logs.stderr
        # SIGTERM drained and left the group: the runtime's closing line is there.
        assert re.search(r"INFO done: \d+ processed", logs.stdout + logs.stderr), logs.stderr
        user = subprocess.run([engine, "inspect", "-f", "{{.Config.User}}", TAG], env=env,
                              capture_output=True, text=True, timeout=30)
        assert user.stdout.strip() == "10001:10001"
    finally:
        subprocess.run([engine, "rm", "-f", name], env=env, capture_output=True, timeout=60)

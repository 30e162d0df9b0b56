"""ops/ci/topology.yml, run as CI would: its own `run:` scripts, on a real git repository.

The scripts are read from the workflow file, so the test follows the file: a step
renamed, a flag dropped or an exit code handled differently shows up here. The
`${{ }}` values GitHub fills in are given by the test (and must all be known to it);
the cluster is the session's broker, holding what the base branch declares.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka.admin import AdminClient

from tidings.cli import main

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "ops" / "ci" / "topology.yml"
APPROVAL_LABEL = "topology:destructive-approved"

TOPOLOGY = """\
# a throwaway shop for the CI gate test
name: {name}
cluster:
  bootstrap_servers: ${{PROD_KAFKA_BOOTSTRAP}}
defaults:
  partitions: 2
  replication_factor: 1
topics:
  {p}orders:
    config:
      retention.ms: {retention}
events:
  order.created: {{topic: {p}orders, schema: schemas/order.created.{version}.avsc, key: order_id}}
producers:
  {p}shop:
    publishes: [order.created]
consumers:
  {p}inventory:
    subscribes: [order.created]
    handler: json:dumps
    retry: [1s]
environments:
  prod:
    cluster:
      brokers: 3
    defaults:
      replication_factor: 3
      config:
        min.insync.replicas: 2
"""


@dataclass
class StepResult:
    code: int
    out: str
    outputs: dict[str, str]


class Gate:
    """The workflow's job, runnable step by step in a git repository."""

    def __init__(self, root: Path, bootstrap: str) -> None:
        self.root = root
        self.prefix = f"ci{uuid.uuid4().hex[:8]}-"
        workflow = yaml.safe_load(WORKFLOW.read_text())
        self.job: dict[str, Any] = workflow["jobs"]["topology"]
        self.steps = {step["id"]: step for step in self.job["steps"] if "id" in step}
        # What GitHub would put in each ${{ }}: the base branch is this repository's main.
        self.filled = {
            "TIDINGS_ENV": "local", "BASE_REF": "main",
            "PROD_KAFKA_BOOTSTRAP": bootstrap, "PROD_KAFKA_USERNAME": "",
            "PROD_KAFKA_PASSWORD": "", "GH_TOKEN": "", "PR": "",
        }
        self.path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

    def env(self, step: dict[str, Any], extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("KAFKA_BOOTSTRAP_SERVERS", "TIDINGS_ENV")}
        for key, value in {**self.job.get("env", {}), **step.get("env", {})}.items():
            if "${{" in str(value):
                assert key in self.filled or key in extra, \
                    f"the workflow sets {key} from an expression the test does not know"
                env[key] = extra.get(key, self.filled.get(key, ""))
            else:
                env[key] = str(value)
        return {**env, **extra, "PATH": self.path}

    def run(self, step_id: str, **extra: str) -> StepResult:
        step = self.steps[step_id]
        script = step["run"]
        assert "${{" not in script, f"step {step_id} must read variables, not expressions"
        outputs = self.root / f".github-output-{step_id}"
        summary = self.root / ".github-step-summary"
        outputs.write_text("")
        env = self.env(step, {**extra, "GITHUB_OUTPUT": str(outputs),
                              "GITHUB_STEP_SUMMARY": str(summary)})
        # How GitHub runs a `run:` step on Linux.
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                              cwd=self.root, env=env, capture_output=True, text=True,
                              check=False, timeout=240)
        values = dict(line.split("=", 1) for line in outputs.read_text().splitlines() if line)
        return StepResult(done.returncode, done.stdout + done.stderr, values)

    def write(self, retention: str = "1d", version: str = "v1", comment: str = "") -> None:
        (self.root / "topology.yaml").write_text(TOPOLOGY.format(
            name=f"it-{self.prefix}", p=self.prefix, retention=retention, version=version)
            + comment)

    def git(self, *args: str) -> None:
        subprocess.run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.invalid",
                        *args], cwd=self.root, check=True, capture_output=True)


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Gate:
    if shutil.which("git") is None:
        pytest.skip("the CI gate test needs git on PATH")
    if shutil.which("tidings", path=f"{Path(sys.executable).parent}") is None:
        pytest.skip("the CI gate test needs the tidings console script (pip install -e .)")
    root = tmp_path_factory.mktemp("ci-gate")
    gate = Gate(root, kafka_bootstrap)
    (root / "schemas").mkdir()
    for version in ("v1", "v2"):
        shutil.copy(REPO / "schemas" / f"order.created.{version}.avsc", root / "schemas")
    gate.write()
    gate.git("init", "-q", "-b", "main")
    gate.git("add", "-A")
    gate.git("commit", "-qm", "base")
    # The cluster holds what the base branch declares, as after its own merge and apply.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROD_KAFKA_BOOTSTRAP", kafka_bootstrap)
        patch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
        patch.delenv("TIDINGS_ENV", raising=False)
        assert main(["topology", "apply", "--yes", "-f", str(root / "topology.yaml")]) == 0
    return gate


def branch(gate: Gate, name: str, **change: str) -> None:
    """A branch off main with one commit that changes the topology as ``change`` says."""
    gate.git("checkout", "-q", "main")
    gate.git("checkout", "-q", "-b", name)
    gate.write(**change)
    gate.git("commit", "--allow-empty", "-qam", name)


def test_a_safe_change_exits_2_and_the_gate_lets_it_through(gate: Gate) -> None:
    branch(gate, "raise-retention", retention="2d", version="v2")
    for step in ("validate", "lint", "schemas"):
        result = gate.run(step)
        assert result.code == 0, f"{step}: {result.out}"
    diff = gate.run("diff")
    plan = gate.run("plan")
    assert (diff.code, diff.outputs["exitcode"]) == (0, "2"), diff.out
    assert (plan.code, plan.outputs["exitcode"]) == (0, "2"), plan.out
    posted = (gate.root / "plan.md").read_text()
    assert "#### Topics" in posted and "retention.ms: 86400000 (1d) → 172800000 (2d)" in posted
    assert "#### Schemas" in posted and "writes v1 → v2" in posted
    assert "destructive" not in posted
    opened = gate.run("gate", DIFF_EXIT="2", PLAN_EXIT="2", APPROVED="false")
    assert opened.code == 0, opened.out


def test_a_destructive_change_exits_3_and_waits_for_the_label(gate: Gate) -> None:
    branch(gate, "lower-retention", retention="1h")
    diff = gate.run("diff")
    plan = gate.run("plan")
    assert diff.outputs["exitcode"] == "3" and diff.code == 0, diff.out
    assert plan.outputs["exitcode"] == "3" and plan.code == 0, plan.out
    assert "🔴 **destructive**" in (gate.root / "plan.md").read_text()
    closed = gate.run("gate", DIFF_EXIT="3", PLAN_EXIT="3", APPROVED="false")
    assert closed.code == 1
    assert "::error::destructive topology changes" in closed.out
    assert APPROVAL_LABEL in closed.out
    assert gate.run("gate", DIFF_EXIT="3", PLAN_EXIT="3", APPROVED="true").code == 0


def test_no_change_exits_0(gate: Gate) -> None:
    branch(gate, "comment-only", comment="# a comment changes nothing\n")
    diff = gate.run("diff")
    plan = gate.run("plan")
    assert (diff.code, diff.outputs["exitcode"]) == (0, "0"), diff.out
    assert (plan.code, plan.outputs["exitcode"]) == (0, "0"), plan.out
    assert "No changes" in (gate.root / "plan.md").read_text()


def test_a_plan_that_apply_would_refuse_fails_the_step(gate: Gate) -> None:
    branch(gate, "fewer-partitions")
    path = gate.root / "topology.yaml"
    path.write_text(path.read_text().replace("partitions: 2", "partitions: 1"))
    gate.git("commit", "-qam", "fewer partitions")
    plan = gate.run("plan")
    assert plan.outputs["exitcode"] == "1"
    assert plan.code == 1
    assert "cannot remove partitions" in (gate.root / "plan.md").read_text()


def test_plan_markdown_carries_the_lint_and_strict_fails_it(gate: Gate) -> None:
    gate.git("checkout", "-q", "main")
    common = ["--format", "markdown", "--detailed-exitcode", "--lint"]
    plan = subprocess.run(["tidings", "topology", "plan", *common], cwd=gate.root,
                          env=gate.env({}, {}), capture_output=True, text=True, check=False)
    assert plan.returncode == 0, plan.stderr
    assert "No changes against" in plan.stdout
    assert "#### Production lint (2 warnings)" in plan.stdout
    assert "topology.yaml:7: warning: [local] topic " in plan.stderr
    strict = subprocess.run(["tidings", "topology", "plan", *common, "--strict"], cwd=gate.root,
                            env=gate.env({}, {}), capture_output=True, text=True, check=False)
    assert strict.returncode == 1
    assert "topology.yaml:7: [local] topic " in strict.stderr


def test_plan_for_prod_refuses_a_replication_the_cluster_cannot_hold(
    gate: Gate, kafka_bootstrap: str
) -> None:
    brokers = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).brokers
    if len(brokers) >= 3:
        pytest.skip("needs a cluster of fewer than 3 brokers")
    gate.git("checkout", "-q", "main")
    plan = subprocess.run(["tidings", "topology", "plan", "--env", "prod", "--no-lint",
                           "--detailed-exitcode"], cwd=gate.root, env=gate.env({}, {}),
                          capture_output=True, text=True, check=False)
    assert plan.returncode == 1
    line = TOPOLOGY.splitlines().index("      replication_factor: 3") + 1
    assert f"topology.yaml:{line}: [prod] topic " in plan.stderr
    assert f"replication factor 3 is larger than the cluster ({len(brokers)} broker" \
        in plan.stderr

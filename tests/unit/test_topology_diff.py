"""`tidings topology diff BASE_REF`: what a branch changes in the declaration, from git alone."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tidings.cli import main

REPO = Path(__file__).resolve().parents[2]

BASE = """\
name: diff-test
defaults: {partitions: 3, replication_factor: 1}
topics:
  orders:
    config: {retention.ms: 7d}
events:
  order.created: {topic: orders, schema: schemas/order.created.v1.avsc, key: order_id}
producers:
  shop: {publishes: [order.created]}
consumers:
  inventory:
    subscribes: [order.created]
    handler: json:dumps
    retry: [10s, 1m]
"""

Diff = Callable[..., tuple[int, str, str]]


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
                   cwd=root, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("topology diff needs git on PATH")
    (tmp_path / "schemas").mkdir()
    for version in ("v1", "v2"):
        shutil.copy(REPO / "schemas" / f"order.created.{version}.avsc", tmp_path / "schemas")
    (tmp_path / "topology.yaml").write_text(BASE)
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "base")
    return tmp_path


@pytest.fixture
def diff(repo: Path, capsys: pytest.CaptureFixture[str]) -> Diff:
    def run(*args: str) -> tuple[int, str, str]:
        code = main(["topology", "diff", "main", "-f", str(repo / "topology.yaml"), *args])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def edit(repo: Path, old: str, new: str) -> None:
    path = repo / "topology.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_an_unchanged_declaration_exits_0(diff: Diff) -> None:
    code, out, _ = diff("--detailed-exitcode")
    assert code == 0
    assert "No changes." in out


def test_a_new_group_and_a_new_schema_version_are_safe_changes(repo: Path, diff: Diff) -> None:
    edit(repo, "order.created.v1.avsc", "order.created.v2.avsc")
    edit(repo, "    retry: [10s, 1m]\n", "    retry: [10s, 1m]\n  email:\n"
         "    subscribes: [order.created]\n    handler: json:dumps\n    retry: [30s]\n")
    code, out, _ = diff("--detailed-exitcode")
    assert code == 2, out
    assert "+ orders.email.retry.30s: create: 3 partitions, replication 1; " \
           "retention.ms=604800000 (7d)  [safe]" in out
    assert "~ order.created: writes v1 → v2 (schemas/order.created.v2.avsc)  [safe]" in out
    assert "+ email: new consumer group  [safe]" in out
    assert out.strip().endswith("5 changes: 5 safe.")
    assert diff()[0] == 0, "without --detailed-exitcode a plan with changes exits 0"


def test_a_dropped_tier_deletes_its_topic_and_exits_3(repo: Path, diff: Diff) -> None:
    edit(repo, "retry: [10s, 1m]", "retry: [10s]")
    code, out, _ = diff("--detailed-exitcode")
    assert code == 3, out
    assert "- orders.inventory.retry.1m: delete topic  [destructive]" in out
    assert "~ inventory: retry: [10s, 1m] → [10s]  [caution]" in out


def test_a_changed_key_is_destructive(repo: Path, diff: Diff) -> None:
    edit(repo, "key: order_id", "key: customer_id")
    code, out, _ = diff("--detailed-exitcode", "--format", "json")
    assert code == 3
    report = json.loads(out)
    (change,) = report["changes"]
    assert change == {"resource": "event", "subject": "order.created", "grade": "destructive",
                      "change": "key order_id → customer_id", "mark": "~",
                      "reason": "events of one entity may now land on other partitions: "
                                "their order across the change is lost"}
    assert report["summary"] == {"safe": 0, "caution": 0, "destructive": 1, "refused": 0}


def test_a_schema_edited_in_place_is_destructive(repo: Path, diff: Diff) -> None:
    schema = repo / "schemas" / "order.created.v1.avsc"
    raw = json.loads(schema.read_text())
    raw["fields"].append({"name": "note", "type": ["null", "string"], "default": None})
    schema.write_text(json.dumps(raw, indent=2))
    code, out, _ = diff("--detailed-exitcode", "--format", "markdown")
    assert code == 3
    assert "#### Schemas" in out
    assert "| `order.created` | v1 edited in place (order.created.v1.avsc) | " \
           "🔴 **destructive** | events already written with v1 carry the old fingerprint" in out


def test_fewer_partitions_are_refused_and_exit_1(repo: Path, diff: Diff) -> None:
    edit(repo, "partitions: 3", "partitions: 2")
    code, out, _ = diff("--detailed-exitcode")
    assert code == 1
    assert "! topology.yaml:2: orders: partitions 3 -> 2 refused" in out.replace(
        str(repo / "topology.yaml"), "topology.yaml")


def test_an_environment_new_in_the_branch_is_all_new(repo: Path, diff: Diff) -> None:
    (repo / "topology.yaml").write_text(BASE + "environments:\n  prod:\n    defaults:\n"
                                        "      replication_factor: 3\n")
    code, out, _ = diff("--env", "prod", "--detailed-exitcode")
    assert code == 2
    assert "note: environment prod is new in this branch" in out
    assert "+ orders: create: 3 partitions, replication 3" in out


def test_an_unknown_ref_is_one_clear_error(repo: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    code = main(["topology", "diff", "origin/nope", "-f", str(repo / "topology.yaml")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("tidings: unknown git ref 'origin/nope'; fetch it first")
    assert "Traceback" not in err


def test_a_file_outside_git_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "schemas").mkdir()
    shutil.copy(REPO / "schemas" / "order.created.v1.avsc", tmp_path / "schemas")
    (tmp_path / "topology.yaml").write_text(BASE)
    code = main(["topology", "diff", "main", "-f", str(tmp_path / "topology.yaml")])
    assert code == 1
    assert "is not inside a git repository" in capsys.readouterr().err

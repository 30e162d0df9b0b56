"""ops/grafana/tidings.json is a Grafana dashboard by Grafana's own published types, and has
the rows an operator looks for: one per consumer group, one for producers."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tidings.kafka_local.artifacts import cache_dir

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "ops" / "grafana" / "tidings.json"


def load() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def typecheck(dashboard: dict[str, Any], work: Path) -> subprocess.CompletedProcess[str]:
    """``tsc --noEmit --strict`` on the dashboard written as a typed literal: an object
    literal assigned to ``Dashboard`` gets excess-property and type checks on every key."""
    tools = cache_dir() / "npm" / "grafana-schema"
    tsc = tools / "node_modules" / "typescript" / "bin" / "tsc"
    if not tsc.exists() or not (tools / "node_modules" / "@grafana" / "schema").exists():
        pytest.skip(f"@grafana/schema and typescript are not installed in {tools}; run "
                    "`bash ops/tools/ensure.sh` (it needs npm)")
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    (work / "node_modules").symlink_to(tools / "node_modules")
    (work / "check.ts").write_text(
        'import type { Dashboard } from "@grafana/schema";\n\n'
        f"export const dashboard: Dashboard = {json.dumps(dashboard, indent=2)};\n")
    return subprocess.run(
        ["node", str(tsc), "--noEmit", "--strict", "--target", "es2022", "--module", "esnext",
         "--moduleResolution", "bundler", "--skipLibCheck", "check.ts"],
        cwd=work, capture_output=True, text=True, timeout=300)


def test_the_dashboard_type_checks_against_grafana_schema(tmp_path: Path) -> None:
    result = typecheck(load(), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_mistake_in_the_dashboard_fails_the_type_check(tmp_path: Path) -> None:
    broken = copy.deepcopy(load())
    broken["panels"][1]["gridPos"]["h"] = "eight"
    broken["panels"][2]["titel"] = "typo"
    result = typecheck(broken, tmp_path)
    assert result.returncode != 0
    assert "titel" in result.stdout and "'string' is not assignable to type 'number'" in \
        result.stdout, result.stdout


def test_one_row_per_group_and_one_for_producers() -> None:
    dashboard = load()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["group"]["includeAll"] and variables["group"]["multi"]
    rows = [p for p in dashboard["panels"] if p["type"] == "row"]
    assert [(r["title"], r.get("repeat")) for r in rows] == [("Group $group", "group"),
                                                             ("Producers", None)]
    group_row = dashboard["panels"][dashboard["panels"].index(rows[0]) + 1:
                                    dashboard["panels"].index(rows[1])]
    exprs = " ".join(t["expr"] for p in group_row for t in p["targets"])
    for needed in ("rate(tidings_events_processed_total", "tidings_consumer_lag",
                   "histogram_quantile(0.5,", "histogram_quantile(0.95,",
                   "histogram_quantile(0.99,", "tidings_events_retried_total",
                   "tidings_events_dead_lettered_total"):
        assert needed in exprs
    assert all('group=~"$group"' in t["expr"] for p in group_row for t in p["targets"])
    producers = dashboard["panels"][dashboard["panels"].index(rows[1]) + 1:]
    assert producers and all(p["targets"] for p in producers)
    # The producers' own metrics (tidings.producer.metrics), not only what groups receive.
    exprs = " ".join(t["expr"] for p in producers for t in p["targets"])
    for needed in ("rate(tidings_events_published_total", "tidings_publish_failures_total",
                   "histogram_quantile(0.99, sum by (le, producer) (rate("
                   "tidings_publish_seconds_bucket", "tidings_outbox_pending",
                   "tidings_outbox_oldest_pending_seconds"):
        assert needed in exprs

"""ops/prometheus/: the alerting rules pass their own unit tests under promtool, and the
scrape configuration is one Prometheus accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
OPS = REPO / "ops" / "prometheus"


def promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus; "
                    "ops/tools/install-prometheus.sh does it)")
    return tool


def run(*args: str, cwd: Path = OPS) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_the_rules_pass_promtool_unit_tests() -> None:
    result = run("test", "rules", "tidings-rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load((OPS / "tidings-rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((OPS / "tidings-rules.test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])
              if case.get("exp_alerts")}
    assert {"TidingsConsumerLagGrowing", "TidingsDeadLetters", "TidingsHandlerStuck",
            "TidingsGroupWithoutMembers", "TidingsRetryTiersFilling"} <= alerts
    assert alerts - tested == set(), "alerts without a test that makes them fire"


def test_a_broken_expectation_fails_promtool(tmp_path: Path) -> None:
    """The unit tests can fail: expecting the DLQ alert one minute early is caught."""
    text = (OPS / "tidings-rules.test.yml").read_text()
    broken = text.replace("      - eval_time: 2m\n        alertname: TidingsDeadLetters\n"
                          "        exp_alerts: []\n",
                          "", 1)
    broken = broken.replace("      - eval_time: 3m\n        alertname: TidingsDeadLetters",
                            "      - eval_time: 2m\n        alertname: TidingsDeadLetters", 1)
    assert broken != text
    shutil.copy(OPS / "tidings-rules.yml", tmp_path)
    (tmp_path / "tidings-rules.test.yml").write_text(broken)
    result = run("test", "rules", "tidings-rules.test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "TidingsDeadLetters" in result.stdout + result.stderr


def test_the_scrape_config_and_rules_are_valid(tmp_path: Path) -> None:
    config = yaml.safe_load((OPS / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    result = run("check", "config", "prometheus.yml")
    if "field kubernetes_sd_configs not found" in result.stdout + result.stderr:
        # Debian builds Prometheus without Kubernetes discovery; check everything else
        # (relabelling, rule files) with the pods listed statically instead.
        del job["kubernetes_sd_configs"]
        job["static_configs"] = [{"targets": ["10.0.0.7:9400"]}]
        shutil.copy(OPS / "tidings-rules.yml", tmp_path)
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        result = run("check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout

"""The README's main command, end to end: every number the demo checks must add up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_the_demo_passes_its_own_checks(kafka_bootstrap: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tidings", "demo", "--orders", "60", "--timeout", "150"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    out = result.stdout
    assert "Demo passed" in out
    assert "0 sent twice" in out
    for group in ("inventory", "email", "analytics", "order-status"):
        assert any(line.startswith(group) and line.rstrip().endswith("ok")
                   for line in out.splitlines()), f"{group} row is not ok:\n{out}"
    # The four events in time, each checked by the demo's summary.
    for story in ("delayed reminder: 4 of 4 mailed when due", "the cancelled one held back",
                  "recurring tick: sales-report ticked", "request-reply: GET /stock/<sku>",
                  "order outcomes delivered to their callback_url"):
        assert story in out, f"{story!r} missing:\n{out}"

"""The common slips in topology.yaml point at the line where the mistake is.

PyYAML reports where it gave up: for an unclosed bracket or quote that is the next key
or the end of the file, for a key without its colon the line after it. A person needs
the line they have to fix.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tidings.topology import TopologyInvalid, load_topology

GOOD = """\
name: slips
topics:
  orders:
    partitions: 3
    config: {retention.ms: 1d}
events:
  order.created: {topic: orders, schema: schemas/x.avsc, key: order_id}
consumers:
  inventory:
    subscribes: [order.created]
    handler: json:dumps
    retry: [10s, 1m]
"""

#: slip -> (the good file's line replaced, what replaces it, the line to blame, words)
SLIPS = {
    "unclosed [": ("    subscribes: [order.created]", "    subscribes: [order.created",
                   10, "'[' is never closed"),
    "unclosed {": ("    config: {retention.ms: 1d}", "    config: {retention.ms: 1d",
                   5, "'{' is never closed"),
    "unclosed quote": ("    config: {retention.ms: 1d}", '    config: {retention.ms: "1d}',
                       5, "quote is never closed"),
    "a tab": ("    partitions: 3", "\tpartitions: 3", 4, "tab character"),
    "a bad indent": ("    config: {retention.ms: 1d}", "   config: {retention.ms: 1d}",
                     5, "indentation"),
    "a missing colon after a key": ("  orders:", "  orders", 3, "missing ':' after 'orders'"),
    "a missing colon before a value": ("    partitions: 3", "    partitions 3", 4,
                                       "missing ':' after 'partitions 3'"),
}


@pytest.mark.parametrize("slip", SLIPS)
def test_each_slip_names_its_own_line(tmp_path: Path, slip: str) -> None:
    before, after, line, words = SLIPS[slip]
    assert before in GOOD
    path = tmp_path / "topology.yaml"
    path.write_text(GOOD.replace(before, after, 1))
    with pytest.raises(TopologyInvalid) as caught:
        load_topology(path, check_imports=False)
    (problem,) = caught.value.problems
    assert (problem.line, words in problem.message) == (line, True), problem
    assert problem.message.startswith("YAML syntax error: ")


def test_the_cli_prints_it_as_file_and_line_without_a_traceback(tmp_path: Path) -> None:
    before, after, _, _ = SLIPS["unclosed ["]
    (tmp_path / "topology.yaml").write_text(GOOD.replace(before, after, 1))
    result = subprocess.run([sys.executable, "-m", "tidings", "topology", "validate"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[0].startswith(
        "topology.yaml:10: YAML syntax error: this '[' is never closed"), result.stderr

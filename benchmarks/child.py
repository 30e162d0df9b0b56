"""Entry of a contender's process: ``python -m benchmarks.child MODULE:FUNCTION PARAMS``.

Calls the function with the JSON params, adds the process's peak and current RSS,
and prints one ``BENCH-RESULT {json}`` line (``{"error": ...}`` on failure).
SIGTERM sets :data:`benchmarks.probe.STOP` so a long-running contender can finish and report.
"""

from __future__ import annotations

import importlib
import json
import logging
import signal
import sys
import traceback
from typing import Any

from benchmarks.probe import STOP, peak_rss_mb, rss_mb

RESULT_PREFIX = "BENCH-RESULT "


def main() -> int:
    target, raw = sys.argv[1], sys.argv[2]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    module_name, function_name = target.split(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
        params: dict[str, Any] = json.loads(raw)
        result: dict[str, Any] = function(params) or {}
        result.setdefault("rss_mb", rss_mb())
        result["peak_rss_mb"] = peak_rss_mb()
    except Exception as exc:
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

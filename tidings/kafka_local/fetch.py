"""``python -m tidings.kafka_local.fetch [kafka] [tools] [registry]``: download now.

What the launcher would fetch on first use, fetched ahead of time (``make test`` runs
it from ``ops/tools/install-registry.sh``, so no test waits on a download). Each item
is cached, so a second run returns at once. Exit status 1, with the reason on stderr,
when something cannot be had; the tests that need it then skip saying why.
"""

from __future__ import annotations

import sys

from tidings.errors import TidingsError
from tidings.kafka_local.artifacts import ensure_kafka_libs, ensure_kafka_tools
from tidings.kafka_local.registry import LocalRegistry

ITEMS = ("kafka", "tools", "registry")


def fetch(item: str) -> str:
    """Fetch one item; returns where it is cached."""
    if item == "kafka":
        return str(ensure_kafka_libs())
    if item == "tools":
        return str(ensure_kafka_tools())
    runtime, app = LocalRegistry.prepare_static()
    return f"{app} (Apicurio {runtime.version} on Java {runtime.java.major})"


def main(argv: list[str]) -> int:
    """Entry point; ``argv`` names the items (default: all of them)."""
    unknown = [item for item in argv if item not in ITEMS]
    if unknown:
        print(f"usage: python -m tidings.kafka_local.fetch [{'] ['.join(ITEMS)}]",
              file=sys.stderr)
        return 2
    failed = 0
    for item in argv or ITEMS:
        try:
            print(f"{item}: {fetch(item)}")
        except TidingsError as exc:
            print(f"{item}: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

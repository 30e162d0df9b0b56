"""Side-by-side measurements of Tidings, raw confluent-kafka and the Python peers.

These are measurements, never timed tests: nothing here fails on speed. Run
``make bench`` (or ``python -m benchmarks.run --quick``); see benchmarks/README.md.
"""

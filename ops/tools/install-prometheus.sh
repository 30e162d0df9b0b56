# Prometheus and promtool (Debian's prometheus package) for the alerting-rule unit tests
# (`promtool test rules`) and the integration test that runs a real Prometheus against a
# consumer group (tests/integration/test_observability.py).
apt_install prometheus

"""The order service: an HTTP API that records orders and publishes their events."""

"""Running Tidings: the local demo and operational tooling."""

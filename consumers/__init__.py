"""Consumer-group services. Each sub-package is one group declared in topology.yaml."""

"""Services that publish events."""

"""``tidings demo``: the whole shop on one machine, checked number by number."""

"""Partitioned gateway instances: partition leases (``lease``) and the runtime that runs
the enterprises of the partitions an instance owns (``runtime``)."""

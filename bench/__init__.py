"""`make bench`: throughput of the numeric embedding backfill against its baseline and ceiling."""

"""Prometheus research tooling: numeric window embeddings of daily market prices."""

"""Numeric window embeddings: dbt stages the windows, numpy encodes them, psycopg stores them."""

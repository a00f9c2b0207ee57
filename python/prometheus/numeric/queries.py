"""Every SQL statement the Python step runs, in one place (the rest of the SQL is dbt's).

Relations are passed in as psycopg `sql` fragments (dbt's relation names); values as
literals or parameters, never pasted into the text.
"""

from __future__ import annotations

# How a server identifies itself whichever way one connects to it (socket or TCP, any host
# name): its start time, port and the database. connection.resolve_server reads it, and
# dbt's on-run-start hook compares its own target with it (macros/check_target_server.sql).
SERVER_IDENTITY = """
select pg_postmaster_start_time()::text || ' port ' || current_setting('port')
    || ' database ' || current_database()
"""

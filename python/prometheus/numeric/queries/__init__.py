"""Every SQL statement the Python step runs, in one place (the rest of the SQL is dbt's).

Relations are passed in as psycopg `sql` fragments (dbt's relation names); values as
literals or parameters, never pasted into the text.
"""

from __future__ import annotations

from prometheus.numeric.queries.staging import *  # noqa: F403
from prometheus.numeric.queries.tools import *  # noqa: F403
from prometheus.numeric.queries.writing import *  # noqa: F403

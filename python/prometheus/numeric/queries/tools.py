"""The dedupe command and the coverage report."""

from __future__ import annotations

# -- dedupe (dedupe.py): newest = latest created_at, then highest embedding_id
LOCK_FOR_DEDUPE = "lock table {table} in share row exclusive mode"
RANKED_DUPLICATES = """
select ctid, row_number() over (
    partition by entity_type, entity_id, as_of_date, model_id
    order by created_at desc nulls last, embedding_id desc
) as newest_first
from {table}
"""
COUNT_DUPLICATES = "select count(*) from ({ranked}) as ranked where newest_first > 1"
DELETE_DUPLICATES = """
delete from {table}
where ctid in (select ctid from ({ranked}) as ranked where newest_first > 1)
"""

# -- the coverage report (report_data.py)
COVERAGE_QUERY = """
select as_of_date, instruments_embedded, skipped_insufficient_history, windows_missing_vector,
       windows_stale, rejected_price_rows
from {coverage}
where model_id = %(model_id)s and as_of_date between %(start_date)s and %(end_date)s
order by as_of_date
"""

# The instrument's latest vector in the range: what the model actually stored.
WINDOW_QUERY = """
select
    embeddings.as_of_date,
    embeddings.vector,
    (embeddings.window_spec ->> 'window_days')::integer,
    coalesce((embeddings.window_spec ->> 'rows_filled')::integer, 0),
    (embeddings.window_spec ->> 'start_date')::date,
    (embeddings.window_spec ->> 'end_date')::date,
    instruments.currency
from {embeddings} as embeddings
left join {instruments} as instruments
    on instruments.instrument_id = embeddings.entity_id
where embeddings.entity_type = 'INSTRUMENT'
    and embeddings.entity_id = %(instrument_id)s
    and embeddings.model_id = %(model_id)s
    and embeddings.as_of_date between %(start_date)s and %(end_date)s
order by embeddings.as_of_date desc
limit 1
"""

# The nearest stored window of another instrument (similar_windows needs pgvector).
NEAREST_QUERY = """
select entity_id, as_of_date, distance
from {similar_windows}(%(instrument_id)s, %(as_of_date)s, %(model_id)s, 1, true)
"""

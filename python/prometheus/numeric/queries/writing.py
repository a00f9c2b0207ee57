"""Writing vectors: the table, its pgvector companion, and their statistics."""

from __future__ import annotations

# -- writing vectors (store.py)
COPY_COLUMNS = "entity_type, entity_id, window_spec, as_of_date, model_id, vector"
COPY_IN = "copy {relation} ({columns}) from stdin (format binary)"
CREATE_ENCODED = """
create temporary table if not exists encoded_embeddings (
    entity_type varchar(32) not null,
    entity_id varchar(64) not null,
    window_spec jsonb not null,
    as_of_date date not null,
    model_id varchar(64) not null,
    vector bytea not null
) on commit delete rows
"""
UPSERT = """
insert into {embeddings} as stored (
    entity_type, entity_id, window_spec, as_of_date, model_id, vector, vector_ref, created_at
)
select entity_type, entity_id, window_spec, as_of_date, model_id, vector, null, now()
from encoded_embeddings
order by entity_id, as_of_date
on conflict (entity_type, entity_id, as_of_date, model_id) {on_conflict}
"""
REPLACE = """do update set
    window_spec = excluded.window_spec,
    vector = excluded.vector,
    vector_ref = excluded.vector_ref,
    created_at = excluded.created_at"""
KEEP = "do nothing"
# --skip-existing on stored keys: a vector whose stored fingerprint differs from its window's
# now is outdated and rewritten (keeping created_at when the bytes come out the same); one
# that matches is left alone. A vector stored without a fingerprint is first verified
# (VERIFY_UNFINGERPRINTED): equal to its window's encoding now, it only gains the fingerprint.
REFRESH_OUTDATED = """do update set
    window_spec = excluded.window_spec,
    vector = excluded.vector,
    vector_ref = excluded.vector_ref,
    created_at = case when stored.vector = excluded.vector then stored.created_at
        else excluded.created_at end
where stored.window_spec ->> 'inputs_fingerprint'
    is distinct from excluded.window_spec ->> 'inputs_fingerprint'"""
VERIFY_UNFINGERPRINTED = """
update {embeddings} as stored
set window_spec = stored.window_spec
    || jsonb_build_object('inputs_fingerprint', encoded.window_spec -> 'inputs_fingerprint')
from encoded_embeddings as encoded
where stored.entity_type = encoded.entity_type
    and stored.entity_id = encoded.entity_id
    and stored.as_of_date = encoded.as_of_date
    and stored.model_id = encoded.model_id
    and not stored.window_spec ? 'inputs_fingerprint'
    and stored.vector = encoded.vector
"""
CLEAR_ENCODED = "truncate encoded_embeddings"

# -- the pgvector companion (store.py, window_vectors.py): same embedding_id, same values
VECTOR_COLUMNS = "embedding_id, model_id, entity_id, as_of_date, embedding"
# Packed for packed_rows.read_packed_rows: (count, the ids' int8send bytes back to back).
RESERVE_IDS = """
select
    count(*),
    string_agg(int8send(nextval(pg_get_serial_sequence({embeddings_text}, 'embedding_id'))),
        ''::bytea)
from generate_series(1, {count})
"""
CREATE_ENCODED_VECTORS = """
create temporary table if not exists encoded_vectors on commit delete rows as
select * from {vectors} with no data
"""
# The rows an upsert wrote carry this run's run_id; an upsert keeps a row's embedding_id.
FOLLOW_UPSERTS = """
insert into {vectors} as vectors (embedding_id, model_id, entity_id, as_of_date, embedding)
select stored.embedding_id, stored.model_id, stored.entity_id, stored.as_of_date,
    encoded.embedding
from encoded_vectors as encoded
inner join {embeddings} as stored
    on stored.entity_type = 'INSTRUMENT'
    and stored.entity_id = encoded.entity_id
    and stored.as_of_date = encoded.as_of_date
    and stored.model_id = encoded.model_id
where stored.window_spec ->> 'run_id' = %s
on conflict (embedding_id) do update set embedding = excluded.embedding
"""
CLEAR_ENCODED_VECTORS = "truncate encoded_vectors"
# Cheap first: the companion's ids are a subset of the table's (its foreign key).
VECTORS_MISSING = "select (select count(*) from {embeddings}) > (select count(*) from {vectors})"
# Vectors pgvector can hold (a float32 count from 1 to its 16,000 dimensions), of the rows the
# writer keeps in the companion: those missing there (made on a table that held vectors
# already, or rows another writer stored or rewrote), with the whole key the companion
# requires (the original tool's table allowed rows without one).
FILLABLE = """
stored.entity_type = 'INSTRUMENT' and stored.vector is not null
    and stored.model_id is not null and stored.entity_id is not null
    and stored.as_of_date is not null
    and octet_length(stored.vector) between 4 and 64000 and octet_length(stored.vector) % 4 = 0
    and not exists (select 1 from {vectors} as v where v.embedding_id = stored.embedding_id)
"""
MISSING_LENGTHS = """
select distinct octet_length(stored.vector) from {embeddings} as stored where {fillable}
"""
# Packed for packed_rows.read_packed_rows: each row an int8send id, then the vector's bytes.
MISSING_VECTORS = """
select count(*), string_agg(int8send(missing.embedding_id) || missing.vector, ''::bytea
    order by missing.embedding_id)
from (
    select stored.embedding_id, stored.vector
    from {embeddings} as stored
    where stored.embedding_id > {after} and octet_length(stored.vector) = {length}
        and {fillable}
    order by stored.embedding_id
    limit {limit}
) as missing
"""
FILL_COLUMNS = "embedding_id, embedding"
# One run fills at a time (shards start together): the others go on without waiting.
FILL_LOCK = "select pg_try_advisory_lock(%s, hashtext('fill window vectors'))"
FILL_UNLOCK = "select pg_advisory_unlock(%s, hashtext('fill window vectors'))"
FILL_FROM_ENCODED = """
insert into {vectors} (embedding_id, model_id, entity_id, as_of_date, embedding)
select stored.embedding_id, stored.model_id, stored.entity_id, stored.as_of_date,
    encoded.embedding
from encoded_vectors as encoded
inner join {embeddings} as stored on stored.embedding_id = encoded.embedding_id
order by stored.embedding_id
on conflict (embedding_id) do nothing
"""

# -- statistics (store.refresh_statistics)
RELATION_ROWS = "select reltuples from pg_class where oid = to_regclass(%s)"
# Another run (a shard finishing with this one) analyzing the table right now.
ANALYZED_BY_ANOTHER_RUN = """
select exists (
    select 1
    from pg_stat_progress_analyze as progress
    inner join pg_stat_activity as activity on activity.pid = progress.pid
    where progress.relid = to_regclass(%s) and activity.backend_type = 'client backend'
        and progress.pid <> pg_backend_pid()
)
"""
ANALYZE = "analyze {relation}"

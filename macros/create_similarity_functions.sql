{#
  on-run-start hook: the analysts' nearest-window functions, next to embedding_to_array.

    similar_windows(query_entity_id text, query_as_of_date date, query_model_id text,
                    k integer, exclude_same_instrument boolean default false,
                    before_as_of_only boolean default false)
    returns table (entity_id text, as_of_date date, distance double precision)

  (The arguments are named query_*: PostgreSQL gives a function's arguments and its result
  columns one namespace.)

  The k stored windows of the same model and dimension nearest to that key's vector by cosine
  distance (1 - cosine similarity), nearest first, ties by entity_id then as_of_date; the key
  itself is left out, and so are vectors of all zeros (no direction). Optional: leave out the
  key's instrument, keep only windows before its as-of date (no look-ahead).

  Always exact. pgvector ranks in float32: each of its distances is within t = 4 x n x 2^-24
  of the exact one for n dimensions (a float32 sum of n products errs by at most about
  n x 2^-24 of the sum of their magnitudes, which cosine scales to at most 1, and it has
  three such sums). So every window whose exact distance could be among the k nearest has a
  float32 distance within 2t of the k-th float32 distance; those candidates (k + 100 of them, or all of them when more are that
  close) are re-ranked in double precision, the distances returned are the double ones.

    similar_windows_approximate(same arguments)

  The same answer through an HNSW index (macro create_similar_windows_index), approximate:
  pgvector's index search may miss true neighbours (docs/performance.md has its recall). The
  distances it returns are exact.

  Both read numeric_window_vectors (macros/create_window_vectors.sql); without it (no
  pgvector, or PROMETHEUS_PGVECTOR=off) they raise an error that says so.
#}
{% macro create_similarity_functions() %}
{%- set schema_ident = embeddings_schema() -%}
{#- Without the database: the function bodies stay right in a copy of the database. -#}
{%- set vectors = source('embeddings', 'numeric_window_vectors').include(database=false) -%}
{%- set embeddings = source('embeddings', 'numeric_window_embeddings').include(database=false) -%}
{%- set vectors_text = "'" ~ (vectors | string | replace("'", "''")) ~ "'" -%}
do $ddl$
begin
    perform pg_advisory_xact_lock(hashtext('prometheus_numeric.embedding_functions.ddl'));
    create schema if not exists {{ schema_ident }};

    -- The exact cosine distance of two vectors' values, in double precision (NULL when
    -- either is all zeros).
    create or replace function {{ schema_ident }}.similar_windows_distance(
        left_values real[], right_values real[]
    )
    returns double precision
    language sql immutable strict parallel safe
    as $fn$
    select 1 - sum(pairs.x::double precision * pairs.y)
        / nullif(sqrt(sum(pairs.x::double precision * pairs.x))
            * sqrt(sum(pairs.y::double precision * pairs.y)), 0)
    from unnest(left_values, right_values) as pairs (x, y)
    $fn$;

    -- The embedding_id of one key (through the table's unique key), after checking that
    -- similarity search can answer for it; raises what stands in the way.
    create or replace function {{ schema_ident }}.similar_windows_key(
        function_name text, entity_id text, as_of_date date, model_id text, k integer
    )
    returns bigint
    language plpgsql stable
    as $fn$
    declare
        found_id bigint;
    begin
        if not exists (select from pg_extension where extname = 'vector')
            or to_regclass({{ vectors_text }}) is null then
            raise exception '%: similarity search needs pgvector in this database: install the extension "vector" (the private server has it) and run the backfill or any dbt command once; it is off while PROMETHEUS_PGVECTOR=off', function_name
                using errcode = '0A000';  -- feature_not_supported
        end if;
        if k is null or k < 1 then
            raise exception '%: k must be a positive number of windows, got %', function_name,
                coalesce(k::text, 'NULL')
                using errcode = '22023';  -- invalid_parameter_value
        end if;
        select stored.embedding_id into found_id
        from {{ embeddings }} as stored
        where stored.entity_type = 'INSTRUMENT'
            and stored.entity_id = similar_windows_key.entity_id
            and stored.as_of_date = similar_windows_key.as_of_date
            and stored.model_id = similar_windows_key.model_id;
        if found_id is null then
            raise exception '%: no vector is stored for entity_id %, as_of_date %, model_id %',
                function_name, quote_literal(entity_id), as_of_date, quote_literal(model_id)
                using errcode = 'P0002';  -- no_data_found
        end if;
        if not exists (select from {{ vectors }} as vectors where vectors.embedding_id = found_id)
        then
            raise exception '%: the vector of entity_id %, as_of_date %, model_id % is not in numeric_window_vectors yet: the next backfill run copies it there',
                function_name, quote_literal(entity_id), as_of_date, quote_literal(model_id)
                using errcode = 'P0002';  -- no_data_found
        end if;
        return found_id;
    end
    $fn$;

    -- The candidates by exact distance: nearest first, ties by entity_id, as_of_date.
    create or replace function {{ schema_ident }}.similar_windows_reranked(
        query_id bigint, candidate_ids bigint[], k integer
    )
    returns table (entity_id text, as_of_date date, distance double precision)
    language plpgsql stable
    as $fn$
    #variable_conflict use_column
    begin
        return query
        select candidates.entity_id::text, candidates.as_of_date, exact.distance
        from {{ vectors }} as candidates
        cross join (
            select query_vector.embedding::real[] as query_values
            from {{ vectors }} as query_vector
            where query_vector.embedding_id = query_id
        ) as query
        cross join lateral (
            select {{ schema_ident }}.similar_windows_distance(
                candidates.embedding::real[], query.query_values) as distance
        ) as exact
        where candidates.embedding_id = any(candidate_ids) and exact.distance is not null
        order by exact.distance, candidates.entity_id, candidates.as_of_date
        limit k;
    end
    $fn$;

    create or replace function {{ schema_ident }}.similar_windows(
        query_entity_id text, query_as_of_date date, query_model_id text, k integer,
        exclude_same_instrument boolean default false,
        before_as_of_only boolean default false
    )
    returns table (entity_id text, as_of_date date, distance double precision)
    language plpgsql stable
    as $fn$
    declare
        query_id bigint := {{ schema_ident }}.similar_windows_key(
            'similar_windows', query_entity_id, query_as_of_date, query_model_id, k);
        vector_schema text := (
            select extnamespace::regnamespace::text from pg_extension where extname = 'vector'
        );
        -- Every window of the model and dimension but the key, with pgvector's distance.
        ranked text := format($sql$
            select
                windows.embedding_id,
                windows.embedding operator(%1$s.<=>) query.embedding as float_distance
            from {{ vectors }} as windows
            cross join query
            where windows.model_id = $3
                and %1$s.vector_dims(windows.embedding) = %1$s.vector_dims(query.embedding)
                and windows.embedding_id <> $1
                and not (coalesce($4, false) and windows.entity_id = $2)
                and not (coalesce($5, false) and windows.as_of_date >= $6)
                and (windows.embedding operator(%1$s.<=>) query.embedding) <> 'NaN'
        $sql$, vector_schema);
        candidate_ids bigint[];
    begin
        execute format($sql$
            with query as (
                select embedding, cardinality(embedding::real[]) as dims
                from {{ vectors }}
                where embedding_id = $1
            ),
            -- k + 100 candidates: one scan, and a margin so that the second scan below
            -- is rarely needed.
            nearest as (
                %1$s
                order by float_distance
                limit $7 + 100
            ),
            bounds as (
                select
                    coalesce(max(float_distance) filter (where position = $7),
                        max(float_distance))
                    + 2 * $8 * (select dims from query) as within,
                    max(float_distance) as last_distance
                from (
                    select float_distance, row_number() over (order by float_distance) as position
                    from nearest
                ) as numbered
            ),
            -- The first candidates, unless windows past them are as close as the k-th
            -- could be: then (rarely) every window that close, in a second scan.
            candidates as (
                select nearest.embedding_id
                from nearest
                where (select last_distance > within from bounds)
                union all
                select close.embedding_id
                from (%1$s) as close
                where (select last_distance <= within from bounds)
                    and close.float_distance <= (select within from bounds)
            )
            select array_agg(embedding_id) from candidates
        $sql$, ranked)
        into candidate_ids
        using query_id, query_entity_id, query_model_id, exclude_same_instrument,
            before_as_of_only, query_as_of_date, k,
            -- pgvector's float32 error per dimension (the macro's notes).
            4 * 2 ^ -24;
        return query select * from {{ schema_ident }}.similar_windows_reranked(
            query_id, candidate_ids, k);
    end
    $fn$;

    create or replace function {{ schema_ident }}.similar_windows_approximate(
        query_entity_id text, query_as_of_date date, query_model_id text, k integer,
        exclude_same_instrument boolean default false,
        before_as_of_only boolean default false
    )
    returns table (entity_id text, as_of_date date, distance double precision)
    language plpgsql volatile
    as $fn$
    declare
        query_id bigint := {{ schema_ident }}.similar_windows_key(
            'similar_windows_approximate', query_entity_id, query_as_of_date, query_model_id, k);
        vector_schema text := (
            select extnamespace::regnamespace::text from pg_extension where extname = 'vector'
        );
        dims integer;
        candidate_ids bigint[];
    begin
        execute format('select %s.vector_dims(embedding) from {{ vectors }}'
            ' where embedding_id = $1', vector_schema)
        into dims
        using query_id;
        -- A candidate list at least as long as pgvector's default (its limit is 1000), and
        -- the index searched until k windows pass the filters (pgvector 0.8's iterative
        -- scan; an older pgvector returns what its one search finds).
        perform set_config('hnsw.ef_search', least(1000, greatest(40, k))::text, true);
        begin
            perform set_config('hnsw.iterative_scan', 'relaxed_order', true);
        exception when others then
            null;
        end;
        execute format($sql$
            select array_agg(nearest.embedding_id)
            from (
                select windows.embedding_id
                from {{ vectors }} as windows
                where %1$s.vector_dims(windows.embedding) = %2$s
                    and windows.model_id = $3
                    and windows.embedding_id <> $1
                    and not (coalesce($4, false) and windows.entity_id = $2)
                    and not (coalesce($5, false) and windows.as_of_date >= $6)
                order by windows.embedding::%1$s.vector(%2$s) operator(%1$s.<=>) (
                    select query.embedding::%1$s.vector(%2$s)
                    from {{ vectors }} as query
                    where query.embedding_id = $1
                )
                limit $7
            ) as nearest
        $sql$, vector_schema, dims)
        into candidate_ids
        using query_id, query_entity_id, query_model_id, exclude_same_instrument,
            before_as_of_only, query_as_of_date, k;
        return query select * from {{ schema_ident }}.similar_windows_reranked(
            query_id, candidate_ids, k);
    end
    $fn$;
end
$ddl$;
{% endmacro %}


{#
  run-operation: the HNSW index similar_windows_approximate searches, for vectors of `dims`
  dimensions (cosine). Built once; pgvector keeps it up to date on every write, which makes
  writes slower: build it when you need it (docs/performance.md has its build time). The
  graph builds fastest when it fits in maintenance_work_mem (an optional argument).
    dbt run-operation create_similar_windows_index --args '{dims: 384, maintenance_work_mem: 4GB}'
#}
{% macro create_similar_windows_index(dims=384, maintenance_work_mem=none) %}
{%- if dims is not number or dims < 1 or dims > 2000 -%}
    {{ exceptions.raise_compiler_error("create_similar_windows_index: dims must be a whole number of dimensions from 1 to 2000 (pgvector's HNSW limit), got " ~ dims) }}
{%- endif -%}
{%- set vectors = source('embeddings', 'numeric_window_vectors') -%}
{%- set vector_schema = run_query("select extnamespace::regnamespace::text from pg_extension where extname = 'vector'") -%}
{%- if vector_schema | length == 0 or vector_schema.rows[0][0] is none -%}
    {{ exceptions.raise_compiler_error("create_similar_windows_index: needs pgvector in this database (the extension vector)") }}
{%- endif -%}
{%- set schema = vector_schema.rows[0][0] -%}
{%- set index_name = 'numeric_window_vectors_hnsw_' ~ dims -%}
{% do log("building " ~ index_name ~ " on " ~ vectors ~ " (this takes minutes on a large table)", info=true) %}
{% call statement('create_index') -%}
    {% if maintenance_work_mem %}set maintenance_work_mem = '{{ maintenance_work_mem | replace("'", "") }}';{% endif %}
    create index if not exists {{ index_name }}
    on {{ vectors }} using hnsw ((embedding::{{ schema }}.vector({{ dims }})) {{ schema }}.vector_cosine_ops)
    where {{ schema }}.vector_dims(embedding) = {{ dims }}
{%- endcall %}
{% endmacro %}

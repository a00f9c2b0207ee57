{#
  Fails every vector holding a NaN or an infinity, or whose length is not whole float32s.
  A little-endian float32 is non-finite when its exponent bits are all ones: the high bit
  of byte 2 set and byte 3 equal to 7f or ff. The regular expression walks the hex text four
  bytes (eight hex digits) at a time, so PostgreSQL checks a vector in one linear pass.
  That pass costs about 20 us of CPU a vector, so the scan should run in parallel workers:
  the length check is written `% 4 in (1, 2, 3)`, which PostgreSQL estimates as selective,
  where `% 4 <> 0` was taken to keep 99.5% of the rows and the parallel plan looked dearer
  than a serial one (360,000 vectors: 8.2 s serial, 4.6 s with two workers).
#}
{% test vector_values_finite(model, column_name, run_id_expression=none) %}

with

vectors as (

    select
        {{ column_name }} as vector

    from {{ model }}
    where {{ run_scope_filter(run_id_expression) }}

),

final as (

    select
        vector

    from vectors
    where vector is null
        or octet_length(vector) % 4 in (1, 2, 3)
        or encode(vector, 'hex') ~ '^(?:[0-9a-f]{8})*[0-9a-f]{4}[89a-f][0-9a-f][7f]f'

)

select * from final
{% endtest %}

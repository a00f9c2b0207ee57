{#
  Fails every vector holding a NaN or an infinity, or whose length is not whole float32s.
  A little-endian float32 is non-finite when its exponent bits are all ones: the high bit
  of byte 2 set and byte 3 equal to 7f or ff. The regular expression walks the hex text four
  bytes (eight hex digits) at a time, so PostgreSQL checks a vector in one linear pass.
  That pass is CPU-bound, so the scan should run in parallel workers: the length check is
  written `% 4 in (1, 2, 3)`, which PostgreSQL estimates as selective, where `% 4 <> 0` was
  estimated to keep nearly every row and the parallel plan looked dearer than a serial one.
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

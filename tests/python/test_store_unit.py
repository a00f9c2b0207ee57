"""The writer's COPY rows, built by numpy, decoded back by hand (no database needed)."""

from __future__ import annotations

import datetime as dt
import json
import struct

import numpy as np

from prometheus.numeric.copy_rows import copy_rows, json_ints, window_specs
from prometheus.numeric.registry import ModelSpec
from prometheus.numeric.window_vectors import _encoded_rows
from prometheus.numeric.windows import BOUNDS_ROW, NO_TRADING_DAYS, PG_EPOCH, StagedWindows


def days(day: str) -> int:
    return int((np.datetime64(day, "D") - PG_EPOCH).astype(int))


def batch_of_two() -> StagedWindows:
    bounds = np.zeros(2, dtype=BOUNDS_ROW)
    bounds["window_seq"] = [7, 9]
    bounds["selection_rank"] = [1, 2]
    bounds["as_of_date"] = [days("2025-01-31"), days("2025-01-31")]
    bounds["start_date"] = [days("2024-10-30"), days("2024-11-12")]
    bounds["end_date"] = [days("2025-01-31"), days("2025-01-15")]
    bounds["rows_observed"] = [3, 2]
    bounds["rows_filled"] = [0, 1]
    bounds["min_rows"] = 2
    bounds["lookback_days"] = 9
    bounds["rows_rejected"] = [0, 12345]
    bounds["trading_days_after_end"] = [0, NO_TRADING_DAYS]
    bounds["is_stale"] = [0, 1]
    return StagedWindows(bounds, {1: "US_EQ_0001", 2: "ÉU_7"},
                         np.array([-2, 0x0123456789ABCDEF], dtype=np.int64),
                         np.array([101.25, np.nan]))


def test_json_ints_are_fixed_width_numbers_and_null() -> None:
    text = json_ints(np.array([0, -42, 2**31 - 1, NO_TRADING_DAYS]))
    assert text.shape == (4, 11)
    assert [json.loads(row.tobytes()) for row in text] == [0, -42, 2**31 - 1, None]


def test_window_specs_decode_to_the_staged_values() -> None:
    spec = ModelSpec("num-stab-core-v1", "pad_to_dim", 384)
    texts = window_specs(batch_of_two(), spec, 3, "run-1")
    decoded = [json.loads(row.tobytes()) for row in texts]
    assert decoded[1] == {
        "window_days": 3, "entity_type": "INSTRUMENT",
        "features": ["close", "volume", "log_return"], "encoder": "pad_to_dim", "dim": 384,
        "model_id": "num-stab-core-v1", "run_id": "run-1",
        "start_date": "2024-11-12", "end_date": "2025-01-15", "last_trade_date": "2025-01-15",
        "rows_observed": 2, "rows_filled": 1, "rows_rejected": 12345,
        "trading_days_after_end": None, "is_stale": True, "min_rows": 2, "lookback_days": 9,
        # PostgreSQL's NaN (float8send) is 7ff8000000000000, as numpy's.
        "inputs_fingerprint": "v1/pad_to_dim/384/3/0123456789abcdef/7ff8000000000000",
    }
    assert decoded[0]["inputs_fingerprint"] == (
        "v1/pad_to_dim/384/3/" + struct.pack(">q", -2).hex() + "/"
        + struct.pack(">d", 101.25).hex())
    assert decoded[0]["is_stale"] is False and decoded[0]["trading_days_after_end"] == 0


def read_field(data: bytes, at: int) -> tuple[bytes, int]:
    length = int.from_bytes(data[at:at + 4], "big", signed=True)
    return data[at + 4:at + 4 + length], at + 4 + length


def test_copy_rows_hold_each_field_with_its_length() -> None:
    """Ids of different byte lengths (a non-ASCII one) are separate groups of rows."""
    spec = ModelSpec("num-stab-core-v1", "pad_to_dim", 384)
    vectors = np.arange(2 * 384, dtype=np.float32).reshape(2, 384)
    data = bytes(copy_rows(batch_of_two(), vectors, spec, 3, "run-1"))
    rows, at = [], 0
    while at < len(data):
        assert int.from_bytes(data[at:at + 2], "big") == 6
        at += 2
        fields = []
        for _ in range(6):
            value, at = read_field(data, at)
            fields.append(value)
        rows.append(fields)
    by_id = {fields[1].decode(): fields for fields in rows}
    assert sorted(by_id) == ["US_EQ_0001", "ÉU_7"]
    eu = by_id["ÉU_7"]
    assert eu[0] == b"INSTRUMENT" and eu[4] == b"num-stab-core-v1"
    assert eu[2][0] == 1 and json.loads(eu[2][1:])["start_date"] == "2024-11-12"  # jsonb v1
    assert PG_EPOCH + np.timedelta64(int.from_bytes(eu[3], "big"), "D") == \
        np.datetime64(dt.date(2025, 1, 31))
    assert np.array_equal(np.frombuffer(eu[5], "<f4"), vectors[1])
    assert np.array_equal(np.frombuffer(by_id["US_EQ_0001"][5], "<f4"), vectors[0])


def test_fill_rows_hold_pgvector_values_and_may_be_none() -> None:
    """A fill batch whose vectors are all left out (NaN or infinity) copies no row."""
    assert _encoded_rows(np.zeros(0, np.int64), np.zeros((0, 384), np.float32)).size == 0
    values = np.array([[1.5, -0.0, 3.4028235e38]], dtype=np.float32)
    data = _encoded_rows(np.array([2**40 + 7]), values).tobytes()
    assert int.from_bytes(data[:2], "big") == 2
    embedding_id, at = read_field(data, 2)
    assert int.from_bytes(embedding_id, "big", signed=True) == 2**40 + 7
    embedding, at = read_field(data, at)
    assert at == len(data)
    assert struct.unpack(">hh", embedding[:4]) == (3, 0)  # dimensions, unused
    assert np.array_equal(np.frombuffer(embedding[4:], ">f4").view(">u4"),
                          values[0].astype(">f4").view(">u4"))

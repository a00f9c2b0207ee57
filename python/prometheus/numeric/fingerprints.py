"""The fingerprint of a window's inputs, stored with its vector (window_spec
inputs_fingerprint) so that a later run can tell whether the vector is outdated.

    v1/<encoder>/<dim>/<window_days>/<rows>/<previous close>

<rows>: the sum, wrapped to 64 bits, of the row_hash of the window's observed rows (their
trade_date, close and volume; int_daily_returns_computed); <previous close>: the bits of the
close the first row's log-return divides by (NaN when the first row is the instrument's
first). Both in 16 hex digits. SQL computes the same text from the daily returns to find
outdated vectors (macro inputs_fingerprint, macros/outdated_keys.sql): the two must agree
to the character, which the tests check on every stored vector.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from prometheus.numeric.registry import ModelSpec

VERSION = "v1"
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def window_inputs(row_hash: NDArray[np.int64], previous_close: NDArray[np.float64],
                  first: NDArray[np.int64], observed: NDArray[np.int64]
                  ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Per window, the wrapped sum of row_hash over history rows first .. first+observed-1,
    and the previous close of its first row."""
    # Prefix sums wrap modulo 2^64 like the SQL side's sum reduced to 64 bits; a window's
    # sum is the difference of two of them, whatever instruments lie before it.
    with np.errstate(over="ignore"):
        prefix = np.concatenate(([0], np.cumsum(row_hash, dtype=np.int64)))
        sums = prefix[first + observed] - prefix[first]
    return sums.astype(np.int64), previous_close[first]


def _hex16(values: NDArray[np.generic]) -> NDArray[np.uint8]:
    """8-byte values as 16 lowercase hex digits, big-endian: (n, 16) bytes."""
    raw = np.ascontiguousarray(values).view(np.uint8).reshape(-1, 8)
    if raw.size and np.little_endian:
        raw = raw[:, ::-1]
    digits = np.empty((raw.shape[0], 16), dtype=np.uint8)
    digits[:, 0::2] = _HEX[raw >> 4]
    digits[:, 1::2] = _HEX[raw & 15]
    return digits


def fingerprints(spec: ModelSpec, window_days: int, rows_hash: NDArray[np.int64],
                 previous_close: NDArray[np.float64]) -> NDArray[np.uint8]:
    """The fingerprint text of each window for one model: (n, length) ASCII bytes."""
    prefix = f"{VERSION}/{spec.encoder}/{spec.vector_dim(window_days)}/{window_days}/".encode()
    n = rows_hash.shape[0]
    return np.hstack([
        np.broadcast_to(np.frombuffer(prefix, np.uint8), (n, len(prefix))),
        _hex16(rows_hash.astype(np.int64)),
        np.full((n, 1), ord("/"), dtype=np.uint8),
        _hex16(previous_close.astype(np.float64)),
    ])

"""The batching and gathering of windows.py, and the encoder's guard, on hand-made arrays
(no database needed)."""

from __future__ import annotations

import numpy as np
import pytest

from prometheus.numeric.encoders import encode
from prometheus.numeric.errors import PipelineError
from prometheus.numeric.registry import ModelSpec
from prometheus.numeric.windows import BOUNDS_ROW, HISTORY_ROW, gather_windows, instrument_groups


def test_instrument_groups_keep_batches_near_the_limit() -> None:
    sizes = [(1, 40), (2, 40), (3, 40), (5, 250), (6, 10), (9, 10)]
    assert instrument_groups(sizes, 100) == [(1, 2), (3, 3), (5, 5), (6, 9)]
    assert instrument_groups([], 100) == []


def two_instruments() -> tuple[np.ndarray, np.ndarray]:
    history = np.zeros(5, dtype=HISTORY_ROW)
    history["selection_rank"] = [1, 1, 1, 2, 2]
    history["valid_row_number"] = [7, 8, 9, 1, 2]
    history["trade_date"] = [100, 101, 104, 100, 103]
    history["close"] = [10.0, 11.0, 12.0, 20.0, 21.0]
    history["volume"] = [1.0, 2.0, 3.0, 4.0, 5.0]
    history["log_return"] = [0.1, 0.2, 0.3, 0.0, 0.5]
    bounds = np.zeros(2, dtype=BOUNDS_ROW)
    bounds["window_seq"] = [1, 2]
    bounds["selection_rank"] = [1, 2]
    bounds["first_row_number"] = [7, 1]
    bounds["rows_filled"] = [0, 1]
    bounds["start_date"] = [100, 100]
    bounds["end_date"] = [104, 103]
    return bounds, history


def test_gather_fills_the_front_and_zeroes_filled_log_returns() -> None:
    bounds, history = two_instruments()
    batch = gather_windows(bounds, history, 3)
    assert batch.windows.window_seqs.tolist() == [1, 2]
    assert batch.features[0].tolist() == [[10, 1, 0.1], [11, 2, 0.2], [12, 3, 0.3]]
    # Filled row: the oldest observed close and volume, log_return 0; the first observed
    # row keeps its own log_return.
    assert batch.features[1].tolist() == [[20, 4, 0], [20, 4, 0.0], [21, 5, 0.5]]


@pytest.mark.parametrize("field", ["start_date", "end_date"])
def test_gather_refuses_rows_that_moved_since_staging(field: str) -> None:
    """Another run recomputed the instrument (a corrected past): same row numbers, other
    dates. Encoding them would mix two versions of the history."""
    bounds, history = two_instruments()
    bounds[field][0] += 1
    with pytest.raises(PipelineError, match="changed while it was encoded"):
        gather_windows(bounds, history, 3)


def test_encoder_refuses_non_finite_values() -> None:
    features = np.ones((2, 4, 3))
    features[1, 2, 1] = 1e39  # finite as a double, infinite as a float32
    with pytest.raises(PipelineError, match="NaN or inf"):
        encode(features, ModelSpec("num-stab-core-v1", "pad_to_dim", 384))

"""The encoders of SPEC "Encoding": float32 values, row-major, oldest row first."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from prometheus.numeric.errors import PipelineError
from prometheus.numeric.registry import ModelSpec


def encode(features: NDArray[np.float64], spec: ModelSpec) -> NDArray[np.float32]:
    """Encode windows of shape (n, window_days, 3) into little-endian float32 vectors.

    Each row's values are [close, volume, log_return]; flattening row-major gives
    [close_0, volume_0, log_return_0, close_1, ...]. pad_to_dim appends zeros up to dim.
    """
    count, window_days, features_per_row = features.shape
    values = window_days * features_per_row
    dim = spec.vector_dim(window_days)
    vectors = np.zeros((count, dim), dtype="<f4")
    with np.errstate(over="ignore", invalid="ignore"):
        # astype rounds each double to the nearest float32 (IEEE-754, ties to even).
        vectors[:, :values] = features.reshape(count, values).astype("<f4")
    if not np.isfinite(vectors).all():
        # The staging rejects such rows; this guard keeps a NaN or inf out of storage anyway.
        raise PipelineError(f"model {spec.model_id}: a staged window encodes to NaN or inf")
    return vectors

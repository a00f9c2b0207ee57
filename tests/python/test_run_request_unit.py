"""What a run request derives from the flags (no database)."""

from __future__ import annotations

import pytest

from prometheus.numeric.cli import build_parser, request_from_args

DATE = ["--as-of", "2025-01-31", "--market-id", "US_EQ", "--model-id", "numeric-simple-v1"]


@pytest.mark.parametrize(("flags", "windows"), [
    ([], 20_000),  # 63 rows: 20,000 windows of 189 values
    (["--window-days", "21"], 20_000),  # never more windows than the default
    (["--window-days", "64"], 19_687),  # 3,780,000 values // 192
    (["--window-days", "1000"], 1_260),  # a batch's memory does not grow with the window
    (["--window-days", "500000"], 2),  # the longest window: 1,500,000 values
    (["--window-days", "1000", "--batch-size", "20000"], 20_000),  # --batch-size decides
    (["--batch-size", "7"], 7),
])
def test_a_batch_holds_about_as_many_values_whatever_the_window(flags: list[str],
                                                                 windows: int) -> None:
    request = request_from_args(build_parser().parse_args([*DATE, *flags]))
    assert request.batch_windows == windows

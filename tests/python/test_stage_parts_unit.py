"""How a run is cut into parts, and the thread that stages them (no database)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from prometheus.numeric.run_request import BackfillRequest
from prometheus.numeric.stage_parts import PartStager, stage_part_count

RANGE = {"start_date": dt.date(2022, 4, 1), "end_date": dt.date(2025, 2, 28),
         "market_id": "US_EQ"}


@pytest.mark.parametrize(("request_fields", "market_instruments", "parts"), [
    ({"as_of": dt.date(2025, 1, 31), "market_id": "US_EQ"}, 5000, 1),  # one date
    ({**RANGE, "limit": 500}, 5000, 4),  # ~761 dates x 500: about 380,000 windows
    ({**RANGE, "limit": 500, "shard": (0, 2)}, 5000, 2),  # half of them per shard
    ({**RANGE, "limit": 500, "skip_existing": True}, 5000, 1),  # mostly stored
    ({**RANGE}, 40, 1),  # a small market, whole
    ({**RANGE, "offset": 30}, 40, 1),
    ({**RANGE}, 5000, 8),  # at most 8 parts
    ({**RANGE, "market_id": None, "instrument_ids": ["A", "B"]}, 0, 1),
    ({**RANGE, "limit": 12, "stage_parts": 3}, 5000, 3),  # --stage-parts decides
])
def test_big_ranges_are_cut_into_parts_of_about_100k_windows(
        request_fields: dict, market_instruments: int, parts: int) -> None:
    request = BackfillRequest(model_ids=["num-stab-core-v1"], **request_fields)
    asked: list[str] = []

    def count_market(market_id: str) -> int:
        asked.append(market_id)
        return market_instruments
    assert stage_part_count(request, count_market) == parts
    # The market is counted only when the estimate needs it (a range of a market, unsplit).
    needed = request.market_id is not None and request.start_date is not None \
        and request.stage_parts is None and not request.skip_existing
    assert asked == (["US_EQ"] if needed else [])


def test_parts_land_in_order_while_the_caller_works() -> None:
    staged: list[int] = []
    with PartStager(staged.append, 4) as stager:
        assert stager.landed_count >= 1
        landed = list(stager.landed())
        assert stager.landed_count == 4
    assert landed == [0, 1, 2, 3] and staged == [1, 2, 3]


def test_a_failing_part_is_raised_to_the_caller_and_no_later_part_is_staged() -> None:
    staged: list[int] = []

    def stage(part: int) -> None:
        if part == 2:
            raise RuntimeError("dbt run failed: part 2")
        staged.append(part)

    with pytest.raises(RuntimeError, match="part 2"), PartStager(stage, 5) as stager:
        for _ in stager.landed():
            pass
    assert staged == [1]


def test_a_caller_that_fails_stops_the_staging_after_the_part_in_progress() -> None:
    staged: list[int] = []
    in_progress = threading.Event()

    def stage(part: int) -> None:
        in_progress.set()
        # Part 1 lasts until the caller has left the block (which stops the staging).
        assert stager._stopped.wait(5)
        staged.append(part)

    stager = PartStager(stage, 5)
    with pytest.raises(ValueError, match="encoder"), stager:
        for part in stager.landed():
            assert part == 0 and in_progress.wait(5)
            raise ValueError("encoder failed")
    assert staged == [1]

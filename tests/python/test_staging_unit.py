"""Staging in parts: how many parts a run gets, and the background stager's order and errors."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from prometheus.numeric.staging import PartStager, estimated_windows, stage_part_count


def test_a_single_date_or_a_short_range_is_one_part() -> None:
    assert estimated_windows(None, None, "daily", 500) == 500
    assert stage_part_count(500) == 1
    week = estimated_windows(dt.date(2025, 1, 6), dt.date(2025, 1, 12), "daily", 500)
    assert week == 2500 and stage_part_count(week) == 1


def test_three_years_daily_for_500_instruments_is_two_parts() -> None:
    windows = estimated_windows(dt.date(2022, 4, 1), dt.date(2025, 2, 28), "daily", 500)
    assert 370_000 < windows < 390_000  # 1,065 calendar days, about 761 weekdays
    assert stage_part_count(windows) == 2
    assert stage_part_count(3 * windows) == 6  # 1,500 instruments
    monthly = estimated_windows(dt.date(2022, 4, 1), dt.date(2025, 2, 28), "month-end", 500)
    assert 17_000 < monthly < 18_000 and stage_part_count(monthly) == 1
    assert stage_part_count(50_000_000) == 8


def test_parts_land_in_order_after_part_zero() -> None:
    staged: list[tuple[int, str]] = []

    def stage(index: int) -> None:
        staged.append((index, threading.current_thread().name))

    with PartStager(stage, 4) as stager:
        assert list(stager.landed()) == [0, 1, 2, 3]
    assert [index for index, _ in staged] == [1, 2, 3]
    assert {name for _, name in staged} == {"stage-parts"}


def test_a_failed_part_is_raised_where_it_is_awaited_and_later_parts_are_not_staged() -> None:
    staged: list[int] = []

    def stage(index: int) -> None:
        if index == 2:
            raise RuntimeError("part 2 failed")
        staged.append(index)

    with PartStager(stage, 5) as stager:
        landed = stager.landed()
        assert next(landed) == 0 and next(landed) == 1
        with pytest.raises(RuntimeError, match="part 2 failed"):
            next(landed)
    assert staged == [1]


def test_closing_early_stops_after_the_part_in_progress() -> None:
    started = threading.Event()
    release = threading.Event()
    staged: list[int] = []

    def stage(index: int) -> None:
        started.set()
        release.wait(timeout=10)
        staged.append(index)

    stager = PartStager(stage, 6)
    assert started.wait(timeout=10)
    stager.stop()  # the encoder failed while part 1 was staged
    release.set()
    stager.close()  # part 1 finishes, parts 2.. are never staged
    assert staged == [1]


def test_one_part_starts_no_thread() -> None:
    def stage(index: int) -> None:
        raise AssertionError("part 0 is the caller's")

    with PartStager(stage, 1) as stager:
        assert list(stager.landed()) == [0]


def test_stopping_ends_a_reader_waiting_for_a_part() -> None:
    release = threading.Event()

    def stage(index: int) -> None:
        release.wait(timeout=10)

    stager = PartStager(stage, 3)
    landed = stager.landed()
    assert next(landed) == 0
    got: list[int] = []
    reader = threading.Thread(target=lambda: got.extend(landed))
    reader.start()  # waits for part 1, as the encoder's reading thread does
    stager.stop()  # the writer failed
    reader.join(timeout=5)
    assert not reader.is_alive() and got == []
    release.set()
    stager.close()

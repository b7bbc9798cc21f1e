"""The calibrated univariate detector (issue 14): spread floor, tail probability, one alarm
per episode, level shifts, seasonality, bad input."""

from __future__ import annotations

import math
import pickle
import random
from datetime import date, datetime, timedelta, timezone

import pytest

from detectors.univariate import ThresholdFilter, UnivariateDetector

UTC = timezone.utc
START = datetime(2024, 3, 4, tzinfo=UTC)          # a Monday


def five_minutes(i: int) -> datetime:
    return START + timedelta(minutes=5 * i)


def alarms(det, values, at=five_minutes) -> list[int]:
    return [i for i, v in enumerate(values) if det.update(at(i), v) >= det.threshold]


@pytest.mark.parametrize("noise", ["normal", "laplace", "student_t3"])
def test_noise_of_any_tail_raises_a_few_alarms_a_week_and_fewer_at_0_7(noise):
    """The score is calibrated per memory span (a week): 0.5 is one such point per week on
    each side, so stationary noise gets two to four a week once the first week is learned;
    at 0.7 (one in about 12 weeks under the fitted tail) under one a week, two on Student t3."""
    rng = random.Random(3)
    draw = {"normal": lambda: rng.gauss(0, 1),
            "laplace": lambda: rng.expovariate(1) * rng.choice((-1, 1)),
            "student_t3": lambda: rng.gauss(0, 1) / math.sqrt(sum(rng.gauss(0, 1) ** 2 for _ in range(3)) / 3)}[noise]
    weeks = 4
    det = UnivariateDetector()
    scores = [det.update(five_minutes(i), 100 + 5 * draw()) for i in range(2016 * (1 + weeks))][2016:]
    assert sum(s >= det.threshold for s in scores) <= 4 * weeks
    assert sum(s >= 0.7 for s in scores) <= 2 * weeks


def test_a_whole_unit_meter_is_not_extreme_at_every_step():
    """A small shop's water meter: whole cubic metres, mostly 0 or 1 an hour."""
    rng = random.Random(5)
    readings = [rng.choice((0, 0, 0, 1, 1, 2)) for _ in range(24 * 60)]
    hourly = lambda i: START + timedelta(hours=i)   # noqa: E731
    assert alarms(UnivariateDetector(), readings, hourly) == []
    det = UnivariateDetector()
    alarms(det, readings, hourly)
    assert det.update(hourly(len(readings)), 40) >= det.threshold      # a burst pipe is not


def test_a_plant_that_stops_and_restarts_raises_one_alarm_each_time_not_one_per_reading():
    rng = random.Random(7)
    values = [500 + rng.gauss(0, 10) for _ in range(3000)] + [0.0] * 2000 + [500 + rng.gauss(0, 10) for _ in range(1000)]
    found = alarms(UnivariateDetector(), values)
    assert 3000 in found and [i for i in found if 3000 < i < 5000] == []     # the stop, once
    assert len([i for i in found if 5000 <= i < 5050]) == 1                  # the restart, once


def test_a_level_shift_is_flagged_at_its_start_then_adopted():
    det, rng = ThresholdFilter(UnivariateDetector()), random.Random(2)
    flags = [det.update(five_minutes(t), (10 if t < 1000 else 30) + rng.gauss(0, 1)) for t in range(2000)]
    assert flags[1000] and sum(flags[1000:]) == 1 and sum(flags[:1000]) == 0
    assert abs(det.detector.last_expected - 30) < 1


def test_a_daily_shape_is_learned_and_a_missing_peak_is_an_anomaly():
    """Quiet nights and busy days, sharp edges at 08:00 and 18:00 (5-minute readings)."""
    rng = random.Random(11)

    def reading(i):
        hour = five_minutes(i).hour
        return (80 if 8 <= hour < 18 else 20) + rng.gauss(0, 2)

    days = 10
    det = UnivariateDetector()
    found = alarms(det, [reading(i) for i in range(288 * days)])
    assert [i for i in found if i >= 288 * 4] == []          # edges are expected once learned
    flat_day = [det.update(five_minutes(288 * days + i), 20 + rng.gauss(0, 2)) for i in range(288)]
    assert max(flat_day[8 * 12:18 * 12]) >= det.threshold      # the day the peak did not come
    assert det.last_expected == pytest.approx(20, abs=3)


def test_a_weekly_shape_of_a_daily_series_is_learned():
    det = UnivariateDetector()
    day0 = date(2024, 1, 1)
    for i in range(10 * 7):
        day = day0 + timedelta(days=i)
        det.update(day, (100.0 if day.weekday() < 5 else 10.0) + i % 3)
    assert det.update(day0 + timedelta(days=70), 101.0) < det.threshold      # a Monday
    assert det.update(day0 + timedelta(days=75), 100.0) >= det.threshold     # a Saturday at Monday's level


def test_the_score_is_a_probability_scale_in_0_1():
    det, rng = UnivariateDetector(), random.Random(1)
    scores = [det.update(t, rng.choice([0, 1, 5, 1e6, -3])) for t in range(2000)]
    assert all(0.0 <= s < 1.0 for s in scores)


def test_the_default_threshold_is_the_detectors_own():
    assert UnivariateDetector().threshold == 0.5
    assert ThresholdFilter(UnivariateDetector(threshold=0.7)).threshold == 0.7


def test_bad_input_is_refused_with_a_clear_error():
    det = UnivariateDetector()
    with pytest.raises(ValueError, match="naive datetime"):
        det.update(datetime(2024, 1, 1), 1.0)
    with pytest.raises(ValueError, match="finite"):
        det.update(START, float("nan"))
    with pytest.raises(ValueError, match="season"):
        UnivariateDetector(season="monthly")


def test_a_five_minute_series_pickles_to_a_bounded_size():
    det, rng = UnivariateDetector(), random.Random(4)
    for i in range(288 * 30):
        det.update(five_minutes(i), 50 + 20 * math.sin(i / 288 * 2 * math.pi) + rng.gauss(0, 2))
    assert len(pickle.dumps(det, protocol=5)) < 16_000

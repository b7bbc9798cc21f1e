"""One spread floor (detectors.baseline.spread_floor) under the general detector and the
utility rules (issue 14): a spread never below one step of the meter or a share of the level."""

from __future__ import annotations

import random
from datetime import date, timedelta

from detectors.baseline import Resolution, RobustWindow, spread_floor
from detectors.enterprise import EnterpriseDetectors
from detectors.thresholds import DEFAULT

PROFILE = {"name": "示范小店", "industry": "F52", "town": "长安镇", "status": "active",
           "established_on": date(2015, 3, 1), "key_enterprise": False}
START = date(2024, 6, 11)          # a Tuesday; no public holiday until mid-September


def shop() -> EnterpriseDetectors:
    det = EnterpriseDetectors("914403001922038216")
    det.on_profile(PROFILE)
    return det


def drops(det, amounts, utility="water") -> list:
    found = []
    for i, amount in enumerate(amounts):
        found += det.on_day(utility, START + timedelta(days=i), amount)
    return [f for f in found if f.rule == "utility_drop"]


def test_a_rules_spread_is_the_robust_scale_floored_by_the_shared_floor():
    w = RobustWindow(20)
    for v in [1, 1, 1, 2, 1, 0, 1, 1, 1, 1]:
        w.push(v)
    assert w.scale() < 1.0
    assert w.spread(DEFAULT.spread_floor_ratio, resolution=1.0) == spread_floor(w.median(), 1.0, 0.05) == 1.0
    assert w.spread(DEFAULT.spread_floor_ratio) == max(w.scale(), 0.05 * w.median())


def test_the_resolution_is_the_smallest_step_once_three_values_were_seen():
    resolution = Resolution()
    for value in [2000.0, 2000.0, 30.0]:        # a constant meter that stopped: a step, no resolution
        resolution.observe(value)
    assert resolution.value == 0.0
    for value in [4.0, 4.0, 6.0, 3.0, 4.0]:
        resolution.observe(value)
    assert resolution.value == 1.0 and Resolution(state=resolution.to_tuple()).value == 1.0


def test_a_whole_unit_water_meter_reading_0_for_a_few_days_is_not_a_stop():
    """A small shop's meter reports whole cubic metres, mostly 1 a day: three working days of
    0 are within one step of its level, not a stop."""
    rng = random.Random(4)
    usual = [rng.choice((1, 1, 1, 1, 2, 0)) for _ in range(60)]
    quiet = [0 if (START + timedelta(days=60 + i)).weekday() < 5 else 1 for i in range(7)]
    assert drops(shop(), usual + quiet + usual[:10]) == []


def test_the_same_stop_on_a_meter_far_above_its_step_is_a_drop():
    rng = random.Random(4)
    usual = [rng.choice((10, 10, 11, 9, 12, 10)) for _ in range(60)]
    stop = [0] * 7
    found = drops(shop(), usual + stop)
    assert found and found[0].status == "open"

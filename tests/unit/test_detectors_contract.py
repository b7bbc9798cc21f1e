"""One contract suite run against every detector class (like river's ``checks``):
pickling round-trip mid-stream, same input -> same outputs, and bounded state."""

from __future__ import annotations

import ast
import pickle
import random
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from detectors.alerts import AlertBook
from detectors.baseline import RobustWindow, SeasonalBaseline
from detectors.cohorts import Cohorts
from detectors.days import EventClock
from detectors.enterprise import EnterpriseDetectors
from detectors.findings import Finding
from detectors.persistence import Persistence
from detectors.poisson import PoissonBurst
from detectors.risk import RiskScore
from detectors.univariate import ThresholdFilter, UnivariateDetector
from detectors.utility import UtilitySeries

START = date(2023, 6, 5)
UTC = timezone.utc


def stream(seed: int, n: int = 400):
    """A seeded daily series with weekly shape, noise, a stop and a spike."""
    rng = random.Random(seed)
    for i in range(n):
        day = START + timedelta(days=i)
        value = (1000 if day.weekday() < 5 else 300) * rng.uniform(0.85, 1.15)
        if 200 <= i < 215:
            value *= 0.05
        if 300 <= i < 303:
            value *= 5
        yield i, day, value


PROFILE = {"name": "n", "industry": "C39", "town": "t", "status": "active",
           "established_on": date(2010, 1, 1), "key_enterprise": False}


def _enterprise(obj, i, day, value):
    out = obj.on_day("electricity", day, value)
    if day.day == 15:
        prev = (day.replace(day=1) - timedelta(days=1))
        period = f"{prev.year}-{prev.month:02d}"
        out += obj.on_tax(period, 0.0 if i > 250 else value * 200, 0.0 if i > 250 else 100.0)
        out += obj.on_social(period, 100 if i < 330 else 50, 1e5)
    if i % 37 == 0 or 340 <= i < 343:
        out += obj.on_complaint(day, complaint_id=f"c{i}") + obj.on_complaint(day, complaint_id=f"d{i}")
    out += obj.on_watermark(day)
    return [(f.rule, f.status, f.severity, f.window_start, f.window_end, round(f.score, 9)) for f in out]


def _finding(i, day):
    status = "resolved" if i % 5 == 4 else "open"
    return Finding(("utility_drop", "headcount_drop")[i % 2], ("warning", "critical")[i % 3 == 0], status,
                   day - timedelta(days=i % 4), day, float(i), 10.0, [], {"zh": "", "en": ""}, 0.5)


def _at(day):
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


CASES = {
    "UnivariateDetector": (lambda: UnivariateDetector(), lambda o, i, d, v: round(o.update(d, v), 12)),
    "UnivariateDetector(season)": (lambda: UnivariateDetector(season="day_of_week"),
                                   lambda o, i, d, v: round(o.update(d, v), 12)),
    "UnivariateDetector(5-minute)": (lambda: UnivariateDetector(),
                                     lambda o, i, d, v: round(o.update(_at(START) + timedelta(minutes=5 * i), v), 12)),
    "ThresholdFilter": (lambda: ThresholdFilter(UnivariateDetector(season=7)), lambda o, i, d, v: o.update(d, v)),
    "RobustWindow": (lambda: RobustWindow(16), lambda o, i, d, v: (o.push(v), o.median(), o.scale())[1:]),
    "SeasonalBaseline": (lambda: SeasonalBaseline(), lambda o, i, d, v: (o.learn(d, v), o.expected(d))),
    "Persistence": (lambda: Persistence(3), lambda o, i, d, v: (o.update(v < 500 if d.weekday() < 5 else None, d), o.start)),
    "PoissonBurst": (lambda: PoissonBurst(), lambda o, i, d, v: round(o.score(i % 9, i % 4, 90, 0.01), 12)),
    "UtilitySeries": (lambda: UtilitySeries("electricity"),
                      lambda o, i, d, v: (o.observe(d, v, PROFILE, Cohorts(), "e"), o.drop_start, o.spike_start)[1:]),
    "EnterpriseDetectors": (lambda: _fresh_enterprise(), _enterprise),
    "Cohorts": (lambda: Cohorts(min_members=5),
                lambda o, i, d, v: (o.observe(PROFILE, "m", f"e{i % 50}", v), o.record_day(PROFILE, "electricity", d, v < 500),
                                    o.stats(PROFILE, "m"), o.low_share(PROFILE, "electricity", d, 1))[2:]),
    "AlertBook": (lambda: AlertBook(), lambda o, i, d, v: o.apply("914403001922038216", _finding(i, d), PROFILE, _at(d))),
    "RiskScore": (lambda: RiskScore("914403001922038216"),
                  lambda o, i, d, v: (o.update(_finding(i, d), _at(d)), o.score(_at(d)))[1]),
    "EventClock": (lambda: EventClock(), lambda o, i, d, v: o.observe(_at(d) + timedelta(hours=i % 24))),
}


def _fresh_enterprise():
    det = EnterpriseDetectors("914403001922038216")
    det.on_profile(PROFILE)
    return det


def run(obj, step, items):
    return [step(obj, *item) for item in items]


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_input_gives_the_same_outputs(name):
    make, step = CASES[name]
    items = list(stream(seed=11))
    assert run(make(), step, items) == run(make(), step, items)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_pickled_detector_continues_exactly_like_the_original(name):
    make, step = CASES[name]
    items = list(stream(seed=5))
    original = make()
    run(original, step, items[:180])
    copy = pickle.loads(pickle.dumps(original, protocol=5))
    assert run(copy, step, items[180:]) == run(original, step, items[180:])


@pytest.mark.parametrize("name", ["UnivariateDetector", "UnivariateDetector(season)", "UnivariateDetector(5-minute)",
                                  "SeasonalBaseline", "UtilitySeries", "EnterpriseDetectors", "RiskScore", "AlertBook"])
def test_state_stays_bounded_however_long_the_stream(name):
    make, step = CASES[name]
    obj = make()
    run(obj, step, list(stream(seed=2, n=400)))
    size_after_400 = len(pickle.dumps(obj, protocol=5))
    run(obj, step, [(i + 400, d + timedelta(days=400), v) for i, d, v in stream(seed=3, n=800)])
    assert len(pickle.dumps(obj, protocol=5)) <= 1.3 * size_after_400 + 512


def test_an_enterprise_with_a_year_of_three_utilities_pickles_to_a_few_kb():
    det = _fresh_enterprise()
    for i, day, value in stream(seed=1, n=365):
        for utility, factor in (("electricity", 1.0), ("water", 0.01), ("gas", 0.1)):
            det.on_day(utility, day, value * factor)
        if day.day == 15:
            prev = day.replace(day=1) - timedelta(days=1)
            det.on_tax(f"{prev.year}-{prev.month:02d}", value * 200, 100.0)
            det.on_social(f"{prev.year}-{prev.month:02d}", 100, 1e5)
        det.on_watermark(day)
    size = len(pickle.dumps(det, protocol=5))
    assert size < 3_584, size          # the worker budgets 4 KB of memory per enterprise


FORBIDDEN = {"faust", "kafka", "aiokafka", "clickhouse_driver", "chdb", "prometheus_client"}


def test_detectors_import_nothing_from_kafka_faust_clickhouse_or_prometheus():
    root = Path(__file__).resolve().parents[2] / "detectors"
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_detectors_never_read_the_wall_clock():
    root = Path(__file__).resolve().parents[2] / "detectors"
    source = "\n".join(p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.py")))
    for call in ("datetime.now(", "date.today(", "time.time(", "utcnow(", "time.monotonic(", "perf_counter("):
        assert call not in source, call

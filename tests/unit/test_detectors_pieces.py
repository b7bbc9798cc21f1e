"""The small pieces: calendar, univariate detector, Poisson tail, cohorts, day closing,
alert lifecycle and risk."""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta, timezone

from detectors import calendar
from detectors.alerts import AlertBook, alert_id
from detectors.cohorts import Cohorts
from detectors.days import EventClock
from detectors.enterprise import EnterpriseDetectors
from detectors.findings import Finding
from detectors.poisson import log_poisson_pmf, poisson_sf
from detectors.risk import RiskScore
from detectors.univariate import ThresholdFilter, UnivariateDetector

UTC = timezone.utc
CST = timezone(timedelta(hours=8))
USCC = "914403001922038216"


# -- calendar ---------------------------------------------------------------------------------
def test_the_spring_festival_window_comes_from_the_official_holiday_of_each_year():
    for year in (2023, 2024, 2025):
        first, last = calendar.spring_festival_window(year)
        official = [d for d in (first + timedelta(days=i) for i in range((last - first).days + 1))
                    if calendar.holiday_name(d) == "Spring Festival" and calendar.is_holiday(d)]
        assert official[0] - first == timedelta(days=7) and last - official[-1] == timedelta(days=21)
    assert calendar.spring_festival_window(2025)[0] < calendar.spring_festival_window(2024)[0].replace(year=2025)


def test_adjusted_working_days_and_public_holidays_are_known():
    assert calendar.is_adjusted_workday(date(2024, 9, 29))            # Sunday made working for National Day
    assert calendar.day_type(date(2024, 10, 3)) == "holiday"
    assert calendar.holiday_name(date(2024, 10, 3)) == "National Day"
    assert calendar.day_type(date(2024, 10, 12)) == "adjusted_workday"


def test_a_year_the_library_does_not_know_falls_back_to_weekdays():
    assert calendar.day_type(date(2040, 2, 6)) == "workday"          # a Monday
    assert calendar.spring_festival_window(2040) is None


# -- univariate -------------------------------------------------------------------------------
def test_the_univariate_score_stays_in_its_documented_range():
    det, rng = UnivariateDetector(), random.Random(1)
    scores = [det.update(t, rng.choice([0, 1, 5, 1e6, -3])) for t in range(500)]
    assert all(0.0 <= s < 1.0 for s in scores)


def test_the_univariate_detector_flags_a_level_shift_then_adopts_it():
    det, rng = ThresholdFilter(UnivariateDetector()), random.Random(2)
    flags = [det.update(t, (10 if t < 200 else 30) + rng.gauss(0, 1)) for t in range(400)]
    assert flags[200] and sum(flags[200:210]) <= 8 and not any(flags[230:])


def test_the_univariate_detector_learns_a_weekly_season_from_timestamps():
    det = UnivariateDetector(season="day_of_week")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(10 * 7):
        ts = start + timedelta(days=i)
        det.update(ts, 100.0 + i % 3 if ts.weekday() < 5 else 10.0 + i % 3)
    assert det.update(start + timedelta(days=70), 100.0) < 0.2         # a Monday at its usual level
    assert det.update(start + timedelta(days=75), 100.0) > 0.5         # a Saturday at a weekday level


def test_a_constant_series_that_moves_is_an_anomaly_without_dividing_by_zero():
    det = UnivariateDetector()
    for t in range(50):
        det.update(t, 7.0)
    assert det.update(50, 8.0) > 0.9


# -- Poisson ----------------------------------------------------------------------------------
def test_the_poisson_tail_matches_the_direct_sum():
    for k, mu in [(0, 1.0), (3, 0.5), (5, 5.0), (12, 3.3), (40, 20.0)]:
        direct = 1 - sum(math.exp(log_poisson_pmf(j, mu)) for j in range(k))
        assert math.isclose(poisson_sf(k, mu), direct, rel_tol=1e-9, abs_tol=1e-15)


# -- cohorts ----------------------------------------------------------------------------------
def test_a_cohort_falls_back_from_town_to_industry_to_all():
    cohorts = Cohorts(min_members=3)
    for i in range(3):
        cohorts.observe({"industry": "C39", "town": f"town{i}"}, "m", f"e{i}", float(i))
    view = cohorts.stats({"industry": "C39", "town": "town0"}, "m")
    assert view.level == "industry" and view.members == 3
    assert cohorts.stats({"industry": "F51", "town": "x"}, "m").level == "all"


def test_a_cohort_remembers_a_bounded_number_of_members():
    cohorts = Cohorts(max_members=10, min_members=1)
    for i in range(1000):
        cohorts.observe({"industry": "C39", "town": "t"}, "m", f"e{i}", float(i))
    assert cohorts.stats({"industry": "C39", "town": "t"}, "m").members == 10


# -- day closing ------------------------------------------------------------------------------
def test_a_day_closes_once_the_watermark_minus_lateness_has_passed_it():
    clock = EventClock(lateness=timedelta(days=2))
    clock.observe(datetime(2024, 5, 1, 12, tzinfo=CST))
    assert clock.observe(datetime(2024, 5, 3, 23, 59, tzinfo=CST)) == [date(2024, 4, 29), date(2024, 4, 30)]
    assert clock.observe(datetime(2024, 5, 4, 0, 0, tzinfo=CST)) == [date(2024, 5, 1)]


def test_close_through_feeds_each_day_once_and_marks_missing_days_none():
    det = EnterpriseDetectors(USCC)
    seen = []
    det.on_day = lambda u, d, a, c=None: seen.append((u, d, a)) or []
    daily = {("electricity", date(2024, 5, 1)): 10.0, ("electricity", date(2024, 5, 3)): 12.0}
    det.close_through(date(2024, 5, 2), daily)
    assert seen == [("electricity", date(2024, 5, 1), 10.0), ("electricity", date(2024, 5, 2), None)]


def test_a_meters_days_wait_for_its_own_readings_then_close_without_them_after_meter_wait_days():
    det = EnterpriseDetectors(USCC)
    daily = {("electricity", date(2024, 4, 1) + timedelta(days=i)): 10.0 for i in range(30)}
    series = lambda: det.series["electricity"].last_day  # noqa: E731
    det.close_through(date(2024, 4, 20), daily, reach={"electricity": date(2024, 4, 7)})
    assert series() == date(2024, 4, 7)  # April's upload is not in yet: its days wait
    det.close_through(date(2024, 5, 10), daily, reach={"electricity": date(2024, 4, 30)})
    assert series() == date(2024, 4, 30)  # in: judged with their data, not as gaps
    det.close_through(date(2024, 6, 10), daily, reach={"electricity": date(2024, 4, 30)})
    assert series() == date(2024, 6, 10) - timedelta(days=det.t.meter_wait_days)  # silent meter: given up
    det.close_through(date(2024, 6, 11), daily)
    assert series() == date(2024, 6, 11)  # without a reach, every day closes


# -- alerts -----------------------------------------------------------------------------------
def drop(start, end, severity="warning", status="open"):
    return Finding("utility_drop", severity, status, start, end, 10.0, 100.0,
                   [{"source": "utility", "metric": "electricity_kWh_per_day", "period": f"{start}/{end}",
                     "value": 10.0, "baseline": 100.0}], {"zh": "用电骤降", "en": "electricity fell"}, 0.9)


def test_an_alert_opens_updates_and_resolves_under_one_stable_id():
    book, at = AlertBook(refresh_days=7), datetime(2024, 6, 6, tzinfo=UTC)
    start = date(2024, 6, 3)
    messages = book.apply(USCC, drop(start, date(2024, 6, 5)), {"name": "甲厂", "town": "长安镇"}, at)
    messages += book.apply(USCC, drop(start, date(2024, 6, 6)), None, at)            # nothing new: quiet
    messages += book.apply(USCC, drop(start, date(2024, 6, 10), "critical"), None, at)  # worse: update
    messages += book.apply(USCC, drop(start, date(2024, 6, 20), "critical", "resolved"), None, at)
    assert [(m["status"], m["severity"]) for m in messages] == [
        ("open", "warning"), ("open", "critical"), ("resolved", "critical")]
    assert {m["alert_id"] for m in messages} == {alert_id(USCC, "utility_drop", start)}
    assert messages[-1]["enterprise_name"] == "甲厂" and book.open_alerts() == []


def test_a_long_condition_is_refreshed_every_refresh_days():
    book, at = AlertBook(refresh_days=7), datetime(2024, 6, 6, tzinfo=UTC)
    start = date(2024, 6, 3)
    out = [m for i in range(21) for m in book.apply(USCC, drop(start, start + timedelta(days=i)), None, at)]
    assert [m["window_end"] for m in out] == ["2024-06-03", "2024-06-10", "2024-06-17"]


def test_reprocessing_the_same_condition_mints_the_same_alert_id():
    first = AlertBook().apply(USCC, drop(date(2024, 6, 3), date(2024, 6, 5)), None, datetime(2024, 6, 6, tzinfo=UTC))
    again = AlertBook().apply(USCC, drop(date(2024, 6, 3), date(2024, 6, 5)), None, datetime(2024, 6, 6, tzinfo=UTC))
    assert first == again


# -- risk -------------------------------------------------------------------------------------
def test_no_findings_means_risk_zero():
    record = RiskScore(USCC).to_record(datetime(2024, 6, 1, tzinfo=UTC))
    assert (record["score"], record["level"], record["rules"]) == (0.0, "none", [])


def test_risk_decays_with_event_time_once_the_condition_is_resolved():
    risk, t0 = RiskScore(USCC), datetime(2024, 6, 1, tzinfo=UTC)
    risk.update(drop(date(2024, 5, 1), date(2024, 5, 31), "critical"), t0)
    open_score = risk.score(t0 + timedelta(days=90))
    risk.update(drop(date(2024, 5, 1), date(2024, 5, 31), "critical", "resolved"), t0)
    assert open_score == risk.score(t0) >= 60                              # an open condition keeps its weight
    scores = [risk.score(t0 + timedelta(days=d)) for d in (0, 30, 60, 365)]
    assert scores[0] > scores[1] > scores[2] > scores[3] == 0.0


def test_several_findings_add_up_to_the_supervision_list_but_never_past_100():
    risk, t0 = RiskScore(USCC), datetime(2024, 6, 1, tzinfo=UTC)
    for rule in ("tax_zero_streak", "headcount_drop", "sales_energy_mismatch", "dormant_entity"):
        risk.update(Finding(rule, "critical", "open", date(2024, 5, 1), date(2024, 5, 31), 0.0, 0.0), t0)
    assert 60 <= risk.score(t0) <= 100 and risk.on_supervision_list(t0)
    assert risk.to_record(t0)["level"] == "high"


def test_a_withdrawn_finding_closes_its_alert_as_withdrawn_and_takes_its_risk_back():
    from datetime import datetime, timezone

    from detectors.alerts import AlertBook
    from detectors.findings import Finding, withdrawn
    from detectors.risk import RiskScore

    at = datetime(2024, 7, 20, tzinfo=timezone.utc)
    found = Finding("tax_sales_drop", "critical", "open", date(2024, 6, 1), date(2024, 6, 30), 3e5, 1e6, [],
                    {"zh": "销售额下降", "en": "Sales fell"}, 0.7)
    book, risk = AlertBook(), RiskScore("914403001922038216")
    opened = book.apply("914403001922038216", found, None, at)
    risk.update(found, at)
    assert risk.to_record(at)["score"] > 0
    closed = book.apply("914403001922038216", withdrawn(found), None, at)
    risk.update(withdrawn(found), at)
    assert [a["status"] for a in closed] == ["withdrawn"] and closed[0]["alert_id"] == opened[0]["alert_id"]
    assert book.open_alerts() == [] and risk.to_record(at)["score"] == 0

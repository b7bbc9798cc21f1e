"""Per-enterprise aggregates: daily utility totals, latest monthly values, profile."""

from __future__ import annotations

import pickle
from datetime import date, datetime, timedelta, timezone


from detectors.record import CITY_TZ, RETAIN_DAYS, EnterpriseState, split_by_day
from streams.contracts import validate_event

CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
COMMON = {"uscc": "914403001922038216", "source": "grid", "schema_version": 1}


def at(day: date, hour: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=CST)


def utility(event_id: str, *readings: tuple[datetime, datetime, float], kind: str = "electricity"):
    unit = "kWh" if kind == "electricity" else "m3"
    return validate_event({**COMMON, "kind": "utility", "event_id": event_id, "event_time": "2024-03-10T00:00:00Z",
                           "utility": kind, "unit": unit, "meter_id": "m-1",
                           "readings": [{"start": s.isoformat(), "end": e.isoformat(), "amount": a}
                                        for s, e, a in readings]}, now=NOW)


def daily(event_id: str, day: date, amount: float = 100.0):
    return utility(event_id, (at(day), at(day + timedelta(days=1)), amount))


def monthly(kind: str, period: str, event_time: str, event_id: str = "m-1", **values):
    return validate_event({**COMMON, "kind": kind, "event_id": event_id, "event_time": event_time,
                           "period": period, **values}, now=NOW)


def tax(period: str, event_time: str, sales: float):
    return monthly("tax", period, event_time, declared_sales_cny=sales, tax_paid_cny=sales * 0.03)


def registry(event_time: str, name: str):
    return validate_event({**COMMON, "kind": "registry", "event_id": f"r-{event_time}", "event_time": event_time,
                           "name": name, "industry": "C39", "town": "长安镇", "registered_capital_cny": 1e6,
                           "established_on": "2015-03-01", "status": "active"}, now=NOW)


# split_by_day

def test_a_reading_within_one_day_stays_on_that_day():
    assert list(split_by_day(at(date(2024, 3, 1), 8), at(date(2024, 3, 1), 20), 12.0)) == [(date(2024, 3, 1), 12.0)]


def test_a_reading_ending_at_midnight_stays_on_its_day():
    assert list(split_by_day(at(date(2024, 3, 1)), at(date(2024, 3, 2)), 5.0)) == [(date(2024, 3, 1), 5.0)]


def test_a_reading_across_midnight_is_split_in_proportion_to_time():
    parts = list(split_by_day(at(date(2024, 3, 1), 18), at(date(2024, 3, 2), 6), 12.0))
    assert parts == [(date(2024, 3, 1), 6.0), (date(2024, 3, 2), 6.0)]


def test_a_three_day_reading_is_spread_over_three_days():
    parts = list(split_by_day(at(date(2024, 3, 1), 12), at(date(2024, 3, 3), 12), 48.0))
    assert parts == [(date(2024, 3, 1), 12.0), (date(2024, 3, 2), 24.0), (date(2024, 3, 3), 12.0)]


def test_a_utc_reading_lands_on_the_shanghai_day():
    start = datetime(2024, 3, 1, 17, tzinfo=timezone.utc)  # 2024-03-02 01:00 in Shanghai
    assert list(split_by_day(start, start + timedelta(hours=2), 3.0, CITY_TZ)) == [(date(2024, 3, 2), 3.0)]


def test_a_utc_reading_across_shanghai_midnight_is_split_there():
    start = datetime(2024, 3, 1, 15, tzinfo=timezone.utc)  # 23:00 in Shanghai
    parts = list(split_by_day(start, start + timedelta(hours=4), 8.0))
    assert parts == [(date(2024, 3, 1), 2.0), (date(2024, 3, 2), 6.0)]


# apply_utility

def test_utility_readings_add_up_per_day():
    state = EnterpriseState()
    keys, too_late = state.apply_utility(utility("u-1", (at(date(2024, 3, 1), 0), at(date(2024, 3, 1), 12), 40.0),
                                                 (at(date(2024, 3, 1), 12), at(date(2024, 3, 2), 0), 60.0)))
    total = state.days[("electricity", date(2024, 3, 1))]
    assert (keys, too_late, total.amount, total.readings) == ([("electricity", date(2024, 3, 1))], 0, 100.0, 2)


def test_utilities_are_totalled_separately():
    state = EnterpriseState()
    state.apply_utility(daily("e-1", date(2024, 3, 1), 100.0))
    state.apply_utility(utility("w-1", (at(date(2024, 3, 1)), at(date(2024, 3, 2)), 7.0), kind="water"))
    assert state.days[("water", date(2024, 3, 1))].amount == 7.0
    assert state.days[("electricity", date(2024, 3, 1))].amount == 100.0


def test_a_redelivered_event_counts_once():
    state = EnterpriseState()
    state.apply_utility(daily("u-1", date(2024, 3, 1)))
    assert state.apply_utility(daily("u-1", date(2024, 3, 1))) == ([], 0)
    assert state.days[("electricity", date(2024, 3, 1))].amount == 100.0


def test_readings_older_than_the_retention_window_are_too_late_and_counted():
    state = EnterpriseState()
    newest = date(2024, 6, 1)
    state.apply_utility(daily("new", newest))
    assert state.apply_utility(daily("late", newest - timedelta(days=RETAIN_DAYS + 1))) == ([], 1)
    keys, too_late = state.apply_utility(daily("edge", newest - timedelta(days=RETAIN_DAYS)))
    assert (len(keys), too_late) == (1, 0)


def test_a_year_of_daily_events_keeps_memory_bounded():
    state = EnterpriseState()
    for n in range(365):
        state.apply_utility(daily(f"u-{n}", date(2024, 1, 1) + timedelta(days=n)))
        state.prune()
    assert len(state.days) == RETAIN_DAYS + 1
    assert len(state.seen) == RETAIN_DAYS + 1
    assert min(day for _, day in state.days) == date(2024, 12, 30) - timedelta(days=RETAIN_DAYS)


# apply_monthly / apply_registry

def test_the_latest_event_time_of_a_period_wins():
    state = EnterpriseState()
    state.apply_monthly(tax("2024-02", "2024-03-10T09:00:00+08:00", 100.0))
    assert state.apply_monthly(tax("2024-02", "2024-03-20T09:00:00+08:00", 250.0)) is True
    assert state.tax["2024-02"] == datetime.fromisoformat("2024-03-20T09:00:00+08:00").timestamp()


def test_an_older_correction_arriving_later_is_ignored():
    state = EnterpriseState()
    state.apply_monthly(tax("2024-02", "2024-03-20T09:00:00+08:00", 250.0))
    assert state.apply_monthly(tax("2024-02", "2024-03-10T09:00:00+08:00", 100.0)) is False
    assert state.tax["2024-02"] == datetime.fromisoformat("2024-03-20T09:00:00+08:00").timestamp()


def test_social_values_are_kept_apart_from_tax():
    state = EnterpriseState()
    state.apply_monthly(monthly("social", "2024-02", "2024-03-05T00:00:00Z", insured_headcount=57,
                                contributions_cny=61000.0))
    assert (list(state.social), state.tax) == (["2024-02"], {})


def test_the_latest_registry_profile_wins():
    state = EnterpriseState()
    state.apply_registry(registry("2024-03-02T00:00:00Z", "新名称有限公司"))
    assert state.apply_registry(registry("2024-03-01T00:00:00Z", "旧名称有限公司")) is False
    assert state.profile["name"] == "新名称有限公司"


def test_state_survives_a_pickle_round_trip():
    state = EnterpriseState()
    state.apply_utility(daily("u-1", date(2024, 3, 1)))
    state.apply_monthly(tax("2024-02", "2024-03-10T09:00:00+08:00", 100.0))
    state.apply_registry(registry("2024-03-02T00:00:00Z", "东莞示范制造有限公司"))
    copy = pickle.loads(pickle.dumps(state, 5))
    assert copy == state
    assert copy.apply_utility(daily("u-1", date(2024, 3, 1))) == ([], 0)


def test_days_spanning_midnight_split_like_the_slow_path():
    cst = timezone(timedelta(hours=8))
    state = EnterpriseState()
    start = datetime(2024, 3, 1, 23, tzinfo=cst)
    state.apply_utility(utility("span", (start, start + timedelta(hours=2), 10.0),
                                (start + timedelta(hours=2), start + timedelta(hours=3), 1.0)))
    totals = {day.isoformat(): round(t.amount, 9) for (_, day), t in state.days.items()}
    assert totals == {"2024-03-01": 5.0, "2024-03-02": 6.0}


def test_state_pickles_small():
    state = EnterpriseState()
    for n in range(60):
        state.apply_utility(daily(f"u-{n}", date(2024, 1, 1) + timedelta(days=n)))
        state.prune()
    assert len(pickle.dumps(state, 5)) < 2000

"""The synthetic city: deterministic, valid, and its ground truth agrees with its data."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from statistics import median

import chinese_calendar
import pytest

from producers.city import TOWNS, build_city
from producers.simulator import (
    LEGACY,
    RULES,
    SPRING_AFTER,
    SPRING_BEFORE,
    AnomalyRates,
    SimulationConfig,
    UploadMix,
    city_of,
    deliveries,
    generate,
    ground_truth,
    seasonal_stops,
    spring_festival,
    spring_shutdown,
    write_files,
)
from producers.uploads import schedule_of
from streams.contracts import Rejection, decode_event, validate_event
from streams.uscc import is_valid_uscc

# a small city with every anomaly several times over (and the default uploads, lateness, shutdowns)
RICH = SimulationConfig(enterprises=150, seed=11, electricity_interval="day",
                        rates=AnomalyRates(**{r: 0.04 for r in RULES}))
# each enterprise's Spring Festival shutdown, with the week of ramping up after it
STOPS = defaultdict(list)
for _stop in seasonal_stops(RICH):
    STOPS[_stop["uscc"]].append((date.fromisoformat(_stop["start"]), date.fromisoformat(_stop["end"]) + timedelta(days=7)))
PUNCTUAL = dict(late_share=0.0, very_late_share=0.0, duplicate_share=0.0, malformed_share=0.0)


@pytest.fixture(scope="module")
def city():
    events = list(generate(RICH))
    return Series(events), ground_truth(RICH)


class Series:
    """What a reader of the events sees per enterprise: daily kWh, returns, headcounts, complaints."""

    def __init__(self, events):
        seen = set()
        self.kwh = defaultdict(dict)          # uscc -> day -> kWh
        self.tax = defaultdict(dict)          # uscc -> period -> (event_time, sales, paid)
        self.staff = defaultdict(dict)        # uscc -> period -> headcount
        self.staff_at = defaultdict(dict)     # uscc -> period -> event_time of that headcount
        self.complaints = defaultdict(lambda: defaultdict(int))
        self.registry = {}
        for e in events:
            if not isinstance(e, dict) or isinstance(validate_event(e), Rejection) or e["event_id"] in seen:
                continue
            seen.add(e["event_id"])
            u = e["uscc"]
            if e["kind"] == "registry":
                self.registry[u] = e
            elif e["kind"] == "utility" and e["utility"] == "electricity":
                for r in e["readings"]:
                    d = date.fromisoformat(r["start"][:10])
                    self.kwh[u][d] = self.kwh[u].get(d, 0.0) + r["amount"]
            elif e["kind"] == "tax":
                old = self.tax[u].get(e["period"])
                if old is None or e["event_time"] > old[0]:
                    self.tax[u][e["period"]] = (e["event_time"], e["declared_sales_cny"], e["tax_paid_cny"])
            elif e["kind"] == "social":   # a corrected return (later event_time) wins
                old = self.staff_at[u].get(e["period"])
                if old is None or e["event_time"] > old:
                    self.staff_at[u][e["period"]] = e["event_time"]
                    self.staff[u][e["period"]] = e["insured_headcount"]
            elif e["kind"] == "complaint":
                self.complaints[u][date.fromisoformat(e["event_time"][:10])] += 1

    def sales(self, uscc, period):
        return self.tax[uscc][period][1]

    def month_kwh(self, uscc, period):
        return sum(v for d, v in self.kwh[uscc].items() if d.isoformat()[:7] == period)

    def working_level(self, uscc, before: date, days: int = 40) -> float:
        """Median kWh of the ordinary working days in the ``days`` before ``before``."""
        return median(v for d, v in self.kwh[uscc].items()
                      if before - timedelta(days=days) <= d < before and ordinary_workday(d, uscc))


def ordinary_workday(d: date, uscc: str) -> bool:
    """A Monday-to-Friday working day outside the enterprise's own shutdown and ramp-up."""
    return chinese_calendar.is_workday(d) and d.weekday() < 5 and not any(a <= d <= b for a, b in STOPS[uscc])


def periods(record):
    start, end = date.fromisoformat(record["start"]), date.fromisoformat(record["end"])
    out, m = [], start.replace(day=1)
    while m <= end:
        out.append(m.isoformat()[:7])
        m = (m + timedelta(days=32)).replace(day=1)
    return out


def previous(period: str, k: int) -> str:
    y, m = divmod(int(period[:4]) * 12 + int(period[5:]) - 1 - k, 12)
    return f"{y:04d}-{m + 1:02d}"


def longest_low_run(series, uscc, start, end, level, ratio=0.30):
    run = best = 0
    d = start
    while d <= end:
        if ordinary_workday(d, uscc):
            run = run + 1 if series.kwh[uscc].get(d, 0.0) < ratio * level else 0
            best = max(best, run)
        d += timedelta(days=1)
    return best


def cohort_log_ratio(series, usccs, period):
    values = [math.log(series.sales(u, period) / series.month_kwh(u, period)) for u in usccs
              if period in series.tax[u] and series.sales(u, period) > 0 and series.month_kwh(u, period) > 100]
    return median(values)


# -- determinism ------------------------------------------------------------------------------------
def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(tmp_path):
    config = SimulationConfig(enterprises=30, days=60, history_months=1, malformed_share=0.01)
    stats = [write_files(config, tmp_path / f"e{k}.jsonl", tmp_path / f"t{k}.jsonl") for k in (1, 2)]
    write_files(SimulationConfig(enterprises=30, days=60, history_months=1, seed=8), tmp_path / "e3.jsonl",
                tmp_path / "t3.jsonl")
    assert (tmp_path / "e1.jsonl").read_bytes() == (tmp_path / "e2.jsonl").read_bytes()
    assert (tmp_path / "t1.jsonl").read_bytes() == (tmp_path / "t2.jsonl").read_bytes()
    assert (tmp_path / "e1.jsonl").read_bytes() != (tmp_path / "e3.jsonl").read_bytes()
    assert stats[0]["events"] == stats[1]["events"] > 0


# -- the contract -----------------------------------------------------------------------------------
def test_every_event_is_valid_except_the_deliberately_malformed_ones(tmp_path):
    config = SimulationConfig(enterprises=25, days=120, history_months=2, malformed_share=0.02)
    stats = write_files(config, tmp_path / "e.jsonl", tmp_path / "t.jsonl")
    verdicts = [decode_event(line) for line in (tmp_path / "e.jsonl").read_bytes().splitlines()]
    rejected = [v for v in verdicts if isinstance(v, Rejection)]
    assert len(rejected) == stats["malformed"] > 20
    assert len({r.reason for r in rejected}) >= 6
    assert len(verdicts) - len(rejected) == sum(stats["by_kind"].values())


def test_an_hourly_upload_is_one_day_of_24_readings_delivered_the_next_night():
    config = SimulationConfig(enterprises=3, days=2, history_months=0, uploads=UploadMix(1.0, 0.0, 0.0), **PUNCTUAL)
    electricity = [e for e in generate(config) if e["kind"] == "utility" and e["utility"] == "electricity"]
    assert len(electricity) == 6
    first = electricity[0]
    assert len(first["readings"]) == 24
    assert first["readings"][0]["start"] == "2024-01-01T00:00:00+08:00"
    assert first["readings"][-1]["end"] == "2024-01-02T00:00:00+08:00"
    assert first["event_time"].startswith("2024-01-02T0") and first["event_time"].endswith("+08:00")


def test_duplicates_repeat_an_event_id_and_corrections_repeat_a_period():
    events = list(generate(SimulationConfig(enterprises=40, days=90, history_months=2, duplicate_share=0.05)))
    ids = [e["event_id"] for e in events if isinstance(e, dict)]
    assert len(ids) > len(set(ids))
    periods_filed = [(e["uscc"], e["period"]) for e in events if isinstance(e, dict) and e["kind"] == "tax"
                     and not e["event_id"].endswith("-x")]
    corrections = [e for e in events if isinstance(e, dict) and e["event_id"].endswith("-c1")]
    assert corrections and len(set(periods_filed)) < len(periods_filed)


# -- the city ---------------------------------------------------------------------------------------
def test_the_city_has_the_33_towns_and_subdistricts_of_dongguan():
    named = {"莞城街道", "南城街道", "东城街道", "万江街道", "石碣镇", "石龙镇", "茶山镇", "石排镇", "企石镇",
             "横沥镇", "桥头镇", "谢岗镇", "东坑镇", "常平镇", "寮步镇", "樟木头镇", "大朗镇", "黄江镇", "清溪镇",
             "塘厦镇", "凤岗镇", "大岭山镇", "长安镇", "虎门镇", "厚街镇", "沙田镇", "道滘镇", "洪梅镇", "麻涌镇",
             "望牛墩镇", "中堂镇", "高埗镇", "松山湖"}
    assert len(TOWNS) == 33 and set(TOWNS) == named
    assert {e.town for e in build_city(3000, seed=1)} == named


def test_usccs_are_valid_and_unique_and_manufacturing_dominates():
    city = build_city(20_000, seed=3)
    assert all(is_valid_uscc(e.uscc) for e in city)
    assert len({e.uscc for e in city}) == len(city)
    sections = [e.industry[0] for e in city]
    assert sections.count("C") > 0.45 * len(city)
    assert max(set(sections), key=sections.count) == "C"


# -- the calendar -----------------------------------------------------------------------------------
@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_spring_festival_dates_come_from_the_calendar_library(year):
    days = [date(year, 1, 1) + timedelta(days=k) for k in range(90)]
    official = [d for d in days if chinese_calendar.is_holiday(d)
                and chinese_calendar.get_holiday_detail(d)[1] == chinese_calendar.Holiday.spring_festival.value]
    assert spring_festival(year) == (official[0], official[-1])


def test_2024_02_10_is_the_spring_festival_and_factories_stop_around_it(city):
    series, truth = city
    assert chinese_calendar.get_holiday_detail(date(2024, 2, 10)) == (True, "Spring Festival")
    flagged = {t["uscc"] for t in truth}
    factories = [u for u, r in series.registry.items() if r["industry"][0] == "C" and u not in flagged
                 and r["status"] == "active"]
    stopped = [u for u in factories if series.kwh[u][date(2024, 2, 14)] < 0.3 * series.working_level(u, date(2024, 2, 1))]
    assert len(stopped) == len(factories) > 20


# -- the ground truth agrees with the data ----------------------------------------------------------------
def test_every_rule_is_injected_and_every_record_names_a_spec_rule(city):
    _, truth = city
    assert {t["rule"] for t in truth} == set(RULES)
    assert all(set(t) == {"uscc", "rule", "start", "end", "parameters"} for t in truth)


def test_each_injected_anomaly_is_visible_in_the_series(city):
    series, truth = city
    by_industry = defaultdict(list)
    flagged = {t["uscc"] for t in truth}
    for u, r in series.registry.items():
        if u not in flagged:
            by_industry[r["industry"]].append(u)
    for t in truth:
        if "caused_by" in t["parameters"]:
            continue
        u, start, end = t["uscc"], date.fromisoformat(t["start"]), date.fromisoformat(t["end"])
        what = f"{t['rule']} {u} {t['start']}..{t['end']} {t['parameters']}"
        if t["rule"] == "utility_drop":
            level = series.working_level(u, start)
            assert longest_low_run(series, u, start, end, level) >= 3, what
        elif t["rule"] == "utility_spike":
            days = [start + timedelta(days=k) for k in range((end - start).days + 1)]
            usual = {d: median(series.kwh[u][d - timedelta(weeks=k)] for k in (1, 2, 3, 4)) for d in days}
            assert sum(series.kwh[u][d] > 3 * usual[d] for d in days) >= 2, what
        elif t["rule"] == "dormant_entity":
            assert series.registry[u]["status"] == "active", what
            assert date.fromisoformat(series.registry[u]["established_on"]) <= RICH.start - timedelta(days=183)
            assert not any(v > 0 for v in series.kwh[u].values()), what
            assert not any(s > 0 for _, s, _ in series.tax[u].values()), what
            assert not any(series.staff[u].values()), what
        elif t["rule"] == "tax_zero_streak":
            zero = [p for p in periods(t) if series.tax[u][p][1:] == (0.0, 0.0)]
            assert len(zero) == len(periods(t)) >= 3, what
            assert all(series.month_kwh(u, p) > 0.3 * series.month_kwh(u, previous(periods(t)[0], 1))
                       for p in zero), what
        elif t["rule"] == "tax_sales_drop":
            first = periods(t)[0]
            trailing = median(series.sales(u, previous(first, k)) for k in (1, 2, 3))
            for p in periods(t):
                assert series.sales(u, p) < 0.5 * series.sales(u, previous(p, 12)), what
            assert series.sales(u, first) < 0.5 * trailing, what
        elif t["rule"] == "sales_energy_mismatch":
            peers = by_industry[series.registry[u]["industry"]]
            for p in periods(t):
                kwh, sales = series.month_kwh(u, p), series.sales(u, p)
                if t["parameters"]["kind"] == "sales_without_power":
                    assert kwh < 30 and sales >= 100_000, what
                else:
                    deviation = math.log(sales / kwh) - cohort_log_ratio(series, peers, p)
                    assert abs(deviation) > 1.5, what
        elif t["rule"] == "headcount_drop":
            p = periods(t)[0]
            before, after = series.staff[u][previous(p, 1)], series.staff[u][p]
            assert after <= 0.7 * before and before - after >= 10, what
        elif t["rule"] == "complaint_burst":
            days = series.complaints[u]
            in_window = sum(n for d, n in days.items() if start <= d <= end)
            assert in_window >= 5 and (end - start).days < 7, what
            assert sum(days.values()) - in_window <= 3, what


def test_normal_enterprises_stay_within_their_envelope(city):
    series, truth = city
    flagged = {t["uscc"] for t in truth}
    normal = [u for u, r in series.registry.items() if u not in flagged and r["status"] == "active"]
    assert len(normal) >= 90
    by_industry = defaultdict(list)
    for u in normal:
        by_industry[series.registry[u]["industry"]].append(u)
    back = spring_festival(2024)[1] + timedelta(days=RICH.spring_tail_days[1] + 7)   # every factory at work
    for u in normal:   # two weeks after that, so that every enterprise has a working level again
        days = sorted(d for d in series.kwh[u] if d >= back + timedelta(days=15))
        for d in days[::7]:   # no three-working-day stop below 30% outside holidays
            level = series.working_level(u, d)
            assert longest_low_run(series, u, d, d + timedelta(days=6), level) < 3, (u, d)
        months = sorted(series.staff[u])
        for a, b in zip(months, months[1:]):   # no lay-off
            assert not (series.staff[u][b] <= 0.7 * series.staff[u][a] and series.staff[u][a] - series.staff[u][b] >= 10)
        assert max(series.complaints[u].values(), default=0) < 5
        assert all(s > 0 for _, s, _ in series.tax[u].values()), u
        peers = by_industry[series.registry[u]["industry"]]
        if len(peers) >= 5:
            for p in ("2024-05", "2024-10"):
                deviation = math.log(series.sales(u, p) / series.month_kwh(u, p)) - cohort_log_ratio(series, peers, p)
                assert abs(deviation) < 0.8, (u, p, deviation)


# -- live output: delivery times for pacing ----------------------------------------------------------------
def test_deliveries_are_the_generated_events_in_send_time_order_never_before_their_event_time():
    config = SimulationConfig(enterprises=20, days=30, history_months=1, electricity_interval="day",
                              malformed_share=0.01)
    timed = list(deliveries(config))
    assert [obj for _, obj, _ in timed] == list(generate(config))
    times = [at for at, _, _ in timed]
    assert times == sorted(times) and times[0].utcoffset() == timedelta(hours=8)
    for at, obj, tag in timed:
        if tag != "malformed":
            assert datetime.fromisoformat(obj["event_time"]) <= at + timedelta(seconds=1)


def test_the_demo_city_ends_by_yesterday_so_nothing_is_in_the_future():
    from streams.cli import demo_config

    config = demo_config(300, 180, 7, today=date(2026, 11, 28))
    assert config.end == date(2026, 11, 27) and config.days == 180


# -- what real departments send: upload schedules, lateness, corrections ----------------------------------
def uploads_by_meter(events):
    """meter_id -> [(event_time, first day, last day, readings)] of its distinct uploads."""
    seen, out = set(), defaultdict(list)
    for e in events:
        if isinstance(e, dict) and e.get("kind") == "utility" and not isinstance(validate_event(e), Rejection) \
                and e["event_id"] not in seen:
            seen.add(e["event_id"])
            days = sorted({r["start"][:10] for r in e["readings"]})
            out[e["meter_id"]].append((datetime.fromisoformat(e["event_time"]), date.fromisoformat(days[0]),
                                       date.fromisoformat(days[-1]), len(e["readings"])))
    return out


def test_a_weekly_upload_carries_monday_to_sunday_and_arrives_the_night_after_the_week():
    config = SimulationConfig(enterprises=8, days=35, history_months=0, uploads=UploadMix(0.0, 1.0, 0.0), **PUNCTUAL)
    meters = uploads_by_meter(generate(config))
    assert len(meters) >= 12
    for meter, uploads in meters.items():
        assert [u[1] for u in uploads] == [date(2024, 1, 1) + timedelta(weeks=k) for k in range(5)], meter
        for at, first, last, readings in uploads:
            assert first.weekday() == 0 and last == first + timedelta(days=6)
            assert readings == 7 * (24 if meter.startswith("E") else 1)
            assert at.date() == last + timedelta(days=1) and 1 <= at.hour < 10


def test_a_monthly_upload_carries_its_calendar_month_and_arrives_2_to_5_days_after_it():
    config = SimulationConfig(enterprises=12, days=91, history_months=0, uploads=UploadMix(0.0, 0.0, 1.0), **PUNCTUAL)
    meters = uploads_by_meter(generate(config))
    delays = Counter()
    for meter, uploads in meters.items():
        assert [(u[1], u[2]) for u in uploads] == [(date(2024, 1, 1), date(2024, 1, 31)),
                                                   (date(2024, 2, 1), date(2024, 2, 29)),
                                                   (date(2024, 3, 1), date(2024, 3, 31))], meter
        for at, first, last, readings in uploads:
            assert readings == ((last - first).days + 1) * (1 if meter.startswith("W") else 24)
            delays[(at.date() - last).days] += 1
    assert set(delays) == {2, 3, 4, 5}


def test_each_meter_keeps_one_schedule_and_the_mix_follows_the_configured_shares():
    mix = UploadMix(0.5, 0.35, 0.15)
    drawn = Counter(schedule_of(7, i, "electricity", mix) for i in range(4000))
    assert abs(drawn["daily"] / 4000 - 0.5) < 0.03 and abs(drawn["weekly"] / 4000 - 0.35) < 0.03
    assert abs(drawn["monthly"] / 4000 - 0.15) < 0.03
    config = SimulationConfig(enterprises=60, days=62, history_months=0, **PUNCTUAL)
    kinds = Counter()
    for meter, uploads in uploads_by_meter(generate(config)).items():
        spans = {(last - first).days + 1 for _, first, last, _ in uploads}
        kind = "daily" if spans == {1} else "weekly" if max(spans) == 7 else "monthly" if max(spans) >= 28 else None
        assert kind is not None, (meter, spans)
        kinds[kind] += 1
    assert kinds["daily"] > kinds["weekly"] > kinds["monthly"] > 5


def lateness(config):
    """Hours after its event_time that each delivery flagged late arrived, and the number of
    meter uploads delivered (duplicates not counted)."""
    late, uploads = [], 0
    for at, obj, tag in deliveries(config):
        if tag in ("utility", "late") and obj["kind"] == "utility":
            uploads += 1
            if tag == "late":
                late.append((at - datetime.fromisoformat(obj["event_time"])).total_seconds() / 3600)
    return late, uploads


def test_late_uploads_come_2_to_6_days_late_and_a_few_10_to_20_days_beyond_any_lateness():
    config = SimulationConfig(enterprises=80, days=60, history_months=0, electricity_interval="day",
                              late_share=0.06, very_late_share=0.02)
    late, uploads = lateness(config)
    late_, very = [h for h in late if h < 200], [h for h in late if h >= 200]
    assert all(48 <= h < 144 for h in late_) and all(240 <= h < 480 for h in very)
    assert 0.04 < len(late) / uploads < 0.11
    assert 0.01 < len(very) / uploads < 0.03
    assert max(very) > 400 and min(late_) < 60


def test_tax_and_social_returns_are_corrected_for_the_same_period_later_with_other_values():
    config = SimulationConfig(enterprises=60, days=120, history_months=2, correction_share=0.1,
                              social_correction_share=0.1, electricity_interval="day")
    filed = defaultdict(list)
    for e in generate(config):
        if isinstance(e, dict) and e["kind"] in ("tax", "social") and not e["event_id"].endswith("-x"):
            filed[(e["kind"], e["uscc"], e["period"])].append(e)
    for kind, value in (("tax", "declared_sales_cny"), ("social", "insured_headcount")):
        corrected = [returns for key, returns in filed.items() if key[0] == kind
                     and any(r["event_id"].endswith("-c1") for r in returns)]
        assert len(corrected) > 10, kind
        for returns in corrected:
            original = next(r for r in returns if not r["event_id"].endswith("-c1"))
            fix = next(r for r in returns if r["event_id"].endswith("-c1"))
            assert fix["event_id"] == original["event_id"] + "-c1"
            assert datetime.fromisoformat(fix["event_time"]) >= datetime.fromisoformat(original["event_time"]) \
                + timedelta(days=5)
            assert fix[value] != original[value]


# -- per-enterprise Spring Festival shutdowns -----------------------------------------------------------
def test_every_factory_stops_on_its_own_dates_from_5_to_20_days_before_the_holiday_to_1_to_4_weeks_after():
    config = SimulationConfig(enterprises=600, days=366 + 365)   # the festivals of 2024 and 2025
    for year in (2024, 2025):
        first, last = spring_festival(year)
        stops = {}
        for e in city_of(config):
            stop = spring_shutdown(config, e, year)
            assert (stop is None) == (e.regime != "factory")
            if stop:
                assert 5 <= (first - stop[0]).days <= 20 and 7 <= (stop[1] - last).days <= 28, (e.index, stop)
                stops[e.index] = stop
        assert len(stops) > 250
        assert len({s[0] for s in stops.values()}) == 16 and len({s[1] for s in stops.values()}) == 22
    # deterministic, and each factory's own habit: its lead varies by a few days between the years
    e = next(e for e in city_of(config) if e.regime == "factory")
    assert spring_shutdown(config, e, 2024) == spring_shutdown(SimulationConfig(enterprises=600), e, 2024)
    leads = [(spring_festival(y)[0] - spring_shutdown(config, f, y)[0]).days
             for f in city_of(config) if f.regime == "factory" for y in (2024, 2025)]
    assert all(abs(a - b) <= 6 for a, b in zip(leads[::2], leads[1::2]))
    other = SimulationConfig(enterprises=600, seed=8)
    assert [spring_shutdown(other, f, 2024) for f in city_of(other)] != \
        [spring_shutdown(config, f, 2024) for f in city_of(config)]


def test_a_factory_works_until_its_own_shutdown_and_the_ground_truth_never_lists_it(city):
    series, truth = city
    flagged = {t["uscc"] for t in truth}
    stops = {s["uscc"]: s for s in seasonal_stops(RICH)}
    checked = 0
    for u, (start, end) in ((u, (date.fromisoformat(s["start"]), date.fromisoformat(s["end"])))
                            for u, s in stops.items() if u not in flagged):
        level = series.working_level(u, start)
        before = [d for d in (start - timedelta(days=k) for k in (1, 2, 3, 4)) if ordinary_workday(d, u)]
        inside = [start + timedelta(days=k) for k in range((end - start).days + 1)]
        assert all(series.kwh[u][d] > 0.5 * level for d in before), u
        assert all(series.kwh[u][d] < 0.3 * level for d in inside), u
        checked += 1
    assert checked > 20
    for t in truth:   # no anomaly window touches its enterprise's shutdown or ramp-up
        window = (date.fromisoformat(t["start"]), date.fromisoformat(t["end"]))
        if t["rule"] in ("utility_drop", "utility_spike"):
            assert not any(a <= window[1] and window[0] <= b for a, b in STOPS[t["uscc"]]), t


def test_legacy_settings_give_the_older_punctual_city():
    config = SimulationConfig(enterprises=40, days=70, history_months=1, electricity_interval="day", **LEGACY)
    meters = uploads_by_meter(generate(config))
    assert all(last == first for uploads in meters.values() for _, first, last, _ in uploads)
    late, _ = lateness(config)
    assert late and max(late) < 120
    assert not any(isinstance(e, dict) and e["kind"] == "social" and e["event_id"].endswith("-c1")
                   for e in generate(config))
    sf = spring_festival(2024)
    for s in seasonal_stops(config):
        start, end = date.fromisoformat(s["start"]), date.fromisoformat(s["end"])
        assert sf[0] - timedelta(days=SPRING_BEFORE) <= start and end <= sf[1] + timedelta(days=SPRING_AFTER)


@pytest.mark.parametrize("bad, says", [
    (dict(uploads=UploadMix(0.5, 0.5, 0.5)), "upload shares must add up to 1"),
    (dict(late_hours=(48, 48)), "late_hours must be two whole numbers"),
    (dict(spring_lead_days=(20, 5)), "spring_lead_days must be two whole numbers"),
    (dict(spring_shutdown="fixed"), "spring_shutdown must be 'staggered' or 'window'"),
])
def test_bad_settings_are_refused_with_what_to_fix(bad, says):
    with pytest.raises(ValueError, match=says):
        SimulationConfig(**bad)

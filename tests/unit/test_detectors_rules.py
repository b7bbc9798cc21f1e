"""The rule families of SPEC §4, one behaviour per test, on EnterpriseDetectors directly."""

from __future__ import annotations

from datetime import date, timedelta

from detectors.cohorts import Cohorts
from detectors.enterprise import EnterpriseDetectors
from detectors.thresholds import Thresholds

PROFILE = {"name": "东莞示范制造有限公司", "industry": "C39", "town": "长安镇", "status": "active",
           "established_on": date(2015, 3, 1), "key_enterprise": False}


def factory(uscc: str = "914403001922038216", **profile) -> EnterpriseDetectors:
    det = EnterpriseDetectors(uscc)
    det.on_profile({**PROFILE, **profile})
    return det


def days(start: date, n: int):
    return [start + timedelta(days=i) for i in range(n)]


def feed(det, values, start=date(2024, 4, 8), n=80, utility="electricity", cohorts=None):
    """Feed ``n`` daily values (a function of the day; None = no data); return the findings."""
    out = []
    for day in days(start, n):
        out += det.on_day(utility, day, values(day), cohorts)
    return out


def normal(day: date) -> float:
    return 1000.0 + 37 * (day.toordinal() % 5) if day.weekday() < 5 else 400.0


def test_a_drop_below_30_percent_on_3_working_days_alerts():
    det = factory()
    stop = date(2024, 6, 3)                                # a Monday
    found = feed(det, lambda d: normal(d) if d < stop else 100.0)
    opened = [f for f in found if f.rule == "utility_drop"]
    assert opened[0].status == "open" and opened[0].window_start == stop
    assert opened[0].window_end == date(2024, 6, 5)        # the third working day
    assert opened[0].observed < 0.3 * opened[0].expected


def test_two_low_working_days_are_not_a_drop():
    det = factory()
    found = feed(det, lambda d: 100.0 if d in (date(2024, 6, 3), date(2024, 6, 4)) else normal(d))
    assert [f for f in found if f.rule == "utility_drop"] == []


def test_a_low_weekend_is_not_a_drop():
    det = factory()
    found = feed(det, lambda d: 5.0 if d.weekday() >= 5 else normal(d))
    assert found == []


def test_a_spring_festival_stop_shared_by_peers_does_not_alert():
    cohorts = Cohorts()
    peers = [factory(f"peer{i}") for i in range(15)]
    found = []
    for day in days(date(2023, 12, 1), 110):               # December to mid-March 2024
        for det in peers:
            stopped = date(2024, 1, 30) <= day <= date(2024, 3, 12)   # longer than the official holiday
            found += det.on_day("electricity", day, 20.0 if stopped else normal(day), cohorts)
    assert found == []


def test_an_own_stop_while_the_peers_work_alerts_despite_the_cohort():
    cohorts = Cohorts()
    peers = [factory(f"peer{i}") for i in range(15)]
    found = {}
    for day in days(date(2024, 4, 8), 70):
        for i, det in enumerate(peers):
            stopped = i == 0 and day >= date(2024, 6, 3)
            found.setdefault(i, []).extend(det.on_day("electricity", day, 50.0 if stopped else normal(day), cohorts))
    assert [f.rule for f in found[0]][:1] == ["utility_drop"]
    assert all(not f for i, f in found.items() if i)


def test_a_drop_resolves_when_consumption_comes_back_and_keeps_its_window_start():
    det = factory()
    found = feed(det, lambda d: 50.0 if date(2024, 6, 3) <= d < date(2024, 6, 17) else normal(d))
    drops = [f for f in found if f.rule == "utility_drop"]
    assert drops[0].status == "open" and drops[-1].status == "resolved"
    assert {f.window_start for f in drops} == {date(2024, 6, 3)}


def test_a_near_total_stop_of_5_working_days_is_critical():
    det = factory()
    found = feed(det, lambda d: 0.0 if d >= date(2024, 6, 3) else normal(d))
    severities = [f.severity for f in found if f.rule == "utility_drop"]
    assert severities[0] == "warning" and "critical" in severities


def test_a_spike_above_3x_for_2_days_alerts():
    det = factory()
    spike = {date(2024, 6, 4), date(2024, 6, 5)}
    found = feed(det, lambda d: 5000.0 if d in spike else normal(d))
    spikes = [f for f in found if f.rule == "utility_spike"]
    assert spikes[0].status == "open" and spikes[0].window_start == date(2024, 6, 4)
    assert spikes[-1].status == "resolved"


def test_a_one_day_spike_is_not_an_alert():
    det = factory()
    assert feed(det, lambda d: 5000.0 if d == date(2024, 6, 4) else normal(d)) == []


def test_a_new_higher_level_is_adopted_after_the_adaptation_period():
    det = factory()
    found = feed(det, lambda d: normal(d) * (4 if d >= date(2024, 5, 20) else 1), n=120)
    spikes = [f for f in found if f.rule == "utility_spike"]
    assert spikes[0].status == "open" and spikes[-1].status == "resolved"


def test_a_new_higher_level_is_adopted_on_weekends_too_so_it_is_one_alert():
    det = factory()
    found = feed(det, lambda d: normal(d) * (4 if d >= date(2024, 5, 20) else 1), n=120)
    assert [f.status for f in found if f.rule == "utility_spike"][-1] == "resolved"
    assert len({f.window_start for f in found if f.rule == "utility_spike"}) == 1


def test_a_spike_over_a_weekend_is_judged_against_the_weekend_level():
    det = factory()
    spike = {date(2024, 6, 7), date(2024, 6, 8)}          # Friday and Saturday
    found = feed(det, lambda d: normal(d) * 4 if d in spike else normal(d))
    assert [f.window_start for f in found if f.rule == "utility_spike"][:1] == [date(2024, 6, 7)]


def test_a_busy_weekend_on_a_tiny_weekend_level_is_not_a_spike():
    det = factory()
    busy = {date(2024, 6, 8), date(2024, 6, 9)}
    level = lambda d: 1000.0 + 37 * (d.toordinal() % 5) if d.weekday() < 5 else 20.0 + d.toordinal() % 3  # noqa: E731
    assert feed(det, lambda d: 200.0 if d in busy else level(d)) == []   # 10x a weekend, 20% of a workday


def test_a_partial_stop_just_above_the_threshold_does_not_teach_the_baseline():
    det = factory()
    partial = lambda d: date(2024, 5, 13) <= d < date(2024, 6, 17)  # noqa: E731
    found = feed(det, lambda d: normal(d) * (0.33 if partial(d) else 1), n=100)
    assert found == []                                      # back to normal: no "spike"
    assert det.series["electricity"].baseline.workday_level() > 500   # adapting step by step


def test_missing_days_are_not_a_drop():
    det = factory()
    assert feed(det, lambda d: None if d >= date(2024, 6, 3) else normal(d)) == []


def test_a_zero_return_streak_of_3_months_alerts_and_is_critical_while_the_meters_run():
    det = factory()
    feed(det, normal, start=date(2024, 1, 1))
    found = []
    for period in ("2024-01", "2024-02", "2024-03"):
        found += det.on_tax(period, 0.0, 0.0)
    assert [(f.rule, f.severity) for f in found] == [("tax_zero_streak", "critical")]
    assert found[0].window_start == date(2024, 1, 1) and found[0].window_end == date(2024, 3, 31)
    assert [f.status for f in det.on_tax("2024-04", 5e5, 1.5e4)] == ["resolved"]


def test_zero_returns_of_a_new_enterprise_do_not_alert():
    det = factory(established_on=date(2024, 1, 10))
    found = [f for p in ("2024-01", "2024-02", "2024-03") for f in det.on_tax(p, 0.0, 0.0)]
    assert found == []


def test_a_corrected_return_replaces_the_zero_and_clears_the_streak():
    det = factory()
    for period in ("2024-01", "2024-02", "2024-03"):
        det.on_tax(period, 0.0, 0.0)
    assert [f.status for f in det.on_tax("2024-03", 8e5, 2e4)] == ["resolved"]


def test_sales_below_half_of_last_year_and_the_trailing_median_alert():
    det = factory()
    for period in [f"2023-{i:02d}" for i in range(6, 13)] + [f"2024-{i:02d}" for i in range(1, 6)]:
        det.on_tax(period, 1e6, 3e4)
    found = det.on_tax("2024-06", 3e5, 9e3)
    assert [(f.rule, f.observed, f.expected) for f in found] == [("tax_sales_drop", 3e5, 1e6)]


def test_a_spring_festival_month_is_not_judged_for_a_sales_drop():
    det = factory()
    for i in range(1, 13):
        det.on_tax(f"2023-{i:02d}", 1e6, 3e4)
    det.on_tax("2024-01", 1e6, 3e4)
    assert det.on_tax("2024-02", 2e5, 6e3) == []      # the 2024 shutdown covers most of February


def test_a_dip_that_the_peers_share_is_not_a_sales_drop():
    cohorts = Cohorts()
    peers = [factory(f"peer{i}") for i in range(12)]
    history = [f"2023-{i:02d}" for i in range(6, 13)] + [f"2024-{i:02d}" for i in range(1, 6)]
    for det in peers:
        for period in history:
            det.on_tax(period, 1e6, 3e4, cohorts)
    for det in peers:
        det.on_tax("2024-06", 4e5, 1e4, cohorts)         # the whole cohort halves in June
    assert factory_after(history, cohorts).on_tax("2024-06", 3e5, 9e3, cohorts) == []


def factory_after(history, cohorts):
    det = factory()
    for period in history:
        det.on_tax(period, 1e6, 3e4, cohorts)
    return det


def test_a_seasonal_dip_that_last_year_also_had_is_not_a_sales_drop():
    det = factory()
    for i in range(1, 13):
        det.on_tax(f"2023-{i:02d}", 4e5 if i == 2 else 1e6, 3e4)
    det.on_tax("2024-01", 1e6, 3e4)
    assert det.on_tax("2024-02", 4e5, 1e4) == []


def test_a_headcount_drop_of_30_percent_and_10_people_in_a_month_alerts():
    det = factory()
    assert det.on_social("2024-03", 100, 1e5) == []
    found = det.on_social("2024-04", 65, 6.5e4)
    assert [(f.rule, f.observed, f.expected) for f in found] == [("headcount_drop", 65.0, 100.0)]


def test_a_small_firm_losing_3_of_8_people_is_not_a_mass_layoff():
    det = factory()
    det.on_social("2024-03", 8, 8e3)
    assert det.on_social("2024-04", 5, 5e3) == []


def test_a_headcount_drop_of_half_over_3_months_alerts():
    det = factory()
    found = []
    for period, heads in (("2024-01", 200), ("2024-02", 160), ("2024-03", 130), ("2024-04", 98)):
        found += det.on_social(period, heads, heads * 1e3)
    assert [f.rule for f in found] == ["headcount_drop"]
    assert found[0].expected == 200.0


def test_a_burst_of_complaints_against_a_quiet_history_alerts():
    det = factory()
    for day in days(date(2024, 1, 1), 120):
        det.on_watermark(day)
        if day.toordinal() % 30 == 0:
            det.on_complaint(day)
    found = []
    for day in (date(2024, 4, 30), date(2024, 5, 1), date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3)):
        found += det.on_complaint(day)
    assert [(f.rule, f.observed) for f in found] == [("complaint_burst", 5.0)]
    later = [f for day in days(date(2024, 5, 4), 14) for f in det.on_watermark(day)]
    assert [f.status for f in later] == ["resolved"]


def test_four_complaints_are_never_a_burst():
    det = factory()
    found = [f for d in days(date(2024, 5, 1), 4) for f in det.on_complaint(d)]
    assert found == []


def test_a_repeated_complaint_counts_once():
    det = factory()
    found = [f for _ in range(6) for f in det.on_complaint(date(2024, 5, 1), complaint_id="c-1")]
    assert found == []


def test_a_shell_with_no_activity_for_6_months_is_found_dormant_by_the_watermark():
    det = factory()
    found = [f for day in days(date(2024, 1, 1), 200) for f in det.on_watermark(day)]
    assert [(f.rule, f.window_start) for f in found[:1]] == [("dormant_entity", date(2024, 1, 1))]
    assert found[0].window_end == date(2024, 7, 1)


def test_an_enterprise_with_staff_is_not_dormant():
    det = factory()
    det.on_social("2024-03", 12, 1.2e4)
    assert [f for day in days(date(2024, 1, 1), 200) for f in det.on_watermark(day)] == []


def test_a_deregistered_enterprise_is_not_dormant():
    det = factory(status="deregistered")
    assert [f for day in days(date(2024, 1, 1), 200) for f in det.on_watermark(day)] == []


def _cohort_with_peers(n: int = 40) -> Cohorts:
    cohorts = Cohorts(min_members=30)
    for i in range(n):
        cohorts.observe(PROFILE, "log_sales_per_kwh", f"peer{i}", 2.0 + 0.05 * (i % 7))
    return cohorts


def _powered(det, kwh_per_day: float, start=date(2024, 3, 1), n=61):
    for day in days(start, n):
        det.on_day("electricity", day, kwh_per_day)


def test_sales_far_above_the_peers_per_kwh_is_a_mismatch():
    det, cohorts = factory(), _cohort_with_peers()
    _powered(det, 1000.0)
    found = det.on_tax("2024-04", 30_000 * 8.0 * 30, 1e4, cohorts)   # 30x the peers' 7.4 CNY/kWh
    assert [(f.rule, f.expected) for f in found] == [("sales_energy_mismatch", found[0].expected)]
    assert found[0].observed > 100 and "false invoicing" in found[0].explanation["en"]


def test_sales_far_below_the_peers_per_kwh_is_a_mismatch_the_other_way():
    det, cohorts = factory(), _cohort_with_peers()
    _powered(det, 1000.0)
    found = det.on_tax("2024-04", 30_000 * 0.1, 1e2, cohorts)
    assert [f.rule for f in found] == ["sales_energy_mismatch"]
    assert "under-reporting" in found[0].explanation["en"]


def test_sales_with_next_to_no_electricity_is_a_critical_mismatch():
    det, cohorts = factory(), Cohorts()
    _powered(det, 0.2)
    found = det.on_tax("2024-04", 2e6, 6e4, cohorts)
    assert [(f.rule, f.severity) for f in found] == [("sales_energy_mismatch", "critical")]


def test_sales_in_line_with_the_peers_is_no_mismatch():
    det, cohorts = factory(), _cohort_with_peers()
    _powered(det, 1000.0)
    assert det.on_tax("2024-04", 30_000 * 8.0, 7e3, cohorts) == []


def test_a_peer_from_another_industry_is_no_reference_for_sales_per_kwh():
    det, cohorts = factory(), Cohorts(min_members=30)
    for i in range(40):                                    # wholesale peers, 30x the sales per kWh
        cohorts.observe({**PROFILE, "industry": "C38"}, "log_sales_per_kwh", f"peer{i}", 5.4 + 0.05 * (i % 7))
    _powered(det, 1000.0)
    assert det.on_tax("2024-04", 30_000 * 8.0, 7e3, cohorts) == []


def test_without_industry_peers_sales_per_kwh_is_judged_against_its_own_months():
    det, cohorts = factory(), Cohorts()
    _powered(det, 1000.0, start=date(2024, 3, 1), n=245)   # March to October
    for month in range(3, 10):
        assert det.on_tax(f"2024-{month:02d}", 1000.0 * 8.0 * 30, 7e3, cohorts) == []
    found = det.on_tax("2024-10", 1000.0 * 8.0 * 31 * 12, 9e4, cohorts)   # 12x its usual sales per kWh
    assert [f.rule for f in found] == ["sales_energy_mismatch"]
    assert "its own median of recent months" in found[0].explanation["en"]


def test_thresholds_are_configurable():
    det = EnterpriseDetectors("914403001922038216", Thresholds(headcount_drop_1m=0.1, headcount_min_people=1))
    det.on_profile(PROFILE)
    det.on_social("2024-03", 100, 1e5)
    assert [f.rule for f in det.on_social("2024-04", 88, 8.8e4)] == ["headcount_drop"]


# -- corrections: an alert that never held is withdrawn (SPEC §5) ----------------------------

def test_a_corrected_return_that_undoes_a_sales_drop_withdraws_it():
    det = factory()
    for period in [f"2023-{i:02d}" for i in range(6, 13)] + [f"2024-{i:02d}" for i in range(1, 6)]:
        det.on_tax(period, 1e6, 3e4)
    assert [f.status for f in det.on_tax("2024-06", 3e5, 9e3)] == ["open"]
    found = det.on_tax("2024-06", 1e6, 3e4)  # the same period again: a correction
    assert [(f.rule, f.status) for f in found] == [("tax_sales_drop", "withdrawn")]
    assert found[0].explanation["en"].startswith("Withdrawn: corrected data show")


def test_a_correction_of_the_first_month_of_a_zero_streak_withdraws_it():
    det = factory()
    for period in ("2024-01", "2024-02", "2024-03"):
        det.on_tax(period, 0.0, 0.0)
    assert [f.status for f in det.on_tax("2024-01", 8e5, 2e4)] == ["withdrawn"]


def test_a_later_month_that_clears_a_drop_resolves_it_and_does_not_withdraw_it():
    det = factory()
    for period in [f"2023-{i:02d}" for i in range(6, 13)] + [f"2024-{i:02d}" for i in range(1, 6)]:
        det.on_tax(period, 1e6, 3e4)
    det.on_tax("2024-06", 3e5, 9e3)
    assert [f.status for f in det.on_tax("2024-07", 1e6, 3e4)] == ["resolved"]


# -- the Spring Festival season: each factory's own dates ---------------------------------------

def test_a_factory_that_stops_weeks_before_the_festival_and_reopens_weeks_after_is_not_alerted():
    # 2024: official holiday 10-17 February; this factory stops on 23 January (18 days before,
    # outside the fixed window) and reopens on 18 March (30 days after)
    det = factory()
    found = feed(det, lambda d: 0.0 if date(2024, 1, 23) <= d < date(2024, 3, 18) else normal(d),
                 start=date(2023, 11, 1), n=160)
    assert [f for f in found if f.rule == "utility_drop"] == []


def test_a_stop_that_begins_in_the_season_and_outlasts_it_is_a_drop():
    det = factory()
    found = feed(det, lambda d: 0.0 if d >= date(2024, 1, 23) else normal(d), start=date(2023, 11, 1), n=160)
    drops = [f for f in found if f.rule == "utility_drop" and f.status == "open"]
    assert drops and drops[0].window_start > date(2024, 3, 23)  # judged once the season is over


def test_a_factory_that_repeats_its_own_early_stop_of_last_year_is_not_alerted_again():
    # stops from 30 days before the festival (outside the season prior of 21) to 10 days
    # after, in 2024 (holiday from 10 Feb) and again in 2025 (from 28 Jan): the first year it
    # is a drop (nothing known yet); the second it repeats its own stop, so it is seasonal
    stops = [(date(2024, 2, 10) - timedelta(days=30), date(2024, 2, 10) + timedelta(days=10)),
             (date(2025, 1, 28) - timedelta(days=30), date(2025, 1, 28) + timedelta(days=10))]
    det = factory()
    found = feed(det, lambda d: 0.0 if any(a <= d <= b for a, b in stops) else normal(d),
                 start=date(2023, 9, 1), n=640)
    drops = sorted({f.window_start for f in found if f.rule == "utility_drop" and f.status == "open"})
    assert drops and min(drops) == date(2024, 1, 11)
    assert not [d for d in drops if d > date(2024, 6, 1)]
    # learned again from 2025's (30 Dec, the first working day of it, to the end of the shutdown)
    assert det.series["electricity"].stops == {2025: (-29, 28)}


def test_a_stop_weeks_away_from_last_years_own_dates_is_still_a_drop():
    stops = [(date(2024, 2, 10) - timedelta(days=30), date(2024, 2, 10) + timedelta(days=10)),
             (date(2024, 11, 4), date(2024, 11, 30))]  # November: far from any festival
    det = factory()
    found = feed(det, lambda d: 0.0 if any(a <= d <= b for a, b in stops) else normal(d),
                 start=date(2023, 9, 1), n=640)
    drops = sorted({f.window_start for f in found if f.rule == "utility_drop" and f.status == "open"})
    assert [d for d in drops if d > date(2024, 6, 1)] == [date(2024, 11, 4)]


# -- a month judged again once all of it is filed -----------------------------------------------

def test_an_early_filers_lay_off_that_the_whole_cohort_shares_is_withdrawn_the_day_after_filing_closes():
    cohorts = Cohorts()
    det = factory()
    det.on_social("2024-03", 100, 1e5, cohorts)
    early = det.on_social("2024-04", 65, 6.5e4, cohorts)  # filed on 3 May, before any peer
    assert [(f.rule, f.status) for f in early] == [("headcount_drop", "open")]
    for i in range(12):  # the peers file by 20 May: they lost as many
        peer = factory(f"peer{i}")
        peer.on_social("2024-03", 100, 1e5, cohorts)
        peer.on_social("2024-04", 60, 6e4, cohorts)
    assert det.on_watermark(date(2024, 5, 20), cohorts) == []  # filing still open
    review = det.on_watermark(date(2024, 5, 21), cohorts)
    assert [(f.rule, f.status) for f in review] == [("headcount_drop", "withdrawn")]


def test_a_sales_drop_that_the_first_peers_explained_opens_once_the_whole_cohort_has_filed():
    cohorts = Cohorts()
    history = [f"2023-{i:02d}" for i in range(6, 13)] + [f"2024-{i:02d}" for i in range(1, 6)]
    peers = [factory(f"peer{i}") for i in range(30)]
    for peer in peers:
        for period in history:
            peer.on_tax(period, 1e6, 3e4, cohorts)
    for peer in peers[:12]:  # the first twelve to file halved (their own troubles) ...
        peer.on_tax("2024-06", 4e5, 1e4, cohorts)
    det = factory_after(history, cohorts)
    assert det.on_tax("2024-06", 3e5, 9e3, cohorts) == []  # ... so the cohort seemed to dip
    for peer in peers[12:]:  # ... but the other eighteen, filing later, did not
        peer.on_tax("2024-06", 1e6, 3e4, cohorts)
    review = det.on_watermark(date(2024, 7, 16), cohorts)
    assert [(f.rule, f.status, f.window_start) for f in review] == [("tax_sales_drop", "open", date(2024, 6, 1))]
    assert det.on_watermark(date(2024, 8, 16), cohorts) == []  # July not filed: nothing to review


def test_a_months_long_halt_through_the_festival_is_not_learned_as_the_factorys_season():
    # halted from 1 October 2024 to 3 March 2025 (alerted), then a real stop from 10 November
    # 2025: the halt is no seasonal stop, so the next year's stop is still a drop
    stops = [(date(2024, 10, 1), date(2025, 3, 3)), (date(2025, 11, 10), date(2026, 1, 10))]
    det = factory()
    found = feed(det, lambda d: 0.0 if any(a <= d <= b for a, b in stops) else normal(d),
                 start=date(2023, 9, 1), n=900)
    drops = sorted({f.window_start for f in found if f.rule == "utility_drop" and f.status == "open"})
    assert det.series["electricity"].stops == {}
    assert date(2025, 11, 10) in drops

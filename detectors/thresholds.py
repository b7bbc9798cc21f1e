"""The rule thresholds (SPEC §4 defaults), as one frozen settings object.

>>> t = Thresholds(drop_ratio=0.25)
>>> t.drop_ratio, t.drop_days, DEFAULT.spike_ratio
(0.25, 3, 3.0)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    """Every number a rule decides with.  Change one with ``Thresholds(name=value)``."""

    # baselines (daily utility consumption)
    baseline_work_days: int = 20        # recent ordinary working days remembered per utility
    baseline_rest_days: int = 6         # recent Saturdays (and Sundays) remembered
    baseline_min_days: int = 10         # working days learned before a utility rule may fire
    min_z: float = 2.0                  # a day must also be this many robust sigmas off
    learn_clip_z: float = 3.0           # a day is learned clipped to expected +/- this many sigmas
    spread_floor_ratio: float = 0.05    # a baseline's spread is at least 5% of its level (and one meter step)
    learn_min_ratio: float = 0.5        # a day below half of expected is not learned ...
    learn_adapt_days: int = 20          # ... until such days have lasted this long in a row
    # utility_drop
    drop_ratio: float = 0.30            # below 30% of the expected level ...
    drop_days: int = 3                  # ... on 3 consecutive working days
    drop_clear_days: int = 2            # working days back at >= drop_ratio that clear it
    drop_critical_ratio: float = 0.05   # near-total stop ...
    drop_critical_days: int = 5         # ... for this many working days: critical
    peer_share: float = 0.30            # a stop shared by >= 30% of the cohort is seasonal
    peer_min_members: int = 10          # verdicts needed on a day to judge sharing
    # utility_spike
    spike_ratio: float = 3.0            # above 3x the expected level ...
    spike_days: int = 2                 # ... on 2 consecutive ordinary days
    spike_clear_days: int = 2
    spike_rest_floor: float = 0.3       # a high rest day must also exceed 30% of a working day
    spike_adapt_days: int = 28          # after this long, a higher level is the new normal
    # a meter's days wait for its own late readings (a monthly upload) this long at most
    meter_wait_days: int = 35
    # dormant_entity
    dormant_months: int = 6             # no activity for 6 months ...
    dormant_min_age_months: int = 6     # ... by an enterprise at least 6 months old
    active_day_amount: float = 1.0      # a day with more than this consumption is activity
    # tax_zero_streak
    zero_streak_months: int = 3
    zero_min_age_months: int = 6
    # tax_sales_drop
    sales_drop_ratio: float = 0.50
    sales_critical_ratio: float = 0.10
    # sales_energy_mismatch
    mismatch_z: float = 3.5             # robust z of log(sales per kWh) against the cohort ...
    mismatch_months: int = 2            # ... in 2 consecutive months,
    mismatch_z_now: float = 5.0         # ... or once this far out
    mismatch_min_scale: float = 0.2     # floor of the cohort's spread (log scale)
    mismatch_min_days: int = 20         # days of electricity data needed in the month
    no_power_kwh_month: float = 30.0    # "next to no electricity" in a month ...
    no_power_min_sales: float = 100_000.0  # ... while declaring at least this much
    mismatch_min_members: int = 12     # peers of the same industry needed to judge sales per kWh ...
    mismatch_own_months: int = 4       # ... else its own months (at least this many) are the reference
    cohort_min_members: int = 30
    # a month's returns are all filed by this day of the next month: its peer verdicts are
    # judged again the day after, against the month's whole cohort
    tax_filed_by_day: int = 15
    social_filed_by_day: int = 20
    # headcount_drop
    headcount_drop_1m: float = 0.30
    headcount_drop_3m: float = 0.50
    headcount_min_people: int = 10
    headcount_critical: float = 0.50    # >= 50% in a single month: critical
    # complaint_burst
    complaint_window_days: int = 7
    complaint_history_days: int = 90
    complaint_min: int = 5
    complaint_log10_p: float = 3.0      # tail probability below 1e-3
    complaint_prior_rate: float = 0.005  # complaints per enterprise-day when no cohort is known
    complaint_prior_days: float = 30.0


DEFAULT = Thresholds()

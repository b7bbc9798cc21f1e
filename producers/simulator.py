"""A synthetic city with ground truth: SPEC §2 events for every department, day by day.

``generate(config)`` yields the events of a city (see ``producers.city``) over a date range,
in delivery order (which is event-time order except for late deliveries), as JSON-ready
dicts; a deliberately malformed event is a broken dict or a raw string of bad JSON.
``ground_truth(config)`` lists the anomalies injected into it, one record per anomaly,
with the SPEC §4 rule names.  ``write_files`` writes both as JSON Lines.

What a normal enterprise sends:

- ``registry``: its master data, once, at the beginning of the output.
- ``utility``: electricity (hourly or daily readings) and water (daily readings).  Each meter
  uploads on its own schedule (``producers.uploads``; shares in ``SimulationConfig.uploads``,
  by default 50% daily, 35% weekly, 15% monthly): daily meters the day's readings the next
  night, weekly ones Monday..Sunday the night after the Sunday, monthly ones the calendar
  month 2-5 days after it.  Levels scale with headcount and industry; working days,
  Saturdays, Sundays, public holidays and adjusted working days (``chinese_calendar``) each
  have their own level; every factory stops for the Spring Festival on its own dates
  (``spring_shutdown``: from 5-20 days before the official holiday to 1-4 weeks after it,
  dates of the holiday from the library); summer air conditioning, a yearly trend and daily
  noise; a few readings estimated.
- ``tax``: one return per month, filed in the first half of the next month; declared sales
  are the month's kWh times the enterprise's own sales per kWh (stable within an industry),
  3% corrected 5-45 days later (same period, later event_time, sales +-10%).
- ``social``: insured headcount and contributions per month, filed the next month; 2%
  corrected 10-40 days later (same period, later event_time, headcount +-6%).
- ``complaint``: a Poisson process at the industry's rate; some texts hold phone or ID
  numbers, as real ones do.

On top of that: late deliveries (3% of uploads and tax returns 2-6 days after their
event_time, 0.5% 10-20 days: beyond any sensible allowed lateness), duplicate deliveries
(1%: the same event, same ``event_id``, again), and malformed events.  The Spring Festival
shutdowns are normal seasonal behaviour: the ground truth never lists them
(``seasonal_stops`` does).  ``LEGACY`` holds the settings that give the simulator's older,
punctual output (daily uploads only, short lateness, the fixed shutdown window).

With ``history_months`` (default 12) the tax and social returns of the year before
``start`` are included too (as the departments' historical records), so "the same month last
year" exists for every month of the range.

Determinism: the city, the anomaly plan, each meter's schedule and each factory's shutdown
come from ``(seed, index)``-seeded generators, the daily values from ``(seed, day)``-seeded
ones: the same config gives byte-identical output.

Bounded memory: the output is never held.  What is held is the city's level arrays, the
pending deliveries, and the readings a meter has not uploaded yet, as numpy rows for exactly
the meters of each schedule: memory is proportional to *meters x days held* (a daily meter
1 day, a weekly one up to 7, a monthly one up to 36: its month until it is delivered, and
the first days of the next), whatever the range.  A late or duplicated upload keeps a copy of
its own meter's rows only.  With the default mix that is at most about 8.4 days per meter
(0.5 x 1 + 0.35 x 7 + 0.15 x 36), e.g. 100,000 enterprises with hourly electricity:
100,000 x 8.4 x 24 readings x 8 bytes = 160 MB for electricity, 7 MB for water.

>>> config = SimulationConfig(enterprises=5, days=40, history_months=0)
>>> events = list(generate(config))
>>> [e["kind"] for e in events[:5]]
['registry', 'registry', 'registry', 'registry', 'registry']
>>> sorted({e["kind"] for e in events if isinstance(e, dict)} - {"complaint"})
['registry', 'social', 'tax', 'utility']
>>> events[5]["readings"][0]
{'start': '2024-01-01T00:00:00+08:00', 'end': '2024-01-01T01:00:00+08:00', 'amount': 2.03}
>>> weekly = next(e for e in events if e["kind"] == "utility" and len(e["readings"]) == 7 * 24)
>>> weekly["readings"][0]["start"], weekly["readings"][-1]["end"], weekly["event_time"][:10]
('2024-01-01T00:00:00+08:00', '2024-01-08T00:00:00+08:00', '2024-01-08')
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Iterator

import chinese_calendar
import numpy as np
import orjson

from producers.city import Enterprise, build_city, staggered_shutdown
from producers.uploads import (
    DAY,
    SCHEDULES,
    SOURCES,
    Delivery,
    MeterReadings,
    UploadMix,
    day_text,
    delivery_draws,
    own_rows,
    put,
    schedule_of,
    ts,
    utility_event,
)
from streams.contracts import CATEGORIES, CHANNELS
from streams.uscc import CHARSET

__all__ = ["RULES", "LEGACY", "AnomalyRates", "SimulationConfig", "UploadMix", "generate", "deliveries",
           "ground_truth", "write_files", "write_truth", "spring_festival", "spring_shutdown", "seasonal_stops",
           "city_of"]

RULES = ("utility_drop", "utility_spike", "dormant_entity", "tax_zero_streak", "tax_sales_drop",
         "sales_energy_mismatch", "headcount_drop", "complaint_burst")
_UTC8 = timezone(timedelta(hours=8))
SPRING_BEFORE, SPRING_AFTER = 7, 21   # shutdowns stay within 7 days before .. 21 after the holiday

# month-of-year level (Jan..Dec) by regime: summer air conditioning, the autumn export peak
_SEASON = {
    "factory": (1.00, 1.00, 0.98, 1.00, 1.02, 1.05, 1.08, 1.08, 1.07, 1.05, 1.04, 1.02),
    "office": (0.95, 0.95, 0.95, 1.00, 1.10, 1.20, 1.28, 1.28, 1.20, 1.05, 0.97, 0.95),
    "shop": (1.00, 1.00, 0.97, 1.00, 1.08, 1.18, 1.25, 1.25, 1.18, 1.05, 1.00, 1.02),
    "logistics": (1.00, 0.98, 0.98, 1.00, 1.03, 1.06, 1.08, 1.08, 1.08, 1.08, 1.10, 1.08),
}
# share of a day's electricity per hour, by load shape
_SHAPES = {
    "two_shift": [0.25] * 7 + [0.7] + [1.0] * 4 + [0.6] + [1.0] * 5 + [0.8] + [0.9] * 3 + [0.4, 0.3],
    "continuous": [0.85] * 7 + [1.0] * 12 + [0.9] * 5,
    "office": [0.15] * 8 + [0.6] + [1.0] * 3 + [0.7] + [1.0] * 5 + [0.5, 0.3] + [0.2] * 4,
    "retail": [0.15] * 8 + [0.4, 0.7] + [1.0] * 12 + [0.5, 0.2],
    "catering": [0.1] * 9 + [0.4, 0.8, 1.0, 1.0, 0.7, 0.5, 0.5, 0.7, 1.0, 1.0, 1.0, 0.8, 0.5, 0.3, 0.15],
}
_SHAPE_NAMES = tuple(_SHAPES)
_SHAPE_MATRIX = np.array([np.array(v) / sum(v) for v in _SHAPES.values()])
_REGIME_NAMES = tuple(_SEASON)
_SEASON_MATRIX = np.array([_SEASON[r] for r in _REGIME_NAMES])


# -- configuration ----------------------------------------------------------------------------
@dataclass(frozen=True)
class AnomalyRates:
    """Share of the city's enterprises given each injected anomaly (exact counts, rounded)."""

    utility_drop: float = 0.02
    utility_spike: float = 0.01
    dormant_entity: float = 0.01
    tax_zero_streak: float = 0.01
    tax_sales_drop: float = 0.01
    sales_energy_mismatch: float = 0.015
    headcount_drop: float = 0.01
    complaint_burst: float = 0.01


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that decides the output; the same config gives byte-identical files.

    >>> SimulationConfig(days=0)
    Traceback (most recent call last):
    ...
    ValueError: days must be at least 1
    """

    enterprises: int = 2000
    start: date = date(2024, 1, 1)
    days: int = 366
    seed: int = 7
    rates: AnomalyRates = field(default_factory=AnomalyRates)
    history_months: int = 12           # tax and social returns of this many months before start
    electricity_interval: str = "hour"  # "hour": 24 readings a day; "day": one
    water: bool = True                 # daily water readings too
    uploads: UploadMix = field(default_factory=UploadMix)  # share of meters per upload schedule
    upload_every_days: int = 1         # a meter on the daily schedule uploads every this many days
    monthly_upload_days: tuple[int, int] = (2, 5)  # a monthly upload arrives this many days after the month
    malformed_share: float = 0.001     # extra, deliberately broken events (per event)
    duplicate_share: float = 0.01      # events delivered twice (same event_id)
    late_share: float = 0.03           # events delivered late_hours after their event_time
    late_hours: tuple[int, int] = (48, 144)
    very_late_share: float = 0.005     # events delivered very_late_hours late instead
    very_late_hours: tuple[int, int] = (240, 480)
    estimated_share: float = 0.01      # meter-days whose readings are estimated
    correction_share: float = 0.03     # tax returns corrected later (same period)
    social_correction_share: float = 0.02  # social-insurance returns corrected later (same period)
    spring_shutdown: str = "staggered"  # "staggered": each factory its own dates; "window": the old fixed window
    spring_lead_days: tuple[int, int] = (5, 20)   # a staggered shutdown begins this long before the holiday
    spring_tail_days: tuple[int, int] = (7, 28)   # and ends this long after its last official rest day

    def __post_init__(self) -> None:
        problems = []
        if self.enterprises < 1:
            problems.append("enterprises must be at least 1")
        if self.days < 1:
            problems.append("days must be at least 1")
        if self.electricity_interval not in ("hour", "day"):
            problems.append("electricity_interval must be 'hour' or 'day'")
        if not 1 <= self.upload_every_days <= 31:
            problems.append("upload_every_days must be between 1 and 31")
        problems += self.uploads.problems()
        longest = max(self.upload_every_days, 7 if self.uploads.weekly else 1, 31 if self.uploads.monthly else 1)
        if longest * (24 if self.electricity_interval == "hour" else 1) > 10_000:
            problems.append("an upload would carry more than 10,000 readings")
        if not 0 <= self.history_months <= 36:
            problems.append("history_months must be between 0 and 36")
        for name in ("malformed_share", "duplicate_share", "late_share", "very_late_share", "estimated_share",
                     "correction_share", "social_correction_share"):
            if not 0 <= getattr(self, name) <= 0.5:
                problems.append(f"{name} must be between 0 and 0.5")
        for name, lo, hi in (("monthly_upload_days", 1, 28), ("late_hours", 1, 2000), ("very_late_hours", 1, 2000),
                             ("spring_lead_days", 0, 40), ("spring_tail_days", 0, 60)):
            value, strict = getattr(self, name), name.endswith("_hours")   # hours: [low, high)
            if len(value) != 2 or not lo <= value[0] <= value[1] <= hi or (strict and value[0] == value[1]):
                problems.append(f"{name} must be two whole numbers (low, high) with {lo} <= low "
                                f"{'<' if strict else '<='} high <= {hi}")
        if self.spring_shutdown not in ("staggered", "window"):
            problems.append("spring_shutdown must be 'staggered' or 'window'")
        for f in fields(AnomalyRates):
            if not 0 <= getattr(self.rates, f.name) <= 0.2:
                problems.append(f"the {f.name} rate must be between 0 and 0.2")
        if self.end > date.today():
            problems.append(f"the range must end by today: start {self.start} + {self.days} days is in the future")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def end(self) -> date:
        """The day after the last simulated day."""
        return self.start + timedelta(days=self.days)

    @property
    def history_start(self) -> date:
        """The first day of the city's simulated history (first of a month)."""
        return _month_add(self.start.replace(day=1), -self.history_months)

    @property
    def spring_margins(self) -> tuple[int, int]:
        """How many days before the Spring Festival holiday a shutdown may begin and after its
        last rest day a shutdown may last (the ramp-up back to work follows)."""
        if self.spring_shutdown == "window":
            return SPRING_BEFORE, SPRING_AFTER
        return self.spring_lead_days[1], self.spring_tail_days[1]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["start"] = self.start.isoformat()
        return d


# The simulator as it was before issue 12: every meter uploads daily, 1% of events 1 hour to
# 5 days late, 0.3% delivered twice, no corrected social returns, and every factory's Spring
# Festival shutdown inside the fixed window 7 days before .. 21 days after the holiday.
# ``SimulationConfig(..., **LEGACY)`` gives byte for byte what the old simulator gave.
LEGACY = MappingProxyType({
    "uploads": UploadMix(daily=1.0, weekly=0.0, monthly=0.0), "duplicate_share": 0.003, "late_share": 0.01,
    "late_hours": (1, 120), "very_late_share": 0.0, "social_correction_share": 0.0, "spring_shutdown": "window",
})


# -- calendar -----------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def spring_festival(year: int) -> tuple[date, date] | None:
    """First and last official rest day of the Spring Festival holiday of ``year``, from
    ``chinese_calendar`` (None for a year the library does not know).

    >>> spring_festival(2024)
    (datetime.date(2024, 2, 10), datetime.date(2024, 2, 17))
    """
    try:
        days = sorted(d for d in chinese_calendar.get_holidays(date(year, 1, 1), date(year, 3, 31))
                      if chinese_calendar.get_holiday_detail(d)[1] == chinese_calendar.Holiday.spring_festival.value)
    except NotImplementedError:
        return None
    return (days[0], days[-1]) if days else None


@dataclass(frozen=True)
class _Day:
    day: date
    workday: bool        # official working day (incl. adjusted working weekend days)
    holiday: bool        # a rest day of a public holiday
    spring: bool         # a rest day of the Spring Festival holiday


@lru_cache(maxsize=4096)
def _day_info(day: date) -> _Day:
    try:
        work, name = chinese_calendar.get_holiday_detail(day)
        work = not work
    except NotImplementedError:
        work, name = day.weekday() < 5, None
    return _Day(day, work, (not work) and name is not None,
                (not work) and name == chinese_calendar.Holiday.spring_festival.value)


def _month_add(first: date, months: int) -> date:
    y, m = divmod(first.year * 12 + first.month - 1 + months, 12)
    return date(y, m + 1, 1)


def _period(first: date) -> str:
    return f"{first.year:04d}-{first.month:02d}"


def _month_end(first: date) -> date:
    return _month_add(first, 1) - timedelta(days=1)


def _quiet(day: date, margins: tuple[int, int]) -> bool:
    """A day a rule window should avoid: a public holiday, or a day on which some factory may
    be in its Spring Festival shutdown or ramping up after it (``margins``: days before the
    holiday, days after it)."""
    before, after = margins
    for year in (day.year, day.year + 1):
        sf = spring_festival(year)
        if sf and sf[0] - timedelta(days=before) <= day <= sf[1] + timedelta(days=after + 7):
            return True
    return _day_info(day).holiday


def spring_shutdown(config: SimulationConfig, e: Enterprise, year: int) -> tuple[date, date] | None:
    """First and last day of enterprise ``e``'s Spring Festival shutdown in ``year`` (None if it
    does not stop, i.e. is not a factory, or the calendar does not know the year).

    ``staggered`` (the default): each factory its own dates, ``spring_lead_days`` before the
    holiday to ``spring_tail_days`` after it (``producers.city.staggered_shutdown``);
    ``window``: 1-7 days before the holiday for 14-28 days, cut at 21 days after it.

    >>> config = SimulationConfig(enterprises=40)
    >>> factory = next(e for e in city_of(config) if e.regime == "factory")
    >>> spring_festival(2024)
    (datetime.date(2024, 2, 10), datetime.date(2024, 2, 17))
    >>> spring_shutdown(config, factory, 2024)    # 20 days before the holiday .. 11 days after
    (datetime.date(2024, 1, 21), datetime.date(2024, 2, 28))
    >>> spring_shutdown(config, factory, 2025)    # its habit again, a few days off
    (datetime.date(2025, 1, 8), datetime.date(2025, 2, 11))
    >>> spring_shutdown(SimulationConfig(enterprises=40, **LEGACY), factory, 2024)
    (datetime.date(2024, 2, 9), datetime.date(2024, 2, 29))
    """
    sf = spring_festival(year)
    if sf is None or e.regime != "factory":
        return None
    if config.spring_shutdown == "staggered":
        return staggered_shutdown(config.seed, e.index, sf, config.spring_lead_days, config.spring_tail_days)
    first = sf[0] - timedelta(days=e.spring_lead)
    last = min(max(first + timedelta(days=e.spring_days - 1), sf[1]), sf[1] + timedelta(days=SPRING_AFTER))
    return first, last


def seasonal_stops(config: SimulationConfig) -> list[dict]:
    """The Spring Festival shutdowns of the city's active factories that touch the range:
    ``{uscc, start, end}`` (ISO dates), by start then USCC.  They are normal seasonal
    behaviour, never in the ground truth; a detector that alerts on one is wrong."""
    out, city = [], city_of(config)
    for year in range(config.start.year, config.end.year + 2):
        for e in city:
            stop = spring_shutdown(config, e, year) if e.status == "active" else None
            if stop and stop[0] < config.end and stop[1] >= config.start:
                out.append({"uscc": e.uscc, "start": stop[0].isoformat(), "end": stop[1].isoformat()})
    return sorted(out, key=lambda r: (r["start"], r["uscc"]))


# -- the anomaly plan -----------------------------------------------------------------------------
@dataclass
class _Plan:
    """What is injected where; derived from the config alone (no day-by-day noise)."""

    truth: list[dict]
    elec_mode: np.ndarray    # 0 normal, 1 zero readings, 2 no meter, 3 trickle (next to no power)
    water_mode: np.ndarray   # 0 normal, 1 zero readings, 2 no meter
    tax_mode: np.ndarray     # 0 normal, 1 zero returns, 2 none filed, 3 invoices without power
    social_mode: np.ndarray  # 0 normal, 1 zero headcount, 2 none filed
    effects: list[tuple[int, int, int, float, float]] = field(default_factory=list)  # ent, from, to, elec, water
    sales: dict[tuple[int, str], float] = field(default_factory=dict)   # (ent, period) -> factor (0: zero return)
    headcount: dict[int, tuple[str, float]] = field(default_factory=dict)  # ent -> (from period, factor)
    bursts: dict[date, list[tuple[int, int, str]]] = field(default_factory=dict)  # day -> (ent, n, category)
    invoices: dict[int, float] = field(default_factory=dict)   # ent -> monthly sales without power


def _plan(config: SimulationConfig, city: list[Enterprise]) -> _Plan:
    n = len(city)
    plan = _Plan([], np.zeros(n, np.int8), np.zeros(n, np.int8), np.zeros(n, np.int8), np.zeros(n, np.int8))
    for e in city:
        if e.status != "active":   # suspended, deregistered, revoked: nothing to report
            plan.elec_mode[e.index] = plan.water_mode[e.index] = 2
            plan.tax_mode[e.index] = plan.social_mode[e.index] = 2
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([config.seed, 0xA4A1])))
    order = rng.permutation(n)
    taken = set(int(i) for i in np.flatnonzero(plan.elec_mode == 2))
    months = _full_months(config.start, config.end)
    first_month = config.history_start
    truth = plan.truth

    def pick(rule: str, share: float, ok: Callable[[Enterprise], bool]) -> list[Enterprise]:
        want = int(round(share * n))
        chosen = []
        for i in order:
            if len(chosen) >= want:
                break
            e = city[int(i)]
            if e.index not in taken and ok(e):
                chosen.append(e)
                taken.add(e.index)
        return chosen

    def record(e: Enterprise, rule: str, start: date, end: date, **parameters) -> None:
        truth.append({"uscc": e.uscc, "rule": rule, "start": start.isoformat(), "end": end.isoformat(),
                      "parameters": parameters})

    def r(e: Enterprise, rule: str) -> random.Random:
        return random.Random(f"{config.seed}:{e.index}:{rule}")

    last_day = config.end - timedelta(days=1)
    margins = config.spring_margins
    old = config.history_start - timedelta(days=365)
    # dormant shells: registered active, never any activity in the data
    for e in pick("dormant_entity", config.rates.dormant_entity,
                  lambda e: e.size in ("micro", "small") and e.established_on <= old):
        g = r(e, "dormant_entity")
        i = e.index
        plan.elec_mode[i] = g.choice((1, 2))
        plan.water_mode[i] = g.choice((1, 2)) if plan.elec_mode[i] == 1 else 2
        plan.tax_mode[i] = 1 if g.random() < 0.6 else 2
        plan.social_mode[i] = g.choice((1, 2))
        since = max(e.established_on, config.history_start)
        utility = {1: "zero_readings", 2: "no_meter"}[int(plan.elec_mode[i])]
        tax = {1: "zero_returns", 2: "no_returns"}[int(plan.tax_mode[i])]
        social = {1: "zero_headcount", 2: "no_returns"}[int(plan.social_mode[i])]
        record(e, "dormant_entity", since, last_day, utility=utility, tax=tax, social=social,
               established_on=e.established_on.isoformat())
        if plan.tax_mode[i] == 1:
            record(e, "tax_zero_streak", since, last_day, caused_by="dormant_entity", operating=False)

    share = config.rates.sales_energy_mismatch
    for e in pick("sales_energy_mismatch", share / 3, lambda e: e.size == "micro" and e.established_on <= old):
        # false invoicing: sales with next to no electricity, all along
        i = e.index
        plan.elec_mode[i], plan.water_mode[i], plan.tax_mode[i] = 3, 2, 3
        plan.invoices[i] = r(e, "sales_energy_mismatch").uniform(3e5, 5e6)
        record(e, "sales_energy_mismatch", config.start, last_day, kind="sales_without_power",
               monthly_sales_cny=round(plan.invoices[i], 2), kwh_per_day=[0.2, 0.8])
    mismatch = pick("sales_energy_mismatch", share * 2 / 3, lambda e: e.kwh_per_day >= 20)
    for k, e in enumerate(mismatch):
        g = r(e, "sales_energy_mismatch")
        i = e.index
        if len(months) < 4:
            continue
        up = k % 2 == 0
        span = g.randint(2, 4) if up else g.randint(3, 5)
        first = g.randrange(2, max(3, len(months) - span + 1))
        window = months[first:first + span]
        factor = g.uniform(6, 15) if up else g.uniform(0.04, 0.12)
        for m in window:
            plan.sales[(i, _period(m))] = factor
        kind = "inflated_sales" if up else "under_reporting"
        record(e, "sales_energy_mismatch", window[0], _month_end(window[-1]), kind=kind,
               sales_factor=round(factor, 3), periods=[_period(m) for m in window])
        if not up:
            record(e, "tax_sales_drop", window[0], _month_end(window[-1]), caused_by="sales_energy_mismatch",
                   sales_factor=round(factor, 3))

    for e in pick("tax_zero_streak", config.rates.tax_zero_streak,
                  lambda e: e.kwh_per_day >= 5 and e.established_on <= config.start - timedelta(days=183)):
        g = r(e, "tax_zero_streak")
        span = g.randint(3, 6)
        if len(months) < span + 2:
            continue
        first = g.randrange(2, len(months) - span + 1)
        window = months[first:first + span]
        if e.established_on > _month_add(window[0], -6):
            continue
        for m in window:
            plan.sales[(e.index, _period(m))] = 0.0
        record(e, "tax_zero_streak", window[0], _month_end(window[-1]), months=span, operating=True,
               periods=[_period(m) for m in window])

    allowed = [m for m in months if m.month >= 4 and _month_add(m, -12) >= first_month]
    for e in pick("tax_sales_drop", config.rates.tax_sales_drop, lambda e: e.kwh_per_day >= 20):
        g = r(e, "tax_sales_drop")
        span = g.randint(2, 3)
        starts = [k for k, m in enumerate(allowed) if k + span <= len(allowed)
                  and (allowed[k + span - 1].year * 12 + allowed[k + span - 1].month)
                  - (m.year * 12 + m.month) == span - 1]
        if not starts:
            continue
        window = allowed[g.choice(starts):][:span]
        factor = g.uniform(0.28, 0.40)
        # electricity falls less than sales but tracks them (sales per kWh at 0.67-0.83 of
        # normal, in line with the cohort: no mismatch) and stays at 40-60% (not a stop)
        energy = min(0.6, max(0.4, factor * g.uniform(1.2, 1.5)))
        for m in window:
            plan.sales[(e.index, _period(m))] = factor / energy   # on top of the lower kWh
        plan.effects.append((e.index, window[0].toordinal(), _month_end(window[-1]).toordinal(), energy, 1.0))
        record(e, "tax_sales_drop", window[0], _month_end(window[-1]), sales_factor=round(factor, 3),
               energy_factor=round(energy, 3), periods=[_period(m) for m in window])

    for e in pick("headcount_drop", config.rates.headcount_drop, lambda e: e.headcount >= 40):
        g = r(e, "headcount_drop")
        candidates = [m for m in months[2:] if m.month >= 5]
        if not candidates:
            continue
        m = g.choice(candidates)
        cut = g.uniform(0.35, 0.70)
        plan.headcount[e.index] = (_period(m), 1 - cut)
        plan.effects.append((e.index, m.toordinal(), config.end.toordinal(), 1 - 0.6 * cut, 1 - 0.6 * cut))
        record(e, "headcount_drop", m, _month_end(m), cut=round(cut, 3),
               before=e.headcount, after=round(e.headcount * (1 - cut)))

    earliest = _after_spring(config.start, margins) + timedelta(days=10)
    for e in pick("utility_drop", config.rates.utility_drop, lambda e: e.kwh_per_day >= 20):
        g = r(e, "utility_drop")
        length = g.randint(5, 30)
        window = _quiet_window(g, earliest, config.end, length, margins, min_workdays=3)
        if window is None:
            continue
        residual = g.uniform(0.0, 0.2)
        plan.effects.append((e.index, window[0].toordinal(), window[1].toordinal(), residual, residual + 0.1))
        record(e, "utility_drop", window[0], window[1], residual=round(residual, 3), days=length,
               utilities=["electricity", "water"] if config.water else ["electricity"])
        _derived_sales_drop(record, e, window, residual)

    for e in pick("utility_spike", config.rates.utility_spike, lambda e: e.kwh_per_day >= 20):
        g = r(e, "utility_spike")
        length = g.randint(2, 7)
        window = _quiet_window(g, earliest, config.end, length, margins, min_workdays=0)
        if window is None:
            continue
        factor = g.uniform(3.8, 8.0)
        plan.effects.append((e.index, window[0].toordinal(), window[1].toordinal(), factor, 1.0))
        record(e, "utility_spike", window[0], window[1], factor=round(factor, 3), days=length,
               utilities=["electricity"])

    cats = ("product_quality", "false_advertising", "service", "contract", "price", "food_safety")
    for e in pick("complaint_burst", config.rates.complaint_burst, lambda e: e.complaint_rate <= 0.05):
        g = r(e, "complaint_burst")
        lo, hi = config.start + timedelta(days=45), config.end - timedelta(days=8)
        if hi <= lo:
            continue
        length = g.randint(2, 7)
        first = lo + timedelta(days=g.randrange((hi - lo).days))
        count = g.randint(6, 16)
        days = [first + timedelta(days=k) for k in range(length)]
        spread = Counter(g.choice(days) for _ in range(count))
        category = "food_safety" if e.industry in ("C14", "H62") and g.random() < 0.5 else g.choice(cats[:5])
        for d, c in sorted(spread.items()):
            plan.bursts.setdefault(d, []).append((e.index, c, category))
        record(e, "complaint_burst", min(spread), max(spread), count=count, days=length, category=category)
    truth.sort(key=lambda t: (t["start"], t["uscc"], t["rule"]))
    return plan


def _full_months(start: date, end: date) -> list[date]:
    """First days of the months wholly inside ``[start, end)``."""
    m = start if start.day == 1 else _month_add(start.replace(day=1), 1)
    out = []
    while _month_add(m, 1) <= end:
        out.append(m)
        m = _month_add(m, 1)
    return out


def _after_spring(start: date, margins: tuple[int, int]) -> date:
    """The first day after ``start`` that lies past the first Spring Festival shutdown window
    it meets (or ``start`` + 60 days, whichever is later)."""
    out = start + timedelta(days=60)
    for year in (start.year, start.year + 1):
        sf = spring_festival(year)
        if sf and sf[1] + timedelta(days=margins[1]) >= start:
            return max(out, sf[1] + timedelta(days=margins[1] + 1))
    return out


def _quiet_window(g: random.Random, lo: date, end: date, length: int, margins: tuple[int, int],
                  min_workdays: int):
    """A window of ``length`` days in ``[lo, end - 5)`` free of holidays and shutdowns."""
    span = (end - lo).days - length - 5
    if span <= 0:
        return None
    for _ in range(60):
        first = lo + timedelta(days=g.randrange(span))
        days = [first + timedelta(days=k) for k in range(length)]
        # a margin of two days either side keeps holidays out of the baseline's way
        around = [first - timedelta(days=k) for k in (1, 2)] + [days[-1] + timedelta(days=k) for k in (1, 2)]
        if any(_quiet(d, margins) for d in days + around):
            continue
        if sum(_day_info(d).workday for d in days) >= min_workdays:
            return first, days[-1]
    return None


def _derived_sales_drop(record, e: Enterprise, window: tuple[date, date], residual: float) -> None:
    """A long stop also halves the month's declared sales: label that consequence too."""
    m = window[0].replace(day=1)
    while m <= window[1]:
        days = [m + timedelta(days=k) for k in range((_month_end(m) - m).days + 1)]
        work = [d for d in days if _day_info(d).workday]
        stopped = [d for d in work if window[0] <= d <= window[1]]
        factor = 1 - len(stopped) / max(1, len(work)) * (1 - residual)
        if factor < 0.55:
            record(e, "tax_sales_drop", m, _month_end(m), caused_by="utility_drop", sales_factor=round(factor, 3))
        m = _month_add(m, 1)


# -- the day-by-day engine --------------------------------------------------------------------------
class _Levels:
    """The city's level arrays, one entry per enterprise."""

    def __init__(self, city: list[Enterprise], config: SimulationConfig):
        self.n = len(city)
        self.kwh = np.array([e.kwh_per_day for e in city])
        self.water = np.array([e.water_per_day for e in city])
        self.sat = np.array([e.saturday for e in city])
        self.sun = np.array([e.sunday for e in city])
        self.hol = np.array([e.holiday for e in city])
        self.spring = np.array([e.spring_level for e in city])
        self.city, self.config = city, config
        self.factory = np.array([e.regime == "factory" for e in city])
        self.growth = np.array([e.growth for e in city])
        self.noise = np.array([e.noise for e in city])
        self.shape = np.array([_SHAPE_NAMES.index(e.shape) for e in city])
        self.regime = np.array([_REGIME_NAMES.index(e.regime) for e in city])
        self.complaints = np.array([e.complaint_rate for e in city])
        self.start = config.start
        self._windows: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}

    def shutdown(self, year: int):
        """Per enterprise, the first and last ordinal day of its Spring Festival shutdown
        (0 and -1 for an enterprise that does not stop); None for a year the calendar does not know."""
        if year not in self._windows:
            if spring_festival(year) is None:
                self._windows[year] = None
            else:
                first, last = np.zeros(self.n, dtype=np.int64), np.full(self.n, -1, dtype=np.int64)
                for e in self.city:
                    stop = spring_shutdown(self.config, e, year)
                    if stop is not None:
                        first[e.index], last[e.index] = stop[0].toordinal(), stop[1].toordinal()
                self._windows[year] = (first, last)
        return self._windows[year]

    def day_factor(self, day: date) -> np.ndarray:
        """Each enterprise's expected level on ``day`` relative to an ordinary working day."""
        info = _day_info(day)
        if info.workday:
            f = np.ones(self.n)
        elif info.spring:
            f = self.spring.copy()
        elif info.holiday:
            f = self.hol.copy()
        else:
            f = (self.sat if day.weekday() == 5 else self.sun).copy()
        o = day.toordinal()
        for year in (day.year, day.year + 1):   # a long lead may begin a shutdown in December
            window = self.shutdown(year)
            if window is not None:
                first, last = window
                f = np.where((first <= o) & (o <= last), self.spring, f)
                after = o - last
                f = np.where((after >= 1) & (after <= 6) & self.factory, f * (0.55 + 0.07 * after), f)
        season = _SEASON_MATRIX[self.regime, day.month - 1]
        trend = (1 + self.growth) ** ((day - self.start).days / 365.0)
        return f * season * trend


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *key])))


class _Engine:
    """Walks the city day by day and hands out its events in delivery order."""

    def __init__(self, config: SimulationConfig):
        self.config = config
        self.city = build_city(config.enterprises, config.seed, config.start)
        self.plan = plan = _plan(config, self.city)
        self.lv = _Levels(self.city, config)
        self.n = len(self.city)
        self.hourly = config.electricity_interval == "hour"
        self.usccs = [e.uscc for e in self.city]
        self.meters = {"electricity": [f"E{u[8:17]}01" for u in self.usccs],
                       "water": [f"W{u[8:17]}01" for u in self.usccs]}
        self.out = Delivery()
        self.base = config.history_start.toordinal()
        self.first_out = self.base if config.history_months else config.start.toordinal()
        self.start_o, self.end_o = config.start.toordinal(), config.end.toordinal()
        eff = np.array(plan.effects, dtype=float).reshape(-1, 5)
        self.eff, self.eff_ent = eff, eff[:, 0].astype(int)
        self.groups = self._meter_groups(plan.elec_mode != 2, (plan.water_mode != 2) & config.water)
        self.complaint_seq = 0
        self.malformed_rng = random.Random(f"{config.seed}:malformed")

    def _meter_groups(self, elec_on: np.ndarray, water_on: np.ndarray) -> list[MeterReadings]:
        """The meters that send readings, grouped by utility and upload schedule.  The daily
        group always exists (its uploads draw from the day's generator, as they always did)."""
        config, groups = self.config, []
        for utility, on in (("electricity", elec_on), ("water", water_on)):
            if utility == "water" and not config.water:
                continue
            schedule = np.array([SCHEDULES.index(schedule_of(config.seed, i, utility, config.uploads))
                                 for i in range(self.n)])
            for k, name in enumerate(SCHEDULES):
                members = np.flatnonzero(on & (schedule == k))
                if name == "daily" or len(members):
                    groups.append(MeterReadings(utility, name, members))
        return groups

    def at(self, ordinal: int, second: int) -> int:
        """Delivery key: seconds since the first simulated midnight."""
        return (ordinal - self.base) * DAY + second

    def events(self, progress: Callable[[int, int], None] | None = None) -> Iterator[tuple[dict | str, str]]:
        """(event, tag) in delivery order; tag is the kind, or ``late``, ``duplicate``, ``malformed``."""
        config, out = self.config, self.out
        for e in self.city:
            t = e.index * 3600 // self.n
            out.put(self.at(self.first_out, t), lambda e=e, t=t: (_registry(e, self.first_out, t), "registry"))
        month_kwh = np.zeros(self.n)
        month_first = config.history_start
        # returns of the last month are filed next month; nothing is delivered after today
        final = min(self.end_o + 120, date.today().toordinal() + 1)
        day_o = self.base
        while day_o <= final:
            # everything due before this midnight first (nothing simulated from here on is due
            # earlier), so that readings wait in memory only until their upload is delivered
            for build in out.due(self.at(day_o, 0)):
                obj, tag = build()
                yield obj, tag
                if self.malformed_rng.random() < config.malformed_share:
                    yield _malformed(obj, self.malformed_rng), "malformed"
            if day_o < self.end_o:
                day = date.fromordinal(day_o)
                month_kwh += self.day(day)
                nxt = day + timedelta(days=1)
                if nxt.day == 1:   # a month closed: its returns are filed next month
                    self.month(month_first, month_kwh)
                    month_kwh, month_first = np.zeros(self.n), nxt
                if progress is not None:
                    progress(day_o - self.base + 1, self.end_o - self.base)
            elif not out.heap:
                break
            day_o += 1

    # -- one day ------------------------------------------------------------------------------------
    def day(self, day: date) -> np.ndarray:
        """Simulate ``day``: schedule its meter uploads and complaints; return its kWh."""
        config, lv, plan, n = self.config, self.lv, self.plan, self.n
        o = day.toordinal()
        rng = _rng(config.seed, 1, o)
        factor = lv.day_factor(day)
        eff = self.eff
        active = (eff[:, 1] <= o) & (o <= eff[:, 2])
        util_e, util_w = np.ones(n), np.ones(n)
        np.multiply.at(util_e, self.eff_ent[active], eff[active, 3])
        np.multiply.at(util_w, self.eff_ent[active], eff[active, 4])
        expected = lv.kwh * factor * util_e
        kwh = expected * np.exp(rng.normal(0.0, 1.0, n) * lv.noise)
        zero, trickle = plan.elec_mode == 1, plan.elec_mode == 3
        kwh[zero] = expected[zero] = 0.0
        kwh[trickle] = expected[trickle] = rng.uniform(0.2, 0.8, int(trickle.sum()))
        if o < self.start_o:
            return kwh   # history: only the monthly returns are delivered
        # electricity: split over the hours with a little noise; some meter-days estimated
        estimated = rng.random(n) < config.estimated_share
        if self.hourly:
            shape = _SHAPE_MATRIX[lv.shape]
            shown = kwh[:, None] * shape * np.exp(rng.normal(0.0, 0.05, (n, 24)))
            shown[estimated] = expected[estimated, None] * shape[estimated]
        else:
            shown = np.where(estimated, expected, kwh)[:, None]
        rows = {"electricity": (np.round(shown, 2), estimated)}
        if config.water:
            w_expected = lv.water * factor * util_w
            w = w_expected * np.exp(rng.normal(0.0, 0.12, n))
            w_est = rng.random(n) < config.estimated_share
            w = np.where(w_est, w_expected, w)
            w[plan.water_mode == 1] = 0.0
            rows["water"] = (np.round(w, 3)[:, None], w_est)
        last = o + 1 == self.end_o
        for group in self.groups:
            group.hold(o, *rows[group.utility])
        for group in self.groups:   # daily first: they draw from the day's generator, before complaints
            if group.schedule == "daily" and group.due(day, config.upload_every_days, last):
                self.upload(group, rng, o + 1)
        for group in self.groups:
            if group.schedule != "daily" and group.due(day, config.upload_every_days, last):
                key = (SCHEDULES.index(group.schedule), 0 if group.utility == "electricity" else 1)
                g = _rng(config.seed, 3, o, *key)
                if group.schedule == "weekly":
                    self.upload(group, g, o + 1)    # the night after the Sunday
                else:                               # a few days after the month
                    lo, hi = config.monthly_upload_days
                    self.upload(group, g, o + g.integers(lo, hi + 1, self.n))
        self.complaints(rng, day)
        return kwh

    def upload(self, group: MeterReadings, rng: np.random.Generator, arrive: int | np.ndarray) -> None:
        """Deliver a group's held readings, one upload per meter, in the night of ``arrive``
        (a day, or one day per enterprise)."""
        windows = {"electricity": (3600, 6 * 3600), "water": (6 * 3600, 10 * 3600)}
        utility = group.utility
        batch = group.take()
        seconds = rng.integers(*windows[utility], self.n)
        draws = delivery_draws(self.config, rng, self.n)
        hourly = self.hourly and utility == "electricity"
        meters, usccs = self.meters[utility], self.usccs
        for k, i in enumerate(group.members.tolist()):
            t = int(seconds[i])
            day = arrive if isinstance(arrive, int) else int(arrive[i])
            build = (lambda i=i, k=k, t=t, day=day: (
                utility_event(usccs[i], utility, meters[i], batch, k, day, t, hourly), "utility"))

            def detach(i=i, k=k, t=t, day=day):   # a late or repeated upload: its own rows only
                mine = own_rows(batch, k)
                return lambda: (utility_event(usccs[i], utility, meters[i], mine, 0, day, t, hourly), "utility")

            put(self.out, self.at(day, t), build, draws, i, detach)

    def complaints(self, rng: np.random.Generator, day: date) -> None:
        """Complaints made on ``day``: a Poisson process per enterprise, plus the injected bursts."""
        plan, o = self.plan, day.toordinal()
        counts = rng.poisson(self.lv.complaints * (plan.elec_mode == 0))
        made = [(int(i), int(counts[i]), None) for i in np.flatnonzero(counts)]
        made += plan.bursts.get(day, [])
        for i, c, category in sorted(made, key=lambda x: x[0]):
            g = random.Random(f"{self.config.seed}:c:{o}:{i}:{c}")
            for _ in range(c):
                self.complaint_seq += 1
                t = g.randrange(8 * 3600, 22 * 3600)
                obj = _complaint(self.usccs[i], o, t, self.complaint_seq, category, g)
                self.out.put(self.at(o, t), lambda obj=obj: (obj, "complaint"))

    # -- one month ----------------------------------------------------------------------------------
    def month(self, first: date, month_kwh: np.ndarray) -> None:
        """The tax and social returns of the month starting ``first``, filed in the next one."""
        config, plan, n = self.config, self.plan, self.n
        period = _period(first)
        nxt = _month_add(first, 1)
        rng = _rng(config.seed, 2, first.toordinal())
        workdays = [d for d in (nxt + timedelta(days=k) for k in range(15)) if _day_info(d).workday] or [nxt]
        file_day = rng.integers(0, len(workdays), (2, n))
        file_sec = rng.integers(int(8.5 * 3600), int(17.5 * 3600), (2, n))
        sales_noise = np.exp(rng.normal(0.0, 0.04, n))
        hc_noise = rng.normal(0.0, 0.01, n)
        correct = rng.random(n) < config.correction_share
        fix = rng.uniform(0.9, 1.1, n)
        fix_days = rng.integers(5, 46, n)
        draws = delivery_draws(config, rng, n)
        fixes = _social_fixes(config, first, n)
        for e in self.city:
            i = e.index
            mode = int(plan.tax_mode[i])
            if mode != 2:
                if mode == 1:
                    sales = 0.0
                elif mode == 3:
                    sales = plan.invoices[i] * float(sales_noise[i])
                else:
                    sales = float(month_kwh[i]) * e.sales_per_kwh * float(sales_noise[i]) * \
                        plan.sales.get((i, period), 1.0)
                sales = round(sales, 2)
                day = workdays[int(file_day[0, i])].toordinal()
                t = int(file_sec[0, i])
                obj = _tax(e.uscc, f"tax-{e.uscc}-{period}", day, t, period, sales, round(sales * e.tax_rate, 2))
                put(self.out, self.at(day, t), lambda obj=obj: (obj, "tax"), draws, i)
                if correct[i] and sales > 0 and mode == 0 and (i, period) not in plan.sales:
                    fixed = round(sales * float(fix[i]), 2)
                    later = day + int(fix_days[i])
                    obj2 = _tax(e.uscc, f"tax-{e.uscc}-{period}-c1", later, t, period, fixed,
                                round(fixed * e.tax_rate, 2))
                    self.out.put(self.at(later, t), lambda obj=obj2: (obj, "tax"))
            smode = int(plan.social_mode[i])
            if smode != 2:
                hc = 0 if smode == 1 else _headcount(e, plan, first, float(hc_noise[i]), config.start)
                day = workdays[int(file_day[1, i])].toordinal()
                t = int(file_sec[1, i])
                obj = _social(e, f"soc-{e.uscc}-{period}", day, t, period, hc, float(hc_noise[i]))
                self.out.put(self.at(day, t), lambda obj=obj: (obj, "social"))
                if fixes is not None and fixes[0][i] and smode == 0 and i not in plan.headcount:
                    # a corrected return: a few staff more or fewer, filed weeks later
                    fixed = max(1, round(hc * (1 + float(fixes[1][i]))))
                    fixed = fixed if fixed != hc else hc + 1
                    later = day + int(fixes[2][i])
                    obj2 = _social(e, f"soc-{e.uscc}-{period}-c1", later, t, period, fixed, float(hc_noise[i]))
                    self.out.put(self.at(later, t), lambda obj=obj2: (obj, "social"))


def _social_fixes(config: SimulationConfig, first: date, n: int):
    """Per enterprise, for the month starting ``first``: is its social return corrected?, by
    how much (a share of its headcount, within +-6%), how many days after filing (10-40).
    Their own generator: without corrections, the other draws stay what they always were."""
    if not config.social_correction_share:
        return None
    g = _rng(config.seed, 4, first.toordinal())
    return (g.random(n) < config.social_correction_share, g.uniform(-0.06, 0.06, n), g.integers(10, 41, n))


def _social(e: Enterprise, event_id: str, ordinal: int, t: int, period: str, headcount: int, noise: float) -> dict:
    return {"kind": "social", "event_id": event_id, "uscc": e.uscc, "source": SOURCES["social"],
            "event_time": ts(ordinal, t), "schema_version": 1, "period": period, "insured_headcount": headcount,
            "contributions_cny": round(headcount * e.wage_base * (1 + noise), 2)}


def _registry(e: Enterprise, ordinal: int, t: int) -> dict:
    return {"kind": "registry", "event_id": f"reg-{e.uscc}-1", "uscc": e.uscc, "source": SOURCES["registry"],
            "event_time": ts(ordinal, t), "schema_version": 1, **e.registry_fields()}


def _headcount(e: Enterprise, plan: _Plan, first: date, noise: float, start: date) -> int:
    level = e.headcount * (1 + e.growth) ** ((first - start).days / 365.0)
    if e.regime == "factory":   # some migrant workers do not come back after the Spring Festival
        dip = random.Random(f"{e.index}:{first.year}").uniform(0, 1)
        level *= {2: 1 - 0.03 * dip, 3: 1 - 0.06 * dip, 4: 1 - 0.03 * dip}.get(first.month, 1.0)
    cut = plan.headcount.get(e.index)
    if cut is not None and _period(first) >= cut[0]:
        level *= cut[1]
    return max(1, int(round(level * (1 + noise))))


def _tax(uscc, event_id, ordinal, t, period, sales, paid) -> dict:
    return {"kind": "tax", "event_id": event_id, "uscc": uscc, "source": SOURCES["tax"],
            "event_time": ts(ordinal, t), "schema_version": 1, "period": period,
            "declared_sales_cny": sales, "tax_paid_cny": paid}


# -- complaints ---------------------------------------------------------------------------------------
_CATEGORIES = CATEGORIES  # weights below follow this order
_CATEGORY_WEIGHTS = (30, 20, 12, 12, 10, 6, 3, 2, 5)
_CHANNELS = CHANNELS
_TEXTS = {
    "product_quality": "消费者反映在该企业购买的产品使用不久即出现故障，要求退换货未果。",
    "service": "消费者反映该企业服务态度差，售后长时间无人处理。",
    "false_advertising": "消费者反映该企业宣传的功效与实际不符，涉嫌虚假宣传。",
    "price": "消费者反映该企业结算价格与标价不一致，存在价格欺诈。",
    "contract": "消费者反映该企业拒不履行合同约定，预付款无法退还。",
    "food_safety": "消费者反映在该企业购买的食品疑似变质，食用后身体不适。",
    "trademark": "消费者反映该企业销售的商品疑似假冒注册商标。",
    "unfair_competition": "举报人反映该企业涉嫌仿冒他人商品名称、包装。",
    "other": "消费者反映与该企业发生消费纠纷，请求调解。",
}


def _complaint(uscc: str, ordinal: int, t: int, seq: int, category: str | None, g: random.Random) -> dict:
    if category is None:
        category = g.choices(_CATEGORIES, _CATEGORY_WEIGHTS)[0]
    text = _TEXTS[category]
    roll = g.random()
    if roll < 0.15:   # personal data, as real complaints hold it (masked by the pipeline)
        text += f"联系电话1{g.choice('3578')}{g.randrange(10**9):09d}。"
    elif roll < 0.2:
        birth = f"19{g.randrange(70, 100)}{g.randrange(1, 13):02d}{g.randrange(1, 29):02d}"
        text += f"投诉人身份证号441900{birth}{g.randrange(1000):03d}{g.choice('0123456789X')}。"
    day = day_text(ordinal).replace("-", "")
    return {"kind": "complaint", "event_id": f"cmp-{day}-{seq:07d}", "uscc": uscc, "source": SOURCES["complaint"],
            "event_time": ts(ordinal, t), "schema_version": 1, "complaint_id": f"DG12315-{day}-{seq:07d}",
            "category": category, "channel": g.choices(_CHANNELS, (50, 25, 20, 2, 3))[0], "text": text}


# -- malformed events -----------------------------------------------------------------------------------
_BREAKS = ("check_digit", "negative_amount", "wrong_unit", "truncated_json", "nan_amount", "schema_version",
           "unknown_kind", "missing_field", "no_offset", "future_time", "bad_period", "not_an_object")


def _malformed(obj: dict, g: random.Random) -> dict | str:
    """A deliberately broken copy of ``obj``: a dict that fails validation or a raw string
    that is not a JSON object."""
    how = g.choice(_BREAKS)
    bad = dict(obj)
    bad["event_id"] = f"{obj['event_id']}-x"[:64]
    kind = obj["kind"]
    if how == "check_digit":
        u = bad["uscc"]
        bad["uscc"] = u[:17] + CHARSET[(CHARSET.index(u[17]) + 1 + g.randrange(30)) % 31]
    elif how == "negative_amount" and kind in ("utility", "tax", "social", "registry"):
        if kind == "utility":
            bad["readings"] = [dict(bad["readings"][0], amount=-abs(bad["readings"][0]["amount"]) - 1.0)]
        else:
            key = {"tax": "declared_sales_cny", "social": "contributions_cny", "registry": "registered_capital_cny"}[kind]
            bad[key] = -abs(bad[key]) - 1.0
    elif how == "wrong_unit" and kind == "utility":
        bad["unit"] = "m3" if bad["unit"] == "kWh" else "kWh"
    elif how == "truncated_json":
        text = orjson.dumps(obj).decode()
        return text[: max(10, len(text) // 2)]
    elif how == "nan_amount" and kind in ("utility", "tax"):
        key = "readings" if kind == "utility" else "declared_sales_cny"
        if kind == "utility":
            bad["readings"] = [dict(bad["readings"][0], amount="__NAN__")]
        else:
            bad[key] = "__NAN__"
        return orjson.dumps(bad).decode().replace('"__NAN__"', "NaN")
    elif how == "schema_version":
        bad["schema_version"] = 2
    elif how == "unknown_kind":
        bad["kind"] = "invoice"
    elif how == "no_offset":
        bad["event_time"] = bad["event_time"][:19]
    elif how == "future_time":
        bad["event_time"] = "2099" + bad["event_time"][4:]
    elif how == "bad_period" and kind in ("tax", "social"):
        bad["period"] = bad["period"][:5] + "13"
    elif how == "not_an_object":
        return orjson.dumps([obj["kind"], obj["uscc"]]).decode()
    else:   # missing a required field
        required = {"registry": "name", "utility": "readings", "tax": "period", "social": "period",
                    "complaint": "category"}[kind]
        del bad[required]
    return bad


# -- public API ---------------------------------------------------------------------------------------------
def city_of(config: SimulationConfig) -> list[Enterprise]:
    """The enterprises of the simulated city."""
    return build_city(config.enterprises, config.seed, config.start)


def generate(config: SimulationConfig) -> Iterator[dict | str]:
    """The city's SPEC §2 events in delivery order (dicts; a malformed one may be a str)."""
    for obj, _ in _Engine(config).events():
        yield obj


def deliveries(config: SimulationConfig) -> Iterator[tuple[datetime, dict | str, str]]:
    """``(delivered_at, event, tag)`` in delivery order: the events of ``generate`` with the
    moment (UTC+8) the department's system sends each one, for pacing a live feed; ``tag`` is
    the kind, or ``late``, ``duplicate``, ``malformed`` (a broken copy of the event before it).
    """
    engine = _Engine(config)
    midnight = datetime.combine(config.history_start, datetime.min.time(), tzinfo=_UTC8)
    clock = engine.out
    for obj, tag in engine.events():
        yield midnight + timedelta(seconds=clock.now), obj, tag


def ground_truth(config: SimulationConfig) -> list[dict]:
    """One record per injected anomaly: ``{uscc, rule, start, end, parameters}``.

    ``start`` and ``end`` are the first and last day (ISO dates) of the abnormal data.  A record
    whose parameters carry ``caused_by`` is a consequence another anomaly necessarily has
    (a zero-return shell is also a zero-return streak; a long stop or under-reporting also
    halves the declared sales): a detector may rightly flag it.
    """
    return _plan(config, city_of(config)).truth


def write_truth(config: SimulationConfig, truth_path, truth: list[dict] | None = None) -> int:
    """Write the ground truth (JSON Lines); returns the number of injected (not derived) anomalies."""
    truth = ground_truth(config) if truth is None else truth
    with Path(truth_path).open("wb") as f:
        for record in truth:
            f.write(orjson.dumps(record) + b"\n")
    return sum(1 for t in truth if "caused_by" not in t["parameters"])


def write_files(config: SimulationConfig, events_path, truth_path,
                progress: Callable[[int, int], None] | None = None) -> dict:
    """Write the events (JSON Lines, one per line; a malformed raw string as-is) and the
    ground truth (JSON Lines) and return what was written.

    ``progress(done, total)`` is called once per simulated day.
    """
    began = time.perf_counter()
    by_kind: Counter = Counter()
    tags: Counter = Counter()
    readings = 0
    events_path, truth_path = Path(events_path), Path(truth_path)
    dumps = orjson.dumps
    with events_path.open("wb") as f:
        buf: list[bytes] = []
        held = 0   # bytes in buf: a monthly hourly upload is 60 kB, so count bytes, not lines
        for obj, tag in _Engine(config).events(progress):
            tags[tag] += 1
            if isinstance(obj, str):
                line = obj.encode() + b"\n"
            else:
                if tag != "malformed":
                    by_kind[obj["kind"]] += 1
                    if obj["kind"] == "utility":
                        readings += len(obj["readings"])
                line = dumps(obj) + b"\n"
            buf.append(line)
            held += len(line)
            if held >= 1 << 20:
                f.write(b"".join(buf))
                buf.clear()
                held = 0
        f.write(b"".join(buf))
    truth = ground_truth(config)
    write_truth(config, truth_path, truth)
    return {
        "enterprises": config.enterprises,
        "events": sum(tags.values()),
        "by_kind": dict(sorted(by_kind.items())),
        "readings": readings,
        "malformed": tags["malformed"],
        "duplicates": tags["duplicate"],
        "late": tags["late"],
        "anomalies": dict(Counter(t["rule"] for t in truth if "caused_by" not in t["parameters"])),
        "derived": dict(Counter(t["rule"] for t in truth if "caused_by" in t["parameters"])),
        "bytes": events_path.stat().st_size,
        "seconds": round(time.perf_counter() - began, 2),
    }

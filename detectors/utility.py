"""One utility series (electricity, water or gas) of one enterprise, day by day.

``UtilitySeries.observe(day, amount, ...)`` is called once per closed local day, in day
order.  It scores the day against the enterprise's own seasonal baseline, feeds the
drop and spike state machines, keeps monthly totals (for the monthly rules), and learns
the day only if it looks ordinary, so a stop never teaches the baseline that a stop is
normal.

Drop (``utility_drop``): on official working days only (weekends and adjusted working days
are skipped; public holidays and the Spring Festival shutdown break a run; in the wider
Spring Festival season, from three weeks before the holiday to five weeks after it, a stop
that begins there is presumed to be the factory's own seasonal stop and judged only if it
goes on after the season; so is one within a week of the days the factory itself stopped
around last year's festival, learned from its own readings), a day is *low*
when it is below ``drop_ratio`` of expected and at least ``min_z`` robust sigmas below.
A run of ``drop_days`` low days opens the drop, but only days the peers did not share count:
each low day is recorded in the cohort, and a day on which at least ``peer_share`` of the
peers were low too is a seasonal stop, not this enterprise's own.  (A day's share is read
on the next working day, once every peer has reported it.)  Two working days back at
``drop_ratio`` or more clear it.

Spike (``utility_spike``): on ordinary days (working days and weekends; an adjusted
working day is compared with an ordinary working day), above
``spike_ratio`` of expected and ``min_z`` sigmas above (a rest day must also exceed
``spike_rest_floor`` of a working day's level, so a tiny weekend level's noise does not
count), for ``spike_days`` days in a row.  After ``spike_adapt_days`` the higher level is
the new normal: every kind of day's baseline is scaled up by the spike's ratio, which
clears it.

Learning is guarded: a day below ``learn_min_ratio`` (50%) of expected is not learned
until such days have lasted ``learn_adapt_days`` (20) ordinary days in a row, so a partial
stop that stays just above ``drop_ratio`` does not become the normal level (and the return
to work is no "spike"); and a learned day is clipped to ``learn_clip_z`` robust sigmas
around the expected level, so one odd day moves the baseline only a step, while a lasting
new level is still adopted within a few weeks.

>>> from datetime import date, timedelta
>>> from detectors.cohorts import Cohorts
>>> s, cohorts = UtilitySeries("electricity"), Cohorts()
>>> day = date(2024, 4, 8)
>>> for i in range(40):
...     d = day + timedelta(days=i)
...     s.observe(d, 1000.0 + (i % 5) * 10 if i < 35 else 50.0, None, cohorts, "e1")
>>> s.drop_start, s.spike_start
(datetime.date(2024, 5, 13), None)
"""

from __future__ import annotations

from collections import deque
from datetime import date, timedelta
from statistics import median as _median

from detectors.baseline import Resolution, SeasonalBaseline
from detectors.calendar import day_type, festival_day, in_spring_festival_season, spring_festival_window
from detectors.findings import period_of
from detectors.thresholds import DEFAULT, Thresholds

UNITS = {"electricity": "kWh", "water": "m3", "gas": "m3"}
LEARNED_MARGIN_DAYS = 7  # a stop within a week of last year's own seasonal stop is seasonal too
LEARNED_BEFORE_DAYS = 45  # ... if that stop began at most this long before the holiday
LEARNED_AFTER_DAYS = 63   # ... and ended at most this long after it (else it was a halt, not a season)
MONTHS_KEPT = 14


class UtilitySeries:
    """Baseline, drop and spike state and monthly totals of one utility of one enterprise."""

    __slots__ = ("utility", "baseline", "last_day", "months",
                 "run_unshared", "run_first", "pending", "lows", "low_days", "near_zero",
                 "drop_start", "drop_last", "drop_ok",
                 "spike_run", "spike_first", "highs", "spike_start", "spike_last", "spike_ok", "unlearned",
                 "resolution", "spell", "stops")

    def __init__(self, utility: str, t: Thresholds = DEFAULT):
        self.utility = utility
        self.baseline = SeasonalBaseline(t.baseline_work_days, t.baseline_rest_days, t.baseline_min_days)
        self.last_day: date | None = None
        self.months: dict[str, list[float]] = {}   # period -> [total, days with data, active days]
        self.run_unshared = 0
        self.run_first: date | None = None
        self.pending: date | None = None
        self.lows: deque = deque(maxlen=5)          # (amount, expected) of recent low days
        self.low_days = 0                           # low working days in the run or drop
        self.near_zero = 0
        self.drop_start: date | None = None
        self.drop_last: date | None = None
        self.drop_ok = 0
        self.spike_run = 0
        self.spike_first: date | None = None
        self.highs: deque = deque(maxlen=5)
        self.spike_start: date | None = None
        self.spike_last: date | None = None
        self.spike_ok = 0
        self.unlearned = 0                          # ordinary days in a row too low to learn
        self.resolution = Resolution()              # the meter's step, from the daily amounts
        self.spell: list[date] | None = None        # [first, last] low working day of the current stop
        self.stops: dict[int, tuple[int, int]] = {}  # festival year -> its seasonal stop, days from the holiday

    # -- the day ---------------------------------------------------------------------------
    def observe(self, day: date, amount: float | None, profile: dict | None, cohorts,
                member: str, t: Thresholds = DEFAULT) -> None:
        """Take one closed day (``amount`` None = no data that day)."""
        if self.last_day is not None and day <= self.last_day:
            return  # each day once
        self.last_day = day
        if amount is None:
            return
        self._count_month(day, amount, t)
        kind = day_type(day)
        expected = self.baseline.expected(day)
        scale = self.baseline.spread(day, t.spread_floor_ratio, self.resolution.value)
        self.resolution.observe(amount)
        if kind in ("holiday", "spring_festival"):
            if self.drop_start is None:
                self._reset_run()
            return
        drop_ratio = spike_ratio = None
        if kind == "workday" and expected:
            drop_ratio = amount / expected
            self._follow_stop(day, drop_ratio < t.drop_ratio)
            if self.drop_start is None and self._seasonal(day):
                self._reset_run()  # a stop that begins in the season is presumed seasonal
            else:
                self._drop(day, amount, expected, scale, profile, cohorts, t)
        level = self.baseline.workday_level()
        if kind == "adjusted_workday" and level:
            # a weekend day made a working day: too irregular to learn from or to call a
            # stop, but far above an ordinary working day it is part of a spike
            work = self.baseline.spread(day, t.spread_floor_ratio, self.resolution.value, "work")
            self._spike(day, amount, level, work, True, t)
        elif kind in ("workday", "weekend") and expected:
            material = kind == "workday" or not level or amount >= t.spike_rest_floor * level
            spike_ratio = amount / expected
            self._spike(day, amount, expected, scale, material, t)
        self._learn(day, amount, kind, expected, scale, drop_ratio, spike_ratio, t)

    def _count_month(self, day: date, amount: float, t: Thresholds) -> None:
        period = period_of(day)
        month = self.months.get(period)
        if month is None:
            month = self.months[period] = [0.0, 0, 0]
            for old in sorted(self.months)[:-MONTHS_KEPT]:
                del self.months[old]
        month[0] += amount
        month[1] += 1
        month[2] += amount > t.active_day_amount

    def _drop(self, day, amount, expected, scale, profile, cohorts, t: Thresholds) -> None:
        ratio = amount / expected
        low = ratio < t.drop_ratio and expected - amount >= t.min_z * scale
        cohorts.record_day(profile, self.utility, day, low)
        if self.pending is not None:  # yesterday's share is complete now
            share = cohorts.low_share(profile, self.utility, self.pending, t.peer_min_members)
            if share is None or share < t.peer_share:
                self.run_unshared += 1
                self.run_first = self.run_first or self.pending
            self.pending = None
        self.near_zero = self.near_zero + 1 if ratio < t.drop_critical_ratio else 0
        if self.drop_start is None:
            if not low:
                self._reset_run()
                return
            self.lows.append((amount, expected))
            self.low_days += 1
            if self.run_unshared + 1 >= t.drop_days:
                self.drop_start = self.run_first or day
                self.drop_last, self.drop_ok = day, 0
                self.run_unshared, self.run_first = 0, None
            else:
                self.pending = day
            return
        if ratio < t.drop_ratio:
            self.lows.append((amount, expected))
            self.low_days += 1
            self.drop_last, self.drop_ok = day, 0
        else:
            self.drop_ok += 1
            if self.drop_ok >= t.drop_clear_days:
                self.drop_start = self.drop_last = None
                self._reset_run()

    def _follow_stop(self, day: date, low: bool) -> None:
        """Follow the current stop (low working days, whatever is judged of them); one that
        lasts into the Spring Festival shutdown is remembered, in days from the holiday, as
        the factory's seasonal stop of that year (the latest year only)."""
        if low:
            self.spell = [self.spell[0] if self.spell else day, day]
            return
        if self.spell is None:
            return
        first, self.spell = self.spell[0], None
        festival = festival_day(first)
        window = spring_festival_window(festival.year) if festival else None
        if window and first <= window[1] and day > window[0]:  # it went on into the shutdown
            last = day - timedelta(days=1)  # until the day before work resumed
            start, end = (first - festival).days, (last - festival).days
            if start >= -LEARNED_BEFORE_DAYS and end <= LEARNED_AFTER_DAYS:  # not a months-long halt
                self.stops = {festival.year: (start, end)}

    def _seasonal(self, day: date) -> bool:
        """Is a stop beginning on ``day`` presumed seasonal: in the season around the
        Spring Festival (the prior), or within ``LEARNED_MARGIN_DAYS`` of the days this
        factory stopped around last year's festival (learned)?"""
        if in_spring_festival_season(day):
            return True
        if not self.stops:
            return False
        festival = festival_day(day)
        if festival is None:
            return False
        offset = (day - festival).days
        return any(year < festival.year and first - LEARNED_MARGIN_DAYS <= offset <= last + LEARNED_MARGIN_DAYS
                   for year, (first, last) in self.stops.items())

    def _reset_run(self) -> None:
        self.run_unshared, self.run_first, self.pending = 0, None, None
        self.lows.clear()
        self.low_days = 0
        self.near_zero = 0

    def _spike(self, day, amount, base, scale, material: bool, t: Thresholds) -> None:
        ratio = amount / base
        if self.spike_start is None:
            if ratio > t.spike_ratio and amount - base >= t.min_z * scale and material:
                self.spike_run += 1
                self.spike_first = self.spike_first or day
                self.highs.append((amount, base))
                if self.spike_run >= t.spike_days:
                    self.spike_start, self.spike_last, self.spike_ok = self.spike_first, day, 0
            else:
                self.spike_run, self.spike_first = 0, None
                self.highs.clear()
            return
        if ratio > t.spike_ratio:
            self.highs.append((amount, base))
            self.spike_last, self.spike_ok = day, 0
            if (day - self.spike_start).days >= t.spike_adapt_days:
                # it has lasted: the higher level is the new normal for every kind of day
                self.baseline.rescale(_median([a / b for a, b in self.highs if b > 0] or [1.0]))
                self.spike_start = self.spike_last = None
                self.spike_run, self.spike_first = 0, None
                self.highs.clear()
        else:
            self.spike_ok += 1
            if self.spike_ok >= t.spike_clear_days:
                self.spike_start = self.spike_last = None
                self.spike_run, self.spike_first = 0, None
                self.highs.clear()

    def _learn(self, day, amount, kind, expected, scale, drop_ratio, spike_ratio, t: Thresholds) -> None:
        if self.drop_start is not None or self.pending is not None:
            return
        if self.spike_start is not None or self.spike_run:
            return
        if expected is not None:
            if drop_ratio is not None and drop_ratio < t.drop_ratio:
                return
            if spike_ratio is not None and spike_ratio > t.spike_ratio:
                return
            if expected > 0 and amount < t.learn_min_ratio * expected and self.unlearned < t.learn_adapt_days:
                self.unlearned += 1   # a partial stop is not the new normal (until it lasts)
                return
            if expected > 0 and amount >= t.learn_min_ratio * expected:
                self.unlearned = 0
            # winsorised: a day far off moves the baseline only step by step (the spread is
            # floored, so a series that has been constant can still move)
            bound = t.learn_clip_z * scale
            amount = min(max(amount, expected - bound), expected + bound)
        self.baseline.learn(day, amount)

    # -- what the rules report -------------------------------------------------------------
    @property
    def unit(self) -> str:
        return UNITS.get(self.utility, "")

    def drop_summary(self) -> tuple[float, float]:
        """Mean observed and expected daily amount over the recent low days."""
        return _means(self.lows)

    def spike_summary(self) -> tuple[float, float]:
        return _means(self.highs)

    def month(self, period: str) -> tuple[float, int, int] | None:
        """(total, days with data, active days) of ``period``, or None."""
        m = self.months.get(period)
        return (m[0], int(m[1]), int(m[2])) if m else None

    def __getstate__(self):
        state = [_pack(getattr(self, name)) for name in self.__slots__]
        months = []   # flat: month index, total, days, active days, ... (no keys, no nesting)
        for period, (total, n, active) in sorted(self.months.items()):
            months += [int(period[:4]) * 12 + int(period[5:7]) - 1, total, n, active]
        state[self.__slots__.index("months")] = months
        state[self.__slots__.index("resolution")] = self.resolution.to_tuple()
        return tuple(state)

    def __setstate__(self, state):
        self.unlearned = 0   # absent from state pickled before they existed
        self.resolution = Resolution()
        self.spell, self.stops = None, {}
        for name, value in zip(self.__slots__, state):
            if name in ("lows", "highs"):
                value = deque(value, maxlen=5)
            elif name == "resolution":
                value = Resolution(state=tuple(value))
            elif name == "months" and isinstance(value, list):
                value = {f"{value[i] // 12:04d}-{value[i] % 12 + 1:02d}": list(value[i + 1:i + 4])
                         for i in range(0, len(value), 4)}
            setattr(self, name, value)


def _pack(value):
    return [tuple(x) for x in value] if isinstance(value, deque) else value


def _means(pairs) -> tuple[float, float]:
    if not pairs:
        return 0.0, 0.0
    n = len(pairs)
    return sum(a for a, _ in pairs) / n, sum(e for _, e in pairs) / n

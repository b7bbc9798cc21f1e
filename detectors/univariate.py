"""A univariate streaming anomaly detector calibrated on real series, and a decision on top.

``UnivariateDetector.update(timestamp, value) -> score`` scores each point against what the
points before it lead to expect, then learns from it.  Calibrated on the development split
of the Numenta Anomaly Benchmark (``bench/nab.py``; figures in ``docs/DETECTION.md``):

* **expected value:** the median of the last ``window`` points, or, where the series has a
  daily or weekly shape, a seasonal profile (time of day at the sampling step, at most 288
  slots a day, or day of week for a daily series) plus the current level; ``season="auto"``
  uses the profile only while it predicts clearly better.  A level shift is adopted after
  ``adapt_after`` points in a row beyond 3 spreads on one side;
* **spread:** the robust scale of recent residuals, never below a floor that knows the
  series' resolution (its smallest step between distinct values) and level
  (``detectors.baseline.spread_floor``): on a flat or coarsely quantised series a move of one
  step is not an "extreme" z;
* **score:** a tail probability, not a raw z.  Beyond 3 spreads each side has a generalised
  Pareto tail fitted to the series' own exceedances (heavy tails are learned), and a record,
  the largest deviation of recent memory, that halves every ``memory_days`` of event time (at
  least ``min_memory`` points).
  ``E``, the number of points at least this extreme that one memory span of ordinary
  behaviour holds, is the larger of the two estimates (a record is one per span), and the
  score is ``1 / (1 + E^(1/3))`` in [0, 1): 0 within 3 spreads, **0.5 at E = 1** (a new
  record of the memory span, unlikely under the fitted tail), about 0.9 at E = 1/729;
* **one alarm per episode:** after a point reaches the threshold, later points stay just
  below it until the series has been within 3 spreads for ``quiet`` points, unless they are
  at least twice as far out as the episode's worst point.

**Default threshold:** the ``threshold`` attribute, 0.5, the figure ``bench/nab.py`` reports.
Learning is winsorised (a point is learned clipped to 3 spreads; the tail learns a point
beyond the alarm level as if it were at it), so an outlier does not teach the detector that
outliers are normal.  State is bounded (two windows of 64 and 128 numbers per track, at most
288 profile slots) and picklable; the detector never reads the clock.  ``last_z`` and
``last_expected`` hold the last point's signed z and expected value.

>>> import random
>>> from datetime import datetime, timedelta, timezone
>>> rng, det = random.Random(0), UnivariateDetector()
>>> start = datetime(2024, 1, 1, tzinfo=timezone.utc)
>>> scores = [det.update(start + timedelta(minutes=5 * i), 10 + rng.gauss(0, 1)) for i in range(2016)]
>>> sum(s >= det.threshold for s in scores)             # a week of 5-minute noise: no alarm
0
>>> det.update(start + timedelta(weeks=1), 30.0) > 0.9, round(det.last_z)
(True, 20)
"""

from __future__ import annotations

import math
from collections import deque
from datetime import date, datetime, timezone
from statistics import median

from detectors.baseline import Resolution, robust_scale, spread_floor

SEASONS = ("auto", "hour_of_day", "day_of_week", "hour_of_week")
DAY = 86400.0
TAIL_START = 3.0           # spreads: where the fitted tail starts, and what counts as "not ordinary"
PRIOR_RATE = 0.00135       # P(z > 3) of a normal distribution, per side ...
PRIOR_POINTS = 500.0       # ... worth this many points
PRIOR_EXCESS = 1.0         # mean excess beyond 3 spreads (a Laplace tail; a normal one has about 0.3) ...
PRIOR_EXCEEDANCES = 3.0    # ... worth this many exceedances
MAX_SHAPE = 0.45           # heaviest tail shape fitted (a Pareto tail with index 2.2)
CLIP = 3.0                 # a point is learned clipped to 3 spreads around what was expected
REARM = 2.0                # inside an episode only a point twice as far out alarms again
SEASON_GAIN = 0.8          # "auto" uses the profile once its error is below 80 % of the level's
SEASON_CYCLES = 3          # cycles a profile slot needs before it predicts
PROFILE_CYCLES = 8         # a profile slot averages about the last 8 cycles
MAX_SLOTS = 288            # at most one profile slot per 5 minutes of the day
RESIDUALS = 128            # residuals behind the spread ...
SPREAD_REFRESH = 4         # ... recomputed every 4 points


def _as_datetime(timestamp) -> datetime:
    """A datetime from a time-zone-aware datetime, a date (its midnight, UTC) or epoch seconds."""
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None:
            raise ValueError("naive datetime: give a time-zone-aware timestamp")
        return timestamp
    if isinstance(timestamp, date):
        return datetime(timestamp.year, timestamp.month, timestamp.day, tzinfo=timezone.utc)
    return datetime.fromtimestamp(float(timestamp), timezone.utc)


class _Tail:
    """One side's tail beyond ``TAIL_START`` spreads: the exceedance rate and a generalised
    Pareto distribution of the excesses (scale and shape by the method of moments), both
    exponentially forgotten and shrunk towards a Laplace-like prior, and the decaying record
    (the largest z seen, halving every memory span)."""

    __slots__ = ("points", "exceedances", "excess", "excess2", "record")

    def __init__(self):
        self.points = self.exceedances = self.excess = self.excess2 = self.record = 0.0

    def fit(self) -> tuple[float, float, float]:
        """(exceedance rate, GPD scale, GPD shape in [0, MAX_SHAPE])."""
        n = self.exceedances + PRIOR_EXCEEDANCES
        mean = (self.excess + PRIOR_EXCESS * PRIOR_EXCEEDANCES) / n
        var = max((self.excess2 + 2 * PRIOR_EXCESS ** 2 * PRIOR_EXCEEDANCES) / n - mean * mean, 1e-12)
        shape = min(MAX_SHAPE, max(0.0, 0.5 * (1.0 - mean * mean / var)))
        rate = (self.exceedances + PRIOR_RATE * PRIOR_POINTS) / (self.points + PRIOR_POINTS)
        return rate, mean * (1.0 - shape), shape

    @staticmethod
    def _log_survival(excess: float, scale: float, shape: float) -> float:
        if shape < 1e-6:
            return -excess / scale
        return -math.log1p(shape * excess / scale) / shape

    def log_count(self, z: float, span: float) -> float:
        """log of how many points at least ``z`` spreads out ``span`` ordinary points hold: the
        larger of the fitted tail's figure and the record's (a record is one in ``span`` points)."""
        rate, scale, shape = self.fit()
        fitted = math.log(span * rate) + self._log_survival(max(0.0, z - TAIL_START), scale, shape)
        if not self.record:
            return fitted
        beyond = self._log_survival(max(0.0, z - TAIL_START), scale, shape)
        at_record = self._log_survival(max(0.0, self.record - TAIL_START), scale, shape)
        return max(fitted, beyond - at_record)

    def learn(self, z: float, keep: float, span: float) -> None:
        """Learn a point ``z`` spreads out on this side (winsorised: a point beyond the alarm
        level is learned as if it were just at it), or forget a little (``z`` = 0)."""
        rate, scale, shape = self.fit()
        self.points = self.points * keep + 1.0
        self.exceedances *= keep
        self.excess *= keep
        self.excess2 *= keep
        if z > TAIL_START:
            log_level = math.log(max(rate * span, 1.0))
            alarm = scale * log_level if shape < 1e-6 else scale / shape * math.expm1(shape * log_level)
            y = min(z - TAIL_START, alarm)
            self.exceedances += 1.0
            self.excess += y
            self.excess2 += y * y
        self.record = max(self.record * keep, z)


class _Track:
    """One way of predicting the next value: ``base + median(offsets)`` (base 0 for the
    level, the profile's value for the seasonal track), with its own residual spread, tails
    and level-shift run."""

    __slots__ = ("offsets", "residuals", "run", "spread", "since", "up", "down")

    def __init__(self, window: int):
        self.offsets: deque[float] = deque(maxlen=window)
        self.residuals: deque[float] = deque(maxlen=RESIDUALS)
        self.run: list[float] = []
        self.spread = 0.0
        self.since = 0
        self.up, self.down = _Tail(), _Tail()

    def expected(self, base: float) -> float | None:
        return base + median(self.offsets) if self.offsets else None

    def log_count(self, z: float, span: float) -> float:
        return (self.up if z > 0 else self.down).log_count(abs(z), span)

    def learn(self, residual: float, centre: float, floor: float, adapt_after: int, tails) -> None:
        """Learn one residual: the offset is learned winsorised at ``CLIP`` spreads; the tails
        learn its z when this track judged the point (``tails`` = (keep, span), else None);
        after ``adapt_after`` residuals beyond ``TAIL_START`` spreads on one side the level moves."""
        scale = max(self.spread, floor)
        z = residual / scale
        if tails is not None:
            (self.up if z > 0 else self.down).learn(abs(z), *tails)
            (self.down if z > 0 else self.up).learn(0.0, *tails)
        self.residuals.append(residual)
        self.since += 1
        if self.since >= SPREAD_REFRESH or not self.spread:
            self.spread, self.since = (robust_scale(self.residuals, 0.0) if len(self.residuals) >= 8 else 0.0), 0
        self.offsets.append(centre + max(-CLIP * scale, min(CLIP * scale, residual)))
        if abs(z) <= TAIL_START or (self.run and (self.run[-1] > 0) != (z > 0)):
            self.run = []
        if abs(z) > TAIL_START:
            self.run.append(residual)
            if len(self.run) >= adapt_after:
                shift = median(self.run)
                self.offsets = deque((v + shift for v in self.offsets), maxlen=self.offsets.maxlen)
                self.run = []


class UnivariateDetector:
    """Calibrated anomaly score for one series; see the module docstring.

    Parameters: ``season`` (``"auto"``: a daily or weekly profile where it predicts better;
    None: level only; ``"hour_of_day"``, ``"day_of_week"``, ``"hour_of_week"`` or an int
    period in points: always that profile once learned), ``memory_days`` (event time over
    which a record halves and the tail is forgotten, 7), ``min_memory`` (at least this many
    points, 512: a tail needs hundreds of points), ``window`` (points behind the level, 64), ``min_history`` (warm-up points
    scored 0, 32), ``adapt_after`` (points in a row on one side that make a new level, 6),
    ``quiet`` (ordinary points that end an episode, 12), ``threshold`` (0.5).  Timestamps are
    time-zone-aware datetimes, dates or epoch seconds; ``last_z`` and ``last_expected`` hold
    the last point's signed z and expected value.

    A weekly shape learned from daily timestamps: a Saturday at a working day's level is an
    anomaly, a Monday at it is not.

    >>> from datetime import date, timedelta
    >>> det, start = UnivariateDetector(), date(2024, 1, 1)
    >>> for i in range(10 * 7):
    ...     day = start + timedelta(days=i)
    ...     _ = det.update(day, (100.0 if day.weekday() < 5 else 10.0) + i % 3)
    >>> det.update(start + timedelta(days=70), 101.0) < 0.5, det.update(start + timedelta(days=75), 100.0) >= 0.5
    (True, True)
    """

    threshold = 0.5

    def __init__(self, season: int | str | None = "auto", memory_days: float = 7.0, min_memory: int = 512,
                 window: int = 64, min_history: int = 32, adapt_after: int = 6, quiet: int = 12,
                 threshold: float = 0.5):
        if isinstance(season, str) and season not in SEASONS:
            raise ValueError(f"season must be None, an int period or one of {', '.join(SEASONS)}")
        if isinstance(season, int) and season < 2:
            raise ValueError("an int season is a period of at least 2 points")
        self.season = season
        self.memory_days, self.min_memory = memory_days, min_memory
        self.min_history, self.adapt_after, self.quiet = min_history, adapt_after, quiet
        self.threshold = threshold
        self.level, self.seasonal = _Track(window), _Track(window)
        self.profile: dict[int, list] = {}       # slot -> [mean, cycles learned, last cycle]
        self.error = [0.0, 0.0, 0]                # mean |residual| of level and profile, points
        self.gaps: list[float] = []
        self.step: float | None = None            # sampling step (s), from the first gaps
        self.last_time: float | None = None
        self.resolution = Resolution(distinct=2)  # the series' smallest step
        self.points = 0
        self.peak = 0.0                           # |z| of the current episode's worst alarm
        self.calm = 0
        self.last_z = 0.0
        self.last_expected: float | None = None

    # -- time ---------------------------------------------------------------------------------
    def _clock(self, timestamp) -> datetime:
        moment = _as_datetime(timestamp)
        seconds = moment.timestamp()
        if self.step is None and self.last_time is not None and seconds > self.last_time:
            self.gaps.append(seconds - self.last_time)
            if len(self.gaps) >= 15:
                self.step, self.gaps = median(self.gaps), []
        self.last_time = seconds
        return moment

    @property
    def memory(self) -> float:
        """Points in one memory span: ``memory_days`` of event time, at least ``min_memory``."""
        return max(float(self.min_memory), self.memory_days * DAY / self.step) if self.step else float(self.min_memory)

    def _slot(self, moment: datetime) -> tuple[int, int] | None:
        """(profile slot, cycle number) of a point, or None while the season is unknown."""
        season = self.season
        if isinstance(season, int):
            return self.points % season, self.points // season
        if season is None or self.step is None:
            return None
        day = moment.toordinal()
        if season == "auto":
            season = "day_of_week" if self.step >= DAY / 2 else None
            if season is None:
                width = max(self.step, DAY / MAX_SLOTS)
                return int((moment.hour * 3600 + moment.minute * 60 + moment.second) // width), day
        if season == "hour_of_day":
            return moment.hour, day
        if season == "day_of_week":
            return moment.weekday(), day // 7
        return moment.weekday() * 24 + moment.hour, day // 7

    @property
    def _compared(self) -> int:
        """Points both tracks must have predicted before "auto" picks one: 32, or two weeks of
        a daily series."""
        return 14 if self.step and self.step >= DAY / 2 else 32

    # -- scoring ------------------------------------------------------------------------------
    def update(self, timestamp, value: float) -> float:
        """Score ``value`` (observed at ``timestamp``), then learn from it."""
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"value must be a finite number, not {value!r}")
        moment = self._clock(timestamp)
        slot = self._slot(moment)
        self.points += 1
        profile = self.profile.get(slot[0]) if slot else None
        at_level = self.level.expected(0.0)
        seasonal = None
        if profile is not None and profile[1] >= SEASON_CYCLES:
            seasonal = self.seasonal.expected(profile[0])
        if at_level is None:
            self.resolution.observe(value)
            self.level.offsets.append(value)
            self._learn_profile(slot, value)
            self.last_z, self.last_expected = 0.0, value
            return 0.0
        use_season = seasonal is not None and (self.season != "auto" or (
            self.error[2] >= self._compared and self.error[1] < SEASON_GAIN * self.error[0]))
        track, expected = (self.seasonal, seasonal) if use_season else (self.level, at_level)
        floor = spread_floor(expected, self.resolution.value)
        scale = max(track.spread, floor)
        residual = value - expected
        z = residual / scale
        warm = self.points > self.min_history
        score = self._score(z, track) if warm else 0.0
        if score >= self.threshold and self.peak and abs(z) < REARM * self.peak:
            score = math.nextafter(self.threshold, 0.0)   # the same episode: not news
        self.last_z, self.last_expected = (z if warm else 0.0), expected
        self._learn(value, z, warm, score, slot, profile, at_level, seasonal, floor, use_season)
        return score

    def _score(self, z: float, track: _Track) -> float:
        """``1 / (1 + E^(1/3))`` for a point more than ``TAIL_START`` spreads out, where ``E``
        is how many points that extreme one memory span of ordinary behaviour holds; else 0."""
        if abs(z) <= TAIL_START:
            return 0.0
        return 1.0 / (1.0 + math.exp(max(-30.0, min(30.0, track.log_count(z, self.memory) / 3.0))))

    # -- learning -----------------------------------------------------------------------------
    def _learn(self, value, z, warm, score, slot, profile, at_level, seasonal, floor, use_season) -> None:
        self.resolution.observe(value)
        span = self.memory
        tails = (0.5 ** (1.0 / span), span) if warm else None
        if warm and abs(z) > TAIL_START:
            self.calm = 0
        else:
            self.calm += 1
            if self.calm >= self.quiet:
                self.peak = 0.0
        if score >= self.threshold:
            self.peak = max(self.peak, abs(z))
        self.level.learn(value - at_level, at_level, floor, self.adapt_after, None if use_season else tails)
        if seasonal is not None:
            n = self.error[2] = self.error[2] + 1
            rate = max(0.005, 1.0 / n)
            for i, miss in enumerate((abs(value - at_level), abs(value - seasonal))):
                self.error[i] += rate * (min(miss, 10 * max(self.error[i], floor)) - self.error[i])
            self.seasonal.learn(value - seasonal, seasonal - profile[0], floor, self.adapt_after,
                                tails if use_season else None)
        elif profile is not None:
            self.seasonal.offsets.append(value - profile[0])
        offset = median(self.seasonal.offsets) if self.seasonal.offsets else 0.0
        target = value - offset
        if seasonal is not None:
            bound = CLIP * max(self.seasonal.spread, floor)
            target = max(profile[0] - bound, min(profile[0] + bound, target))
        self._learn_profile(slot, target)

    def _learn_profile(self, slot, value: float) -> None:
        """Learn a slot's value once per cycle (about the last ``PROFILE_CYCLES`` cycles)."""
        if slot is None:
            return
        key, cycle = slot
        entry = self.profile.get(key)
        if entry is None:
            self.profile[key] = [value, 1, cycle]
        elif entry[2] != cycle:
            entry[1] += 1
            entry[2] = cycle
            entry[0] += max(1.0 / entry[1], 1.0 / PROFILE_CYCLES) * (value - entry[0])


class ThresholdFilter:
    """The decision on top of a detector: is this point an anomaly?  The threshold is the
    detector's own (``detector.threshold``) unless given.

    >>> flag = ThresholdFilter(UnivariateDetector(min_history=3))
    >>> [flag.update(t, v) for t, v in enumerate([5, 5.2, 4.9, 5.1, 5.0, 50])]
    [False, False, False, False, False, True]
    >>> round(flag.score, 6)
    1.0
    """

    def __init__(self, detector, threshold: float | None = None):
        self.detector = detector
        self.threshold = detector.threshold if threshold is None else threshold
        self.score = 0.0

    def update(self, timestamp, value: float) -> bool:
        self.score = self.detector.update(timestamp, value)
        return self.score >= self.threshold

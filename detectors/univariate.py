"""A univariate streaming anomaly detector usable on any series, and a decision on top.

``UnivariateDetector.update(timestamp, value) -> score`` scores each new point against a
robust baseline learned from the points before it, then learns from it:

* expected value: the median of a bounded recent window; with ``season`` set, the median
  of the same phase (hour of day, day of week, hour of week, or every *n*-th step) over the
  last ``cycles`` cycles;
* spread: a robust scale (MAD, or mean absolute deviation when the MAD is zero) of recent
  residuals; ``z = (value - expected) / spread``;
* learning is winsorised (a point is learned clipped to ``expected ± clip_z·spread``), so
  one outlier does not move the baseline, and after ``adapt_after`` consecutive outliers on
  the same side the baseline jumps to the new level (a level shift is flagged at its start,
  then adopted instead of being flagged forever).

**Score range:** ``score = |z| / (|z| + z_ref)`` in ``[0, 1)``: 0 is exactly as expected,
0.5 is a robust z of ``z_ref`` (3.5 by default, the Iglewicz–Hoaglin cut-off), and it
approaches 1 for extreme points.  It is 0 during the warm-up (``min_history`` points).
**Default threshold:** 0.5 (``ThresholdFilter``).  The signed ``z`` and the ``expected``
value of the last point are kept in ``last_z`` and ``last_expected``.

>>> import random
>>> rng = random.Random(0)
>>> det = UnivariateDetector()
>>> scores = [det.update(t, 10 + rng.gauss(0, 1)) for t in range(200)]
>>> max(scores) < 0.5
True
>>> round(det.update(200, 30.0), 2), round(det.last_z, 1)
(0.86, 21.0)
"""

from __future__ import annotations

from collections import deque
from datetime import date, datetime, timezone
from statistics import median as _median

from detectors.baseline import robust_scale

SEASONS = ("hour_of_day", "day_of_week", "hour_of_week")


def _as_datetime(timestamp) -> datetime:
    if isinstance(timestamp, datetime):
        return timestamp
    if isinstance(timestamp, date):
        return datetime(timestamp.year, timestamp.month, timestamp.day)
    return datetime.fromtimestamp(float(timestamp), timezone.utc)


class UnivariateDetector:
    """Robust, optionally seasonal, self-adapting anomaly score for one series.

    Parameters: ``window`` (recent points for level and spread, default 64), ``season``
    (None, an int period in steps, or one of ``"hour_of_day"``, ``"day_of_week"``,
    ``"hour_of_week"`` read from the timestamp; numeric timestamps are epoch seconds),
    ``cycles`` (cycles remembered per phase, 8), ``min_history`` (warm-up points, 16),
    ``z_ref`` (robust z that maps to score 0.5), ``clip_z`` (winsorising bound, 3.0),
    ``adapt_after`` (consecutive same-side outliers that count as a new level, 6).

    Seasonal example: a daily cycle (period 24) and a point that is normal for the series
    but not for its hour.

    >>> import math
    >>> det = UnivariateDetector(season=24)
    >>> for t in range(24 * 10):
    ...     _ = det.update(t, 100 + 50 * math.sin(2 * math.pi * t / 24) + (t % 3))
    >>> det.update(240, 100.0) < 0.2, det.update(246, 100.0) > 0.5  # 06:00 should be ~150
    (True, True)
    """

    def __init__(self, window: int = 64, season: int | str | None = None, cycles: int = 8,
                 min_history: int = 16, z_ref: float = 3.5, clip_z: float = 3.0,
                 adapt_after: int = 6):
        if isinstance(season, str) and season not in SEASONS:
            raise ValueError(f"season must be an int period or one of {', '.join(SEASONS)}")
        self.window = window
        self.season = season
        self.cycles = cycles
        self.min_history = min_history
        self.z_ref = z_ref
        self.clip_z = clip_z
        self.adapt_after = adapt_after
        self.level: deque[float] = deque(maxlen=window)
        self.residuals: deque[float] = deque(maxlen=window)
        self.phases: dict[object, deque[float]] = {}
        self.run: list[float] = []          # residuals of the current same-side outlier run
        self.steps = 0
        self.last_z = 0.0
        self.last_expected: float | None = None

    def _phase(self, timestamp):
        if self.season is None:
            return None
        if isinstance(self.season, int):
            return self.steps % self.season
        ts = _as_datetime(timestamp)
        if self.season == "hour_of_day":
            return ts.hour
        if self.season == "day_of_week":
            return ts.weekday()
        return ts.weekday() * 24 + ts.hour

    def _expected(self, phase) -> float | None:
        if phase is not None:
            values = self.phases.get(phase)
            if values and len(values) >= min(3, self.cycles):
                return _median(values)
        return _median(self.level) if self.level else None

    def update(self, timestamp, value: float) -> float:
        """Score ``value`` (observed at ``timestamp``) and learn from it; see the module
        docstring for the score range."""
        value = float(value)
        phase = self._phase(timestamp)
        expected = self._expected(phase)
        self.steps += 1
        if expected is None:
            self._learn(phase, value, None)
            self.last_z, self.last_expected = 0.0, value
            return 0.0
        scale = robust_scale(self.residuals, 0.0) if self.residuals else 0.0
        scale = max(scale, 1e-3 * abs(expected), 1e-9)
        residual = value - expected
        z = residual / scale
        warm = len(self.residuals) >= self.min_history
        self.last_z, self.last_expected = (z if warm else 0.0), expected
        if warm and abs(z) > self.z_ref:
            if self.run and (self.run[-1] > 0) != (residual > 0):
                self.run = []
            self.run.append(residual)
        else:
            self.run = []
        bound = self.clip_z * scale
        self._learn(phase, expected + max(-bound, min(bound, residual)), max(-bound, min(bound, residual)))
        if len(self.run) >= self.adapt_after:
            self._shift(_median(self.run))
        if not warm:
            return 0.0
        return abs(z) / (abs(z) + self.z_ref)

    def _learn(self, phase, value: float, residual: float | None) -> None:
        self.level.append(value)
        if residual is not None:
            self.residuals.append(residual)
        if phase is not None:
            self.phases.setdefault(phase, deque(maxlen=self.cycles)).append(value)

    def _shift(self, offset: float) -> None:
        """Adopt a new level: move every remembered value by ``offset``."""
        self.level = deque((v + offset for v in self.level), maxlen=self.window)
        for phase, values in self.phases.items():
            self.phases[phase] = deque((v + offset for v in values), maxlen=self.cycles)
        self.run = []


class ThresholdFilter:
    """The decision on top of a detector: is this point an anomaly?

    >>> flag = ThresholdFilter(UnivariateDetector(min_history=3))
    >>> [flag.update(t, v) for t, v in enumerate([5, 5.2, 4.9, 5.1, 5.0, 50])]
    [False, False, False, False, False, True]
    >>> round(flag.score, 2)
    1.0
    """

    def __init__(self, detector: UnivariateDetector, threshold: float = 0.5):
        self.detector = detector
        self.threshold = threshold
        self.score = 0.0

    def update(self, timestamp, value: float) -> bool:
        self.score = self.detector.update(timestamp, value)
        return self.score > self.threshold

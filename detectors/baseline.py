"""Robust baselines: what a value is expected to be, from a bounded recent history.

``RobustWindow`` keeps the last *n* values and answers median and a robust scale (MAD,
falling back to the mean absolute deviation when more than half the values are equal).
``SeasonalBaseline`` keeps one window per kind of day (working days, Saturdays, Sundays)
and learns only from ordinary days: public holidays, adjusted working days and the Spring
Festival shutdown are skipped, so they never pull the expected level down.

>>> w = RobustWindow(5)
>>> for v in [10, 12, 11, 100, 9]:
...     w.push(v)
>>> w.median(), round(w.scale(), 2)
(11.0, 1.48)
"""

from __future__ import annotations

from collections import deque
from datetime import date
from statistics import median as _median

from detectors.calendar import day_type

MAD_TO_SIGMA = 1.4826   # MAD of a normal sample times this estimates its standard deviation
MEAN_AD_TO_SIGMA = 1.2533


def robust_scale(values, center: float | None = None) -> float:
    """A robust estimate of the spread of ``values`` (in standard-deviation units).

    MAD × 1.4826, or, when the MAD is zero (more than half the values equal), the mean
    absolute deviation × 1.2533, so a mostly-constant series still has a usable scale.

    >>> robust_scale([5, 5, 5, 5, 9])
    1.00264
    """
    values = list(values)
    if not values:
        return 0.0
    c = _median(values) if center is None else center
    deviations = [abs(v - c) for v in values]
    mad = _median(deviations)
    if mad > 0:
        return MAD_TO_SIGMA * mad
    return MEAN_AD_TO_SIGMA * sum(deviations) / len(deviations)


def spread_floor(level: float, resolution: float = 0.0, relative: float = 0.001) -> float:
    """The smallest spread worth believing for a series near ``level`` whose smallest step
    between distinct values is ``resolution``: one step, or ``relative`` of the level,
    whichever is larger (and never 0).  A robust scale can be 0 or tiny on real series (a shut
    plant reading 0 for weeks, a meter that reports whole cubic metres, a series with a few
    repeated values); dividing by it makes every small move "extreme".

    >>> spread_floor(50.0, resolution=1.0), spread_floor(2000.0, relative=0.05), spread_floor(0.0)
    (1.0, 100.0, 1e-09)
    """
    return max(resolution, relative * abs(level), 1e-9)


class Resolution:
    """The resolution of a series: the smallest step between consecutive distinct values, once
    the series has shown ``distinct`` different values (3 by default: a meter that moved once
    from one level to another has a step, not a resolution, and must still be able to show a
    stop; the general detector takes 2, so an on/off series moves in steps of its two levels).
    A meter that reports whole cubic metres has resolution 1.  Bounded state, picklable (also
    as ``to_tuple()``).

    >>> r = Resolution()
    >>> for value in [2000, 2000, 30]:
    ...     r.observe(value)
    >>> r.value
    0.0
    >>> for value in [3, 5, 4, 6]:
    ...     r.observe(value)
    >>> r.value
    1
    """

    __slots__ = ("previous", "step", "pending")

    def __init__(self, distinct: int = 3, state: tuple | None = None):
        # pending: (distinct values needed, values seen so far ...), None once known
        self.previous, self.step, self.pending = state or (None, 0.0, (distinct,))

    @property
    def value(self) -> float:
        return self.step if self.pending is None else 0.0

    def observe(self, value: float) -> None:
        pending = self.pending
        if pending is not None and value not in pending[1:]:
            self.pending = None if len(pending) >= pending[0] else pending + (value,)
        if self.previous is not None and value != self.previous:
            step = abs(value - self.previous)
            self.step = step if not self.step else min(self.step, step)
        self.previous = value

    def to_tuple(self) -> tuple:
        return self.previous, self.step, self.pending


class RobustWindow:
    """The last ``size`` values of a series, with median and robust scale.

    Bounded state (a ``deque`` with ``maxlen``), picklable, no clock.

    >>> w = RobustWindow(3)
    >>> for v in [1.0, 2.0, 3.0, 4.0]:
    ...     w.push(v)
    >>> list(w.values), len(w)
    ([2.0, 3.0, 4.0], 3)
    """

    __slots__ = ("values",)

    def __init__(self, size: int):
        self.values: deque[float] = deque(maxlen=size)

    def push(self, value: float) -> None:
        self.values.append(float(value))

    def __len__(self) -> int:
        return len(self.values)

    def median(self) -> float | None:
        return _median(self.values) if self.values else None

    def scale(self) -> float:
        return robust_scale(self.values)

    def spread(self, relative: float, resolution: float = 0.0) -> float:
        """The robust scale, floored by ``spread_floor`` at the median (0 while empty).

        >>> w = RobustWindow(8)
        >>> for v in [2, 2, 2, 1, 3, 2, 2, 2]:     # whole units: MAD 0, mean deviation 0.31
        ...     w.push(v)
        >>> round(w.scale(), 2), w.spread(relative=0.05, resolution=1.0)
        (0.31, 1.0)
        """
        if not self.values:
            return 0.0
        return max(self.scale(), spread_floor(self.median(), resolution, relative))

    def shift(self, offset: float) -> None:
        """Add ``offset`` to every value (re-centre after a confirmed level shift)."""
        self.values = deque((v + offset for v in self.values), maxlen=self.values.maxlen)

    def __getstate__(self):
        return (self.values.maxlen, list(self.values))

    def __setstate__(self, state):
        size, values = state
        self.values = deque(values, maxlen=size)


def day_class(day: date) -> str | None:
    """The baseline class of a day: ``work``, ``sat``, ``sun``, or None for a day no
    baseline learns from (public holiday, adjusted working day, Spring Festival shutdown).

    >>> day_class(date(2024, 4, 8)), day_class(date(2024, 4, 13)), day_class(date(2024, 2, 12))
    ('work', 'sat', None)
    """
    kind = day_type(day)
    if kind == "workday":
        return "work"
    if kind == "weekend":
        return "sat" if day.weekday() == 5 else "sun"
    return None


class SeasonalBaseline:
    """Expected daily level of one series by kind of day, from a bounded recent window.

    ``expected(day)`` is the median of the recent values of the same class (working day,
    Saturday, Sunday) once that class has ``min_history`` values, else None (still
    learning).  ``learn(day, value)`` adds a value if the day is an ordinary day.

    >>> from datetime import timedelta
    >>> b = SeasonalBaseline(work_size=10, rest_size=4, min_history=3)
    >>> start = date(2024, 4, 8)                       # a Monday
    >>> for i in range(21):
    ...     d = start + timedelta(days=i)
    ...     _ = b.learn(d, 100.0 if d.weekday() < 5 else 20.0)
    >>> b.expected(date(2024, 4, 24)), b.expected(date(2024, 4, 27)), b.expected(date(2024, 2, 12))
    (100.0, 20.0, None)
    """

    __slots__ = ("windows", "min_history")

    def __init__(self, work_size: int = 20, rest_size: int = 6, min_history: int = 8):
        self.windows = {"work": RobustWindow(work_size), "sat": RobustWindow(rest_size),
                        "sun": RobustWindow(rest_size)}
        self.min_history = min_history

    def learn(self, day: date, value: float) -> bool:
        """Add ``value`` for ``day`` if the day is ordinary; True if it was learned."""
        cls = day_class(day)
        if cls is None:
            return False
        self.windows[cls].push(value)
        return True

    def ready(self, cls: str = "work") -> bool:
        return len(self.windows[cls]) >= (self.min_history if cls == "work" else min(3, self.min_history))

    def expected(self, day: date) -> float | None:
        """Expected value on ``day``, or None (holiday, shutdown, or not enough history)."""
        cls = day_class(day)
        if cls is None or not self.ready(cls):
            return None
        return self.windows[cls].median()

    def scale(self, day: date) -> float:
        """Robust spread of the values of ``day``'s class (0 while unknown)."""
        cls = day_class(day)
        return self.windows[cls].scale() if cls is not None else 0.0

    def spread(self, day: date, relative: float, resolution: float = 0.0, cls: str | None = None) -> float:
        """The spread the rules divide by: the robust scale of ``day``'s class (or of ``cls``),
        at least ``relative`` of its level and one step of the series' ``resolution``
        (``RobustWindow.spread``); 0 while unknown."""
        cls = cls or day_class(day)
        return self.windows[cls].spread(relative, resolution) if cls is not None else 0.0

    def workday_level(self) -> float | None:
        """The median working-day level (None while learning)."""
        return self.windows["work"].median() if self.ready("work") else None

    def rescale(self, factor: float) -> None:
        """Multiply every remembered value by ``factor`` (adopt a new level on every kind of
        day at once)."""
        for window in self.windows.values():
            window.values = deque((v * factor for v in window.values), maxlen=window.values.maxlen)

    def reset_to(self, values_by_class: dict[str, list[float]]) -> None:
        """Replace the history of the given classes (accept a new level)."""
        for cls, values in values_by_class.items():
            window = self.windows[cls]
            window.values.clear()
            for v in values:
                window.push(v)

    def __getstate__(self):
        return (self.min_history, {k: w.__getstate__() for k, w in self.windows.items()})

    def __setstate__(self, state):
        self.min_history, windows = state
        self.windows = {}
        for k, s in windows.items():
            w = RobustWindow.__new__(RobustWindow)
            w.__setstate__(s)
            self.windows[k] = w

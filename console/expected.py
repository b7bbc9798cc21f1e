"""The enterprise chart's expected level and band, from the stored daily series, computed by
the utility rules' own code (``detectors.utility.UtilitySeries``, ``detectors.baseline``).

The stored days are replayed, oldest first, through a fresh ``UtilitySeries``; before each
day is observed, its expected level is read as the rules read it (the seasonal baseline of
the day's kind: working day, Saturday, Sunday) with the spread they divide by.  The band is
where the rules see nothing: a working day below it is *low* for ``utility_drop`` (under
``drop_ratio`` of expected and ``min_z`` spreads below), a day above it *high* for
``utility_spike`` (over ``spike_ratio`` of expected and ``min_z`` spreads above).  Holidays,
the Spring Festival shutdown and the first weeks (still learning) have no expected level.

The replay sees no peers (the worker's cohorts are not stored): around a stop that the
enterprise's peers shared, which the worker does not call a drop, the baseline may learn a
little differently from the worker's.

>>> from datetime import date, timedelta
>>> days = [(date(2024, 4, 1) + timedelta(days=i), 100.0 + i % 3) for i in range(40)]
>>> points = expected_band("electricity", days)
>>> points[0]
(datetime.date(2024, 4, 1), None, None, None)
>>> day, level, low, high = points[-1]
>>> day, level, low, high
(datetime.date(2024, 5, 10), 101.0, 30.3, 303.0)
"""

from __future__ import annotations

from datetime import date

from detectors.cohorts import Cohorts
from detectors.thresholds import DEFAULT, Thresholds
from detectors.utility import UtilitySeries


def expected_band(utility: str, days: list[tuple[date, float]], t: Thresholds = DEFAULT
                  ) -> list[tuple[date, float | None, float | None, float | None]]:
    """``(day, expected, band low, band high)`` for each stored ``(day, amount)`` (in any order;
    rounded to 0.01; None where the rules have no expected level)."""
    series, cohorts = UtilitySeries(utility, t), Cohorts()
    out = []
    for day, amount in sorted(days):
        level = series.baseline.expected(day)
        if level is None:
            out.append((day, None, None, None))
        else:
            spread = series.baseline.spread(day, t.spread_floor_ratio, series.resolution.value)
            low = min(t.drop_ratio * level, level - t.min_z * spread)
            high = max(t.spike_ratio * level, level + t.min_z * spread)
            out.append((day, round(level, 2), round(max(low, 0.0), 2), round(high, 2)))
        series.observe(day, amount, None, cohorts, "console")
    return out

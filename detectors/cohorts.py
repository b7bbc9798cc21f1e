"""Peer cohorts: how comparable enterprises behave, maintained incrementally.

A cohort is industry × town, falling back to the industry (GB/T 4754 division, e.g.
``C39``), then its section (``C``), then all enterprises, whichever is the most specific
level with enough members.  One ``Cohorts`` object lives per worker and is shared by the
enterprises it serves.

Memory is bounded: per cohort and metric, the latest value of at most ``max_members``
enterprises (the ones updated most recently), and per cohort and utility the share of
members whose consumption was far below their own baseline on each of the last
``day_memory`` days (to tell a stop that the peers share from one that is the
enterprise's own).

>>> c = Cohorts(min_members=3)
>>> profile = {"industry": "C39", "town": "Chang'an"}
>>> for i, v in enumerate([1.0, 1.2, 0.9, 1.1, 5.0]):
...     c.observe(profile, "log_sales_per_kwh", f"e{i}", v)
>>> view = c.stats(profile, "log_sales_per_kwh", exclude="e4")
>>> view.level, view.members, round(view.median, 2), round(view.scale, 3)
('industry_town', 4, 1.05, 0.148)
>>> round(view.z(5.0), 1)
26.6
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from statistics import median as _median

from detectors.baseline import robust_scale

LEVELS = ("industry_town", "industry", "section", "all")


def cohort_keys(profile: dict | None) -> list[tuple[str, tuple]]:
    """The cohort keys of an enterprise, most specific first.

    >>> cohort_keys({"industry": "C39", "town": "Humen"})
    [('industry_town', ('C39', 'Humen')), ('industry', ('C39',)), ('section', ('C',)), ('all', ())]
    """
    profile = profile or {}
    industry, town = profile.get("industry"), profile.get("town")
    keys: list[tuple[str, tuple]] = []
    if industry and town:
        keys.append(("industry_town", (industry, town)))
    if industry:
        keys.append(("industry", (industry,)))
        if len(industry) > 1:
            keys.append(("section", (industry[0],)))
    keys.append(("all", ()))
    return keys


@dataclass(frozen=True)
class CohortView:
    """Robust statistics of one metric in one cohort."""

    level: str
    key: tuple
    members: int
    median: float
    scale: float
    mean: float

    def z(self, value: float, min_scale: float = 1e-9) -> float:
        """Robust z of ``value`` against the cohort (positive = above the peers)."""
        return (value - self.median) / max(self.scale, min_scale)

    def describe(self) -> str:
        return "/".join(self.key) if self.key else "all"


class Cohorts:
    """Latest value per member for any metric, per cohort, with bounded memory."""

    def __init__(self, max_members: int = 128, min_members: int = 20, day_memory: int = 14):
        self.max_members = max_members
        self.min_members = min_members
        self.day_memory = day_memory
        self._values: dict[tuple, OrderedDict] = {}
        self._days: dict[tuple, dict[tuple[str, date], list[int]]] = {}

    # -- values (sales per kWh, complaint counts, ...) --------------------------------
    def observe(self, profile: dict | None, metric: str, member: str, value: float,
                tag: str | None = None) -> None:
        """Record ``member``'s latest ``value`` of ``metric`` in each of its cohorts.

        ``tag`` (e.g. a period ``2024-05``) lets ``stats`` compare only values that share it."""
        for level, key in cohort_keys(profile):
            book = self._values.setdefault((metric, level, key), OrderedDict())
            book[member] = (float(value), tag)
            book.move_to_end(member)
            while len(book) > self.max_members:
                book.popitem(last=False)

    def forget(self, profile: dict | None, metric: str, member: str) -> None:
        """Drop ``member``'s value of ``metric`` (e.g. it turned out anomalous)."""
        for level, key in cohort_keys(profile):
            book = self._values.get((metric, level, key))
            if book is not None:
                book.pop(member, None)

    def stats(self, profile: dict | None, metric: str, exclude: str | None = None,
              min_members: int | None = None, tag: str | None = None,
              levels: tuple[str, ...] = LEVELS) -> CohortView | None:
        """Statistics at the most specific cohort level with enough members (``exclude``
        leaves one member, usually the enterprise being judged, out; ``tag`` keeps only
        values recorded with that tag; ``levels`` restricts the fall-backs, e.g. to
        ``("industry_town", "industry")`` for a metric that is not comparable across
        industries); None if no level has enough."""
        need = self.min_members if min_members is None else min_members
        for level, key in cohort_keys(profile):
            if level not in levels:
                continue
            book = self._values.get((metric, level, key))
            if not book:
                continue
            values = [v for m, (v, t) in book.items() if m != exclude and (tag is None or t == tag)]
            if len(values) >= need:
                center = _median(values)
                return CohortView(level, key, len(values), center, robust_scale(values, center),
                                  sum(values) / len(values))
        return None

    # -- shared stops --------------------------------------------------------------------
    def record_day(self, profile: dict | None, utility: str, day: date, low: bool) -> None:
        """Count one member's verdict for ``day``: was its consumption far below its own
        baseline?"""
        for level, key in cohort_keys(profile):
            book = self._days.setdefault((level, key), {})
            counts = book.get((utility, day))
            if counts is None:
                counts = book[(utility, day)] = [0, 0]
                if len(book) > self.day_memory * 3:
                    newest = max(d for _, d in book)
                    for old in [k for k in book if (newest - k[1]).days >= self.day_memory]:
                        del book[old]
            counts[0] += bool(low)
            counts[1] += 1

    def low_share(self, profile: dict | None, utility: str, day: date,
                  min_members: int = 10) -> float | None:
        """Share of the peers that were far below their baseline on ``day`` (most specific
        level with at least ``min_members`` verdicts), or None if unknown."""
        for level, key in cohort_keys(profile):
            counts = self._days.get((level, key), {}).get((utility, day))
            if counts and counts[1] >= min_members:
                return counts[0] / counts[1]
        return None

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

City-wide, the statistics a verdict reads do not depend on which enterprises share its
partition: a partition's detectors write what they contribute on the day being closed into
a ``CohortDelta``, and read the city's ``Cohorts`` as every partition's deltas left it at the
end of the day before (``CohortWindow``; merged by ``detectors.citywide.CityCohorts``).

>>> city, delta = Cohorts(min_members=1), CohortDelta()
>>> window = CohortWindow(city, delta)
>>> window.observe(profile, "m", "e1", 2.0)
>>> window.stats(profile, "m") is None           # today's values are not visible today
True
>>> city.apply(delta)                            # the day is folded into the city's cohorts
>>> window.stats(profile, "m").median
2.0
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

    def __init__(self, max_members: int = 128, min_members: int = 20, day_memory: int = 45):
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
            self._put((metric, level, key), member, (float(value), tag))

    def _put(self, book_key: tuple, member: str, entry: tuple | None) -> None:
        if entry is None:
            book = self._values.get(book_key)
            if book is not None:
                book.pop(member, None)
            return
        book = self._values.setdefault(book_key, OrderedDict())
        book[member] = entry
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
            self._count((level, key), utility, day, int(bool(low)), 1)

    def _count(self, cohort: tuple, utility: str, day: date, low: int, total: int) -> None:
        book = self._days.setdefault(cohort, {})
        counts = book.get((utility, day))
        if counts is None:
            counts = book[(utility, day)] = [0, 0]
            if len(book) > self.day_memory * 3:
                newest = max(d for _, d in book)
                for old in [k for k in book if (newest - k[1]).days >= self.day_memory]:
                    del book[old]
        counts[0] += low
        counts[1] += total

    def low_share(self, profile: dict | None, utility: str, day: date,
                  min_members: int = 10) -> float | None:
        """Share of the peers that were far below their baseline on ``day`` (most specific
        level with at least ``min_members`` verdicts), or None if unknown."""
        for level, key in cohort_keys(profile):
            counts = self._days.get((level, key), {}).get((utility, day))
            if counts and counts[1] >= min_members:
                return counts[0] / counts[1]
        return None

    # -- city-wide: one day's contributions at a time -------------------------------------
    def apply(self, delta: "CohortDelta") -> None:
        """Fold one day's contributions (of one partition, or of all of them merged) in, in
        a fixed order (by metric, cohort and member), so the bounded member lists are the
        same however the contributions were split between partitions."""
        for (metric, level, key, member), entry in sorted(delta.values.items(), key=_value_order):
            self._put((metric, level, key), member, entry)
        for (level, key, utility, ordinal), (low, total) in sorted(delta.days.items(), key=_day_order):
            self._count((level, key), utility, date.fromordinal(ordinal), low, total)


def _value_order(item) -> tuple:
    (metric, level, key, member), _ = item
    return (metric, level, tuple(map(str, key)), member)


def _day_order(item) -> tuple:
    (level, key, utility, ordinal), _ = item
    return (ordinal, level, tuple(map(str, key)), utility)


class CohortDelta:
    """What one partition's enterprises contribute to the cohorts while one day is closed:
    each member's latest value of a metric (``None``: forgotten) and the shared-stop
    verdicts counted per cohort.  Members are disjoint between partitions, so the deltas of
    all partitions for a day merge without conflict.

    >>> d = CohortDelta()
    >>> d.record_day({"industry": "C39"}, "water", date(2024, 5, 6), True)
    >>> CohortDelta.from_message(d.to_message()).days == d.days
    True
    """

    __slots__ = ("values", "days")

    def __init__(self, values: dict | None = None, days: dict | None = None):
        self.values: dict[tuple, tuple | None] = values if values is not None else {}
        self.days: dict[tuple, list[int]] = days if days is not None else {}

    def observe(self, profile: dict | None, metric: str, member: str, value: float, tag: str | None = None) -> None:
        for level, key in cohort_keys(profile):
            self.values[(metric, level, key, member)] = (float(value), tag)

    def forget(self, profile: dict | None, metric: str, member: str) -> None:
        for level, key in cohort_keys(profile):
            self.values[(metric, level, key, member)] = None

    def record_day(self, profile: dict | None, utility: str, day: date, low: bool) -> None:
        for level, key in cohort_keys(profile):
            counts = self.days.setdefault((level, key, utility, day.toordinal()), [0, 0])
            counts[0] += bool(low)
            counts[1] += 1

    def merge(self, other: "CohortDelta") -> None:
        """Add another partition's delta of the same day."""
        self.values.update(other.values)
        for k, (low, total) in other.days.items():
            counts = self.days.setdefault(k, [0, 0])
            counts[0] += low
            counts[1] += total

    def __bool__(self) -> bool:
        return bool(self.values or self.days)

    def __eq__(self, other) -> bool:
        return isinstance(other, CohortDelta) and self.values == other.values and self.days == other.days

    def to_message(self) -> dict:
        """A JSON-able form (lists, no tuples as keys)."""
        return {"values": [[metric, level, list(key), member, None if e is None else e[0], None if e is None else e[1],
                            e is None] for (metric, level, key, member), e in sorted(self.values.items(), key=_value_order)],
                "days": [[level, list(key), utility, ordinal, low, total]
                         for (level, key, utility, ordinal), (low, total) in sorted(self.days.items(), key=_day_order)]}

    @classmethod
    def from_message(cls, body: dict) -> "CohortDelta":
        values = {(metric, level, tuple(key), member): None if gone else (float(value), tag)
                  for metric, level, key, member, value, tag, gone in body.get("values", ())}
        days = {(level, tuple(key), utility, int(ordinal)): [int(low), int(total)]
                for level, key, utility, ordinal, low, total in body.get("days", ())}
        return cls(values, days)


class CohortWindow:
    """The cohorts as the detectors of one partition see them while a day is closed: they
    read the city's statistics through the day before (``city``), and what they contribute
    goes into the partition's delta for the day (``delta``), visible to every partition
    from the next day on.  The same interface as ``Cohorts``."""

    __slots__ = ("city", "delta")

    def __init__(self, city: Cohorts, delta: CohortDelta):
        self.city, self.delta = city, delta

    def observe(self, profile, metric, member, value, tag=None) -> None:
        self.delta.observe(profile, metric, member, value, tag)

    def forget(self, profile, metric, member) -> None:
        self.delta.forget(profile, metric, member)

    def record_day(self, profile, utility, day: date, low: bool) -> None:
        self.delta.record_day(profile, utility, day, low)

    def stats(self, *args, **kwargs) -> CohortView | None:
        return self.city.stats(*args, **kwargs)

    def low_share(self, *args, **kwargs) -> float | None:
        return self.city.low_share(*args, **kwargs)

"""A partition's event-time clock: how far its meter readings have covered time.

``PartitionClock`` is pickled with the partition's records (the worker's table key
``clock/<partition>``).  It moves by the local days the readings cover (never past the
time an upload was recorded), is held back by input kinds that still have unread
messages, and follows the city's readings when its own lag (``target``); what it tells
the city is a ``detectors.citywide.PartitionReport``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from detectors.citywide import PartitionReport
from detectors.cohorts import CohortDelta
from detectors.days import EventClock


@dataclass
class PartitionClock:
    """A partition's event-time clock: moved by how far the meter readings have covered
    time (its own, or the city's when it lags), held back by lagging kinds."""

    clock: EventClock
    seq: int = 0  # unused since the cohorts are city-wide (kept for records pickled before)
    seen: dict[str, datetime] = field(default_factory=dict)   # kind -> largest event_time consumed
    first: dict[str, datetime] = field(default_factory=dict)  # kind -> smallest event_time consumed
    carry: CohortDelta | None = None  # contributions made between day closes (late events): go with the next day

    def saw(self, kind: str, event_time: datetime, since: datetime | None = None) -> None:
        """Note an event of ``kind``: the time up to which it tells (``event_time``), and
        the earliest time it is about (``since``, the event time itself by default)."""
        if kind not in self.seen or event_time > self.seen[kind]:
            self.seen[kind] = event_time
        since = event_time if since is None else since
        if kind not in self.first or since < self.first[kind]:
            self.first[kind] = since

    def covered(self, first: date, last: date, recorded_at: datetime) -> None:
        """Note a meter upload by the local days its readings cover: the utility watermark
        follows the data (a backfill of last year's readings moves it to last year, not
        to the day of the upload), never past the time the upload was recorded."""
        tz = self.clock.tz
        end = min(datetime.combine(last + timedelta(days=1), time(0), tz), recorded_at)
        self.saw("utility", end, datetime.combine(first, time(0), tz))

    def target(self, behind: set[str], city: datetime | None, idle_lag: timedelta | None,
               final: bool = False) -> datetime | None:
        """The time the clock may move to: its own readings' coverage, or the city's minus
        ``idle_lag`` if that is further (None: never), all of the city's if ``final`` (the
        input has ended), but not past the latest time seen of a kind that still has
        unconsumed messages."""
        target = self.seen.get("utility")
        if city is not None and (final or idle_lag is not None):
            follow = city if final else city - idle_lag
            target = follow if target is None else max(target, follow)
        for kind in behind:
            if target is not None:
                target = min(target, self.seen[kind]) if kind in self.seen else None
        return target

    def report(self, behind: set[str], settled: bool = True) -> PartitionReport:
        """What this partition tells the city (``settled``: its input is known to be all
        read, so that a partition without events is empty rather than not read yet).  Its
        earliest event is not known while a kind it has not seen yet has unread messages
        (that kind's first events may be earlier): the city does not start before."""
        known = self.first and all(kind in self.seen for kind in behind)
        return PartitionReport(min(self.first.values()) if known else None, self.seen.get("utility"),
                               self.clock.closed_through, bool(self.first), settled and not behind)

    def closed_at(self, day: date) -> datetime:
        """The event time at which ``day`` closes: its end plus the allowed lateness (the
        ``detected_at`` of what its close finds; a function of the day, not of batching)."""
        end = datetime.combine(day + timedelta(days=1), time(0), self.clock.tz)
        return end + self.clock.lateness

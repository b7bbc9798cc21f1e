"""City-wide peer cohorts: every partition's contributions merged, day by day.

Peers are the enterprises of the whole city, whatever partition each is in, so that the
alerts do not depend on the number of partitions (SPEC §4).  ``CityCohorts`` is what every
partition's driver (``detectors.partition.PartitionDriver``) shares: in one process it is
one object; across workers each holds a copy fed from the compacted topic
``monitor.cohorts`` (``streams.cohorts``), and they agree because every input is keyed
and merged by day and partition.

The protocol, per partition *p*:

- after folding its events, *p* **reports** how far its data goes (``PartitionReport``:
  the earliest time its events are about, how far its meter readings cover time, the last
  day it has closed);
- when it closes local day *D* its detectors read the city's cohorts **as of the end of
  D − 1** (``Cohorts``) and write what they contribute on *D* into a ``CohortDelta``, which
  *p* **contributes** for (*D*, *p*);
- day *D* is **folded** into the city's cohorts once every partition that holds
  enterprises has closed it: the cohort watermark is the minimum over partitions of the
  last day closed, and a partition may close at most the day after it (``allowed``).

So what a verdict of day *D* reads is the deltas of every partition for every day before
*D*, merged in a fixed order: a function of the data alone.

>>> from datetime import datetime, timezone, timedelta
>>> from detectors.cohorts import CohortDelta
>>> cst = timezone(timedelta(hours=8))
>>> city = CityCohorts(partitions=2)
>>> at = datetime(2024, 5, 20, tzinfo=cst)
>>> city.report(0, PartitionReport(first=datetime(2024, 5, 1, tzinfo=cst), coverage=at, events=True))
>>> city.begin(0) is None                  # partition 1 has not reported yet
True
>>> city.report(1, PartitionReport(first=datetime(2024, 5, 2, tzinfo=cst), coverage=at, events=True))
>>> city.begin(0), city.begin(1), city.allowed()
(datetime.date(2024, 4, 30), datetime.date(2024, 4, 30), datetime.date(2024, 5, 1))
>>> city.contribute(0, date(2024, 5, 1), CohortDelta())
>>> city.folded, city.allowed()            # partition 1 has not closed 1 May: 2 May waits
(datetime.date(2024, 4, 30), datetime.date(2024, 5, 1))
>>> city.contribute(1, date(2024, 5, 1), CohortDelta())
>>> city.folded, city.allowed()
(datetime.date(2024, 5, 1), datetime.date(2024, 5, 2))
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from detectors.cohorts import CohortDelta, Cohorts
from detectors.days import DEFAULT_LATENESS
from detectors.record import CITY_TZ
from detectors.thresholds import DEFAULT


@dataclass
class PartitionReport:
    """What a partition tells the city about its progress."""

    first: datetime | None = None         # the earliest time its events are about
    coverage: datetime | None = None      # how far its meter readings have covered time
    closed_through: date | None = None    # the last local day it has closed (and contributed)
    events: bool = False                  # it holds enterprises: the city waits for it
    caught_up: bool = True                # nothing of its input was unread when it reported

    def to_message(self) -> dict:
        return {"first": _iso(self.first), "coverage": _iso(self.coverage),
                "closed_through": _iso(self.closed_through), "events": self.events, "caught_up": self.caught_up}

    @classmethod
    def from_message(cls, body: dict) -> "PartitionReport":
        closed = body.get("closed_through")
        return cls(_time(body.get("first")), _time(body.get("coverage")),
                   date.fromisoformat(closed) if closed else None, bool(body.get("events")),
                   bool(body.get("caught_up", True)))


class CityCohorts:
    """The city's cohorts, folded day by day from every partition's contributions, and the
    cohort watermark that says which day a partition may close next.

    ``partitions``: how many partitions the input has (a worker knows it: the city waits
    until each has reported once); None: the partitions that have reported (in one
    process, where every partition reports after each batch).  ``idle_lag``: a partition
    whose own meter readings lag the city's by more than this follows the city at that
    distance (a partition whose enterprises are few, or stopped uploading, does not hold
    every other partition back); None: only once its input has ended or gone idle (a
    worker, whose partitions are consumed at uneven speeds: following the city there
    would judge a partition's unread data late).  ``publish``: keep the messages for
    ``monitor.cohorts`` in ``outbox``.
    """

    def __init__(self, partitions: int | None = None, idle_lag: timedelta | None = DEFAULT_LATENESS,
                 tz: ZoneInfo = CITY_TZ, min_members: int = DEFAULT.cohort_min_members, publish: bool = False):
        self.partitions = partitions
        self.idle_lag = idle_lag
        self.tz = tz
        self.city = Cohorts(min_members=min_members)
        self.start: date | None = None      # the day before the first day closed
        self.folded: date | None = None     # the last day folded into ``city``
        self.reports: dict[int, PartitionReport] = {}
        self.deltas: dict[date, dict[int, CohortDelta]] = {}
        self.outbox: list[tuple[str, dict]] | None = [] if publish else None
        self._reported: dict[int, dict] = {}   # the last report message sent per partition
        self.origin = uuid.uuid4().hex          # in every message sent: what this copy reads back is its own

    # -- what partitions say ------------------------------------------------------------------
    def report(self, partition: int, report: PartitionReport) -> None:
        """A partition's progress (its ``closed_through`` never goes back here)."""
        old = self.reports.get(partition)
        if old is not None and old.closed_through is not None and (
                report.closed_through is None or report.closed_through < old.closed_through):
            report.closed_through = old.closed_through
        self.reports[partition] = report
        self._send_report(partition, report)
        self.fold()

    def contribute(self, partition: int, day: date, delta: CohortDelta) -> None:
        """Partition ``partition`` closed ``day``: its contributions of that day.

        Two messages go out: the contribution (``day/<day>/<partition>``), then the report
        that the partition has closed the day (``clock/<partition>``).  Another copy folds
        the day only once it has both, so a worker publishes the contribution before it
        stores the partition's state and the report after it: if it dies in between, the
        day is not folded anywhere, and the partition closes it again, from its stored
        state, against the same cohorts (as of the end of the day before)."""
        report = self.reports.setdefault(partition, PartitionReport(events=True))
        before = report.to_message()  # not yet closed: a worker of an older version needs a report here
        if report.closed_through is None or day > report.closed_through:
            report.closed_through = day
        if self.folded is None or day > self.folded:
            self.deltas.setdefault(day, {})[partition] = delta
        self._send(f"day/{day.isoformat()}/{partition}",
                   {"partition": partition, "day": day.isoformat(), "delta": delta.to_message(), "report": before})
        self._send_report(partition, report)
        self.fold()

    def receive(self, key: str, body: dict) -> bool:
        """A message of ``monitor.cohorts`` (another worker's partition, or one's own read
        back): idempotent, in any order.  True if it may let a partition close a day (the
        cohort watermark, the city's readings or its first day moved)."""
        if body.get("origin") == self.origin:
            return False  # its own message read back: already applied
        before = (self.start, self.folded, self.coverage(), len(self.reports))
        partition = int(body["partition"])
        if self.start is None and body.get("start"):  # the city's first day, as the first to decide it did
            self.start = self.folded = date.fromisoformat(body["start"])
        if "report" in body:  # a contribution's says how far its partition had closed before it
            incoming = PartitionReport.from_message(body["report"])
            old = self.reports.get(partition)
            self.reports[partition] = incoming if old is None else _later(old, incoming)
        if "day" in body:
            day = date.fromisoformat(body["day"])
            if self.folded is None or day > self.folded:
                self.deltas.setdefault(day, {})[partition] = CohortDelta.from_message(body["delta"])
        self.fold()
        return before != (self.start, self.folded, self.coverage(), len(self.reports))

    # -- what partitions may do ----------------------------------------------------------------
    def coverage(self) -> datetime | None:
        """How far the city's meter readings have covered time (the furthest partition)."""
        return max((r.coverage for r in self.reports.values() if r.coverage is not None), default=None)

    def begin(self, partition: int) -> date | None:
        """The ``closed_through`` a partition starts from: the city's first day minus one,
        once every partition has reported and some meter data is in (None until then); a
        partition that joins later starts from the last day folded."""
        if self.start is None:
            if not self._all_reported() or self.coverage() is None:
                return None
            if any((r.events and r.first is None) or (not r.caught_up and not r.events)
                   for r in self.reports.values()):
                return None  # a partition that has not read its first events yet
            firsts = [r.first for r in self.reports.values() if r.first is not None]
            self.start = self.folded = min(firsts).astimezone(self.tz).date() - timedelta(days=1)
        return self.folded

    def allowed(self) -> date | None:
        """The last day any partition may close now: the day after the cohort watermark."""
        return None if self.folded is None else self.folded + timedelta(days=1)

    def fold(self) -> None:
        """Fold every day that each partition holding enterprises has closed."""
        if self.folded is None or not self._all_reported():
            return
        while True:
            day = self.folded + timedelta(days=1)
            contributed = self.deltas.get(day, {})
            for partition, r in self.reports.items():
                waits = r.events or not r.caught_up
                if waits and (r.closed_through is None or r.closed_through < day or partition not in contributed):
                    return  # not closed yet, or its contribution is still on the way
            merged = CohortDelta()
            for _, delta in sorted(self.deltas.pop(day, {}).items()):
                merged.merge(delta)
            self.city.apply(merged)
            self.folded = day

    # -- helpers --------------------------------------------------------------------------------
    def _all_reported(self) -> bool:
        return self.partitions is None or len(self.reports) >= self.partitions

    def _send_report(self, partition: int, report: PartitionReport) -> None:
        body = report.to_message()
        if self._reported.get(partition) != body:  # a report that changed nothing is not sent again
            self._reported[partition] = body
            self._send(f"clock/{partition}", {"partition": partition, "report": body})

    def _send(self, key: str, body: dict) -> None:
        if self.outbox is not None:
            body["start"] = _iso(self.start)
            body["origin"] = self.origin
            self.outbox.append((key, body))


def _later(old: PartitionReport, new: PartitionReport) -> PartitionReport:
    """Two reports of one partition merged: progress never goes back."""
    def low(a, b):
        return b if a is None else a if b is None else min(a, b)

    def high(a, b):
        return b if a is None else a if b is None else max(a, b)

    return PartitionReport(low(old.first, new.first), high(old.coverage, new.coverage),
                           high(old.closed_through, new.closed_through), old.events or new.events, new.caught_up)


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()


def _time(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text)

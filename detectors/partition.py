"""Detection of one partition: the enterprise records, the watermark and the one driver.

Each input partition is monitored on its own, and its peers are the whole city's, so that
the alerts are a function of the data only (SPEC §4), whatever the batch boundaries, the
interleaving of partitions, the number of partitions or workers, or a restart:

- **an event-time clock per partition, driven by the meter readings**
  (``PartitionClock``: how far the utility readings have covered time, minus the allowed
  lateness).  All input topics are keyed by USCC and have the same partition count, so
  partition *p* of every topic holds the same enterprises, and a worker owns all of them
  together.  But the five topics of a partition are consumed at their own pace: catching
  up a backlog, a month of tax returns arrives in the time of a few days of meter uploads.
  So only the readings move the clock, and the other kinds' events wait in their
  enterprise's record (``pending``) until the clock has closed their day; they are then
  judged in event-time order, before that day's close.
- **city-wide peer cohorts** (``detectors.citywide.CityCohorts``): a day's verdicts read
  the cohorts of every partition as they stood at the end of the day before, and a
  partition closes a day only once every partition has closed the day before it (the
  cohort watermark).  A partition whose own readings lag the city's follows the city
  (at ``CityCohorts.idle_lag``; at the end of the input, all the way).
- **one record per enterprise** (``Tracked``): aggregates, detectors, open alerts and risk,
  pickled into the worker's changelogged table, so a restarted worker continues where the
  last committed batch left it.  An enterprise takes part in the day closes from the first
  day its own data is about (``Tracked.born``), not from whenever its partition's clock
  happened to stand when it first appeared.

When a partition closes a day, every enterprise of the partition is judged for that day
before any is judged for the next (day-major): ``PartitionDriver`` below is the one driver
that does it, for the worker, the evaluation and the tests (``detectors.city.run_events`` runs a
whole city through it in one process).
A partition that carries no utility data follows the city's clock; without any utility
data in the city, no day closes and other events are released unsynchronised once an
enterprise holds ``MAX_PENDING`` of them.
"""

from __future__ import annotations

import io
import pickle
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

from detectors.alerts import AlertBook
from detectors.citywide import CityCohorts
from detectors.clock import PartitionClock
from detectors.cohorts import CohortDelta, CohortWindow
from detectors.days import closed_through
from detectors.enterprise import EnterpriseDetectors
from detectors.findings import Finding
from detectors.risk import RiskScore
from detectors.thresholds import DEFAULT, Thresholds
from detectors.record import CITY_TZ, DayTotal, EnterpriseState

STATE_PROTOCOL = 5
MAX_PENDING = 64  # events an enterprise may hold back waiting for the clock


# Where pickled state of earlier versions finds its classes (records written before
# streams/monitor.py and streams/aggregates.py moved into detectors/).
_MOVED = {"streams.monitor": "detectors.partition", "streams.aggregates": "detectors.record"}


class _StateUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        return super().find_class(_MOVED.get(module, module), name)


def load_state(blob: bytes):
    """Unpickle a record or clock, also one stored by an earlier version."""
    try:
        return pickle.loads(blob)
    except ModuleNotFoundError:
        return _StateUnpickler(io.BytesIO(blob)).load()


@dataclass
class Published:
    """A message for ``monitor.alerts`` or ``monitor.risk``, with its storage revision."""

    index: int          # the batch index of the event that caused it (whose partition it goes with)
    uscc: str
    body: dict
    revision: int       # per-enterprise sequence: later messages replace earlier ones in storage
    opened: bool = False  # an alert message that opens a new alert


@dataclass
class Tracked:
    """Everything entwatch keeps about one enterprise (a few KB pickled)."""

    uscc: str
    thresholds: Thresholds = DEFAULT
    state: EnterpriseState = field(default_factory=EnterpriseState)
    detectors: EnterpriseDetectors | None = None
    book: AlertBook = field(default_factory=AlertBook)
    risk: RiskScore | None = None
    seq: int = 0                  # messages published about this enterprise (the revision)
    pending: list = field(default_factory=list)  # (local day ordinal, event) waiting for the clock
    risk_published: float = 0.0   # the score last published on monitor.risk
    born: int | None = None       # ordinal of the first local day its data is about (None: before this was kept)

    def __post_init__(self) -> None:
        if self.detectors is None:
            self.detectors = EnterpriseDetectors(self.uscc, self.thresholds)
        if self.risk is None:
            self.risk = RiskScore(self.uscc)

    # The thresholds are the worker's, not the enterprise's: not pickled.
    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("thresholds", None)
        state["detectors"] = self.detectors.__dict__.copy()
        state["detectors"].pop("t", None)
        return state

    def __setstate__(self, state):
        detectors = EnterpriseDetectors.__new__(EnterpriseDetectors)
        detectors.__dict__.update(state.pop("detectors"))
        detectors.t = DEFAULT
        self.__dict__.update(state)
        self.thresholds = DEFAULT
        self.detectors = detectors

    def with_thresholds(self, thresholds: Thresholds) -> "Tracked":
        self.thresholds = thresholds
        self.detectors.t = thresholds
        return self

    @staticmethod
    def load(uscc: str, blob: bytes | None, thresholds: Thresholds = DEFAULT) -> "Tracked":
        if not blob:
            return Tracked(uscc, thresholds)
        return load_state(blob).with_thresholds(thresholds)

    def dump(self) -> bytes:
        return pickle.dumps(self, STATE_PROTOCOL)

    # -- detection -------------------------------------------------------------------------
    def feed(self, event, cohorts: CohortWindow, tz: ZoneInfo) -> list[Finding]:
        """The event-driven rules (registry, tax, social, complaint) for one validated event
        already folded into ``state``."""
        det = self.detectors
        if event.kind == "registry":
            return det.on_profile(self.state.profile)
        if event.kind == "tax":
            return det.on_tax(event.period, event.declared_sales_cny, event.tax_paid_cny, cohorts)
        if event.kind == "social":
            return det.on_social(event.period, event.insured_headcount, event.contributions_cny, cohorts)
        if event.kind == "complaint":
            day = event.event_time.astimezone(tz).date()
            return det.on_complaint(day, cohorts, complaint_id=event.event_id)
        return []

    def publish(self, findings: list[Finding], at: datetime, index: int, out: list[Published],
                risk_out: list[Published]) -> None:
        """Turn findings into alert messages and, if the score moved, a risk message."""
        for finding in findings:
            self.risk.update(finding, at)
            new = (self.uscc, finding.rule) not in self.book.open
            for alert in self.book.apply(self.uscc, finding, self.detectors.profile, at):
                self.seq += 1
                out.append(Published(index, self.uscc, alert, self.seq, new and alert["status"] == "open"))
        self.publish_risk(at, index, risk_out, force=bool(findings))

    def publish_risk(self, at: datetime, index: int, out: list[Published], force: bool = False) -> None:
        """Publish the risk record if findings changed it, or if decay moved it by a point."""
        if self.risk.updated_at is None:
            return
        record = self.risk.to_record(at)
        if force or abs(record["score"] - self.risk_published) >= 1.0:
            self.risk_published = record["score"]
            self.seq += 1
            out.append(Published(index, self.uscc, record, self.seq))

    def due(self, day: date, tz: ZoneInfo) -> list:
        """Take the pending events whose local day is ``day`` or earlier."""
        if not self.pending:
            return []
        limit = day.toordinal()
        due = [e for d, e in self.pending if d <= limit]
        if due:
            self.pending = [(d, e) for d, e in self.pending if d > limit]
        return due

    def hold(self, event, tz: ZoneInfo) -> None:
        """Keep a non-utility event until the clock has closed its local day."""
        self.pending.append((event.event_time.astimezone(tz).toordinal(), event))

    def about(self, day: date) -> None:
        """Note a day this enterprise's data is about: it takes part in closes from the first."""
        ordinal = day.toordinal()
        if self.born is None or ordinal < self.born:
            self.born = ordinal

    def judged_on(self, day: date) -> bool:
        """Does the close of ``day`` judge this enterprise (is its data about that day or earlier)?"""
        return self.born is None or self.born <= day.toordinal()

    def open_rules(self) -> list[str]:
        return [rule for (_, rule) in self.book.open]


@dataclass
class Judged:
    """What one run of a partition's events produced."""

    records: dict[str, Tracked] = field(default_factory=dict)  # every record loaded
    last: dict[str, int] = field(default_factory=dict)  # uscc -> index of the last event that changed it
    daily: list[tuple[str, str, date, DayTotal]] = field(default_factory=list)  # the days the events touched
    alerts: list[Published] = field(default_factory=list)
    risk: list[Published] = field(default_factory=list)
    open_alerts: Counter | None = None  # open alerts by rule, when days were judged
    readings: int = 0
    too_late: int = 0
    duplicates: int = 0
    # the driver's working state for the batch
    loader: Callable[[str], "Tracked | None"] = lambda uscc: None
    index: int = -1               # the batch index of the partition's last event (its messages go with it)
    all_loaded: bool = False
    touched: dict = field(default_factory=lambda: defaultdict(dict))  # uscc -> {(utility, day): None}
    delta: CohortDelta | None = None


class PartitionDriver:
    """Detection for one partition: fold its events into their enterprises' records, move
    its clock, and judge the days it closes (the one detection driver: the worker, the
    evaluation and the tests all run it).

    A batch of a partition is ``fold`` (its events in offset order, with the index each has
    in its batch), then ``close`` as often as the city lets it close another day (other
    partitions closing theirs in between), then ``finish``.  ``run`` does the three for a
    partition that is the whole city.  ``load(uscc)`` gives the stored record or None,
    ``members()`` every enterprise the partition holds; the driver changes only the records
    it returns in ``Judged`` and the clock.
    """

    def __init__(self, thresholds: Thresholds = DEFAULT, tz: ZoneInfo = CITY_TZ,
                 city: CityCohorts | None = None, partition: int = 0):
        self.thresholds = thresholds
        self.tz = tz
        self.city = city if city is not None else CityCohorts(tz=tz, min_members=thresholds.cohort_min_members)
        self.partition = partition

    def judged(self, clock: PartitionClock, load: Callable[[str], Tracked | None]) -> Judged:
        """An empty ``Judged`` for one batch of this partition (its record cache)."""
        return Judged(loader=load)

    def run(self, clock: PartitionClock, items: list[tuple[int, object]], load: Callable[[str], Tracked | None],
            members: Callable[[], Iterable[str]], behind: set[str] = frozenset(), final: bool = False) -> Judged:
        """Fold, close what the city allows, finish: one batch of a partition that is alone
        (or whose peers have run already)."""
        out = self.judged(clock, load)
        self.fold(clock, items, out)
        self.report(clock, behind)
        while self.close(clock, members, out, behind, final):
            pass
        self.finish(clock, out)
        return out

    def fold(self, clock: PartitionClock, items: list[tuple[int, object]], out: Judged) -> None:
        """Fold the events into their enterprises' records; events other than readings wait
        for their day to close."""
        for index, event in items:
            tr = self._tracked(out, event.uscc, clock)
            out.last[event.uscc] = index
            out.index = index
            if event.kind == "utility":
                days = self._fold_utility(tr, event, out.touched[event.uscc], out)
                if days:
                    clock.covered(min(days), max(days), event.event_time)
                    tr.about(min(days))
                continue
            clock.saw(event.kind, event.event_time)
            if self._fold(tr, event):
                tr.about(event.event_time.astimezone(self.tz).date())
                tr.hold(event, self.tz)  # judged once the clock has closed its day
                if len(tr.pending) > MAX_PENDING:  # no utility data moves this partition's clock
                    _, early = tr.pending.pop(0)
                    tr.publish(tr.feed(early, self._between_closes(clock), self.tz), early.event_time, index,
                               out.alerts, out.risk)

    def report(self, clock: PartitionClock, behind: set[str] = frozenset(), settled: bool = True) -> None:
        """Tell the city how far this partition's data goes."""
        self.city.report(self.partition, clock.report(behind, settled))

    def close(self, clock: PartitionClock, members: Callable[[], Iterable[str]], out: Judged,
              behind: set[str] = frozenset(), final: bool = False, through: date | None = None) -> bool:
        """Close the next day if the data and the city allow it; False if not.  ``final``:
        the input has ended, follow the city's readings all the way (``through``: and close
        every day up to that one too)."""
        city = self.city
        if clock.clock.closed_through is None:
            start = city.begin(self.partition)
            if start is None:
                return False
            clock.clock.closed_through = start
            city.report(self.partition, clock.report(behind))
        target = clock.target(behind, city.coverage(), city.idle_lag, final)
        if target is None:
            return False
        if clock.clock.now is None or target > clock.clock.now:
            clock.clock.now = target
        last = closed_through(target, clock.clock.lateness, self.tz)
        if final and through is not None:
            last = max(last, through)
        allowed = city.allowed()
        day = clock.clock.closed_through + timedelta(days=1)
        if day > last or allowed is None or day > allowed:
            return False
        self._close_day(clock, day, members, out)
        clock.clock.closed_through = day
        delta, clock.carry = out.delta, None
        city.contribute(self.partition, day, delta)
        return True

    def _close_day(self, clock: PartitionClock, day: date, members: Callable[[], Iterable[str]], out: Judged) -> None:
        """Judge ``day`` for every enterprise of the partition: the events held for it (in
        event-time order), then the day itself, one enterprise after another."""
        if not out.all_loaded:
            for uscc in members():
                self._tracked(out, uscc, clock)
            out.all_loaded = True
        cache = out.records
        out.delta = clock.carry if clock.carry is not None else CohortDelta()
        window = CohortWindow(self.city.city, out.delta)
        at, index = clock.closed_at(day), out.index
        # a meter's own reach: the uploads recorded by the close count for the day itself,
        # those recorded by the day's end (the whole lateness ago) for days a series waits for
        by_close, by_day_end = at.timestamp(), (at - clock.clock.lateness).timestamp()
        ordered = sorted(cache)
        for (_, uscc, _, _), e in self._due(cache, ordered, day):
            tr = cache[uscc]
            tr.publish(tr.feed(e, window, self.tz), at, index, out.alerts, out.risk)
        for uscc in ordered:
            tr = cache[uscc]
            if not tr.judged_on(day):
                continue  # nothing of its data is about this day yet
            state = tr.state
            overdue, reach = state.reach(by_day_end, by_close)
            findings = tr.detectors.close_through(day, state.days, window, reach, overdue)
            state.judged_through = tr.detectors.judged_days_through  # later days are kept, however old
            tr.publish(findings, at, index, out.alerts, out.risk)
        out.last.update(dict.fromkeys(cache, index))
        out.open_alerts = Counter(rule for tr in cache.values() for rule in tr.open_rules())

    def finish(self, clock: PartitionClock, out: Judged) -> None:
        """After the closes of a batch: judge now the events whose day had already closed
        when they came (late), and give the daily totals the events touched."""
        cache = out.records
        closed = clock.clock.closed_through
        if closed is not None:
            due = self._due(cache, sorted(out.last), closed)
            if due:
                window = self._between_closes(clock)
                for (_, uscc, _, _), e in due:
                    tr = cache[uscc]
                    tr.publish(tr.feed(e, window, self.tz), clock.closed_at(closed), out.index, out.alerts, out.risk)
        for uscc, keys in out.touched.items():
            state = cache[uscc].state
            out.daily += [(uscc, utility, day, state.days[(utility, day)]) for utility, day in keys]
            state.prune()  # only once the totals of every day the events touched are taken
        out.touched.clear()

    def _between_closes(self, clock: PartitionClock) -> CohortWindow:
        """The cohorts for an event judged outside a day close: what it contributes goes with
        the partition's next day."""
        if clock.carry is None:
            clock.carry = CohortDelta()
        return CohortWindow(self.city.city, clock.carry)

    def _tracked(self, out: Judged, uscc: str, clock: PartitionClock) -> Tracked:
        tr = out.records.get(uscc)
        if tr is None:
            tr = out.loader(uscc)
            if tr is None:
                tr = Tracked(uscc, self.thresholds)
                tr.state.judged_through = clock.clock.closed_through or date.min
            out.records[uscc] = tr
        return tr

    def _due(self, cache: dict[str, Tracked], usccs: list[str], day: date) -> list:
        """The held events of ``usccs`` due by ``day``, in event-time order."""
        return sorted(((e.event_time, uscc, e.kind, e.event_id), e) for uscc in usccs
                      for e in cache[uscc].due(day, self.tz))

    def _fold_utility(self, tr: Tracked, event, touched: dict, out: Judged) -> list[date]:
        """Fold a meter upload into the enterprise's daily totals; the days it added to."""
        keys, too_late = tr.state.apply_utility(event, self.tz)
        out.readings += len(event.readings)
        out.too_late += too_late
        if not keys and not too_late:
            out.duplicates += 1
        touched.update(dict.fromkeys(keys))
        return [day for _, day in keys]

    @staticmethod
    def _fold(tr: Tracked, event) -> bool:
        """Fold a return, profile or complaint in; True if it changed something (a new or
        corrected return, a newer profile, a complaint)."""
        if event.kind in ("tax", "social"):
            return tr.state.apply_monthly(event)
        if event.kind == "registry":
            return tr.state.apply_registry(event)
        return True

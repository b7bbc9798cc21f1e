"""Detection of one partition: the enterprise records, the watermark and the one driver.

Each input partition is monitored on its own, so that the alerts are a function of the
data only (SPEC §4), whatever the batch boundaries, the interleaving of partitions, the
number of workers or a restart:

- **an event-time clock per partition, driven by the utility stream**
  (``detectors.days.EventClock``: the largest utility ``event_time`` seen in the partition
  minus the allowed lateness).  All input topics are keyed by USCC and have the same
  partition count, so partition *p* of every topic holds the same enterprises, and a worker
  owns all of them together.  But the five topics of a partition are consumed at their own
  pace: catching up a backlog, a month of tax returns arrives in the time of a few days of
  meter uploads.  So only the utility topic, one ordered log, moves the clock, and the other
  kinds' events wait in their enterprise's record (``pending``) until the clock has closed
  their day; they are then judged in event-time order, before that day's close.  That makes
  the order in which the rules see events a function of the data, not of fetch timing.
- **peer cohorts per partition** (``detectors.cohorts.Cohorts``): the peers an enterprise is
  compared with are the enterprises of its partition (about ``N / partitions`` of them).
  They live in memory and are rebuilt from the stream after a restart (see docs/DETECTION.md).
- **one record per enterprise** (``Tracked``): aggregates, detectors, open alerts and risk,
  pickled into the worker's changelogged table, so a restarted worker continues where the
  last committed batch left it.

When a partition's clock closes a day, every enterprise of the partition is judged for that
day before any is judged for the next (day-major): ``PartitionDriver`` below is the one
driver that does it, for the worker, the evaluation and the tests.
A partition that carries no utility data never closes a day; its other events are then
released unsynchronised once an enterprise holds ``MAX_PENDING`` of them.
"""

from __future__ import annotations

import io
import pickle
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

from detectors.alerts import AlertBook
from detectors.cohorts import Cohorts
from detectors.days import DEFAULT_LATENESS, EventClock
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
class PartitionClock:
    """A partition's event-time clock: moved by how far the meter readings have covered
    time (minus the utility lateness), held back by lagging kinds."""

    clock: EventClock
    seq: int = 0  # cohort contributions recorded on this partition (their order, for a rebuild)
    seen: dict[str, datetime] = field(default_factory=dict)   # kind -> largest event_time consumed
    first: dict[str, datetime] = field(default_factory=dict)  # kind -> smallest event_time consumed

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

    def advance(self, behind: set[str]) -> list[date]:
        """Move to the latest utility time, but not past the latest time seen of a kind
        that still has unconsumed messages; returns the days this closes.  The clock
        starts at the partition's earliest event, so history is judged day by day too."""
        target = self.seen.get("utility")
        for kind in behind - {"utility"}:
            if target is not None:
                target = min(target, self.seen[kind]) if kind in self.seen else None
        if target is None:
            return []
        if self.clock.closed_through is None:
            earliest = min(self.first.values())
            self.clock.closed_through = earliest.astimezone(self.clock.tz).date() - timedelta(days=1)
        return self.clock.observe(target)

    def close_through(self, day: date) -> list[date]:
        """Close every day up to ``day`` (the end of a finite input); returns them."""
        days = []
        while self.clock.closed_through is not None and self.clock.closed_through < day:
            self.clock.closed_through += timedelta(days=1)
            days.append(self.clock.closed_through)
        return days

    def closed_at(self, day: date) -> datetime:
        """The event time at which ``day`` closes: its end plus the allowed lateness (the
        ``detected_at`` of what its close finds; a function of the day, not of batching)."""
        end = datetime.combine(day + timedelta(days=1), time(0), self.clock.tz)
        return end + self.clock.lateness


class PartitionCohorts:
    """The peer cohorts of one partition, which also note each enterprise's own
    contributions in its record (``Tracked.contrib``, ``Tracked.lows``), so that after a
    restart the cohorts are rebuilt from the recovered records exactly as they were.

    ``record`` is the enterprise being judged; the detectors only ever contribute their own
    values.  Everything else (``stats``, ``low_share``) is the plain ``Cohorts``."""

    def __init__(self, cohorts: Cohorts, seq: int = 0):
        self.cohorts = cohorts
        self.seq = seq
        self.record: Tracked | None = None

    def __getattr__(self, name):
        return getattr(self.cohorts, name)

    def observe(self, profile, metric, member, value, tag=None) -> None:
        self.cohorts.observe(profile, metric, member, value, tag)
        if self.record is not None and member == self.record.uscc:
            self.seq += 1
            self.record.contrib[metric] = (self.seq, float(value), tag)

    def forget(self, profile, metric, member) -> None:
        self.cohorts.forget(profile, metric, member)
        if self.record is not None and member == self.record.uscc:
            self.record.contrib.pop(metric, None)

    def record_day(self, profile, utility, day: date, low: bool) -> None:
        self.cohorts.record_day(profile, utility, day, low)
        if self.record is not None:
            self.record.note_day(utility, day.toordinal(), low, self.cohorts.day_memory)

    @classmethod
    def rebuild(cls, cohorts: Cohorts, seq: int, records: list["Tracked"]) -> "PartitionCohorts":
        """The cohorts as the records' contributions left them (values in their original
        order, so the bounded member lists keep the same members)."""
        values = sorted((entry[0], tr.uscc, metric, entry[1], entry[2])
                        for tr in records for metric, entry in tr.contrib.items())
        by_uscc = {tr.uscc: tr for tr in records}
        for _, uscc, metric, value, tag in values:
            cohorts.observe(by_uscc[uscc].detectors.profile, metric, uscc, value, tag)
        days = sorted((day, tr.uscc, utility, low) for tr in records for utility, day, low in tr.noted_days())
        for day, uscc, utility, low in days:
            cohorts.record_day(by_uscc[uscc].detectors.profile, utility, date.fromordinal(day), low)
        return cls(cohorts, seq)


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
    contrib: dict = field(default_factory=dict)  # metric -> (seq, value, tag) given to the cohorts
    lows: dict = field(default_factory=dict)     # utility -> [last day ordinal, days-seen mask, low mask]
    risk_published: float = 0.0   # the score last published on monitor.risk

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
    def feed(self, event, cohorts: Cohorts, tz: ZoneInfo) -> list[Finding]:
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

    def note_day(self, utility: str, ordinal: int, low: bool, memory: int) -> None:
        """Remember this enterprise's shared-stop verdict for a day (the last ``memory`` days)."""
        last, seen, lows = self.lows.get(utility, (ordinal, 0, 0))
        if ordinal > last:
            shift = ordinal - last
            seen, lows, last = seen << shift, lows << shift, ordinal
        bit = 1 << (last - ordinal)
        mask = (1 << memory) - 1
        self.lows[utility] = (last, (seen | bit) & mask, ((lows & ~bit) | (bit if low else 0)) & mask)

    def noted_days(self):
        """(utility, day ordinal, low) of the remembered verdicts."""
        for utility, (last, seen, lows) in self.lows.items():
            i = 0
            while seen >> i:
                if (seen >> i) & 1:
                    yield utility, last - i, bool((lows >> i) & 1)
                i += 1

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


class PartitionDriver:
    """Detection for one partition: fold its events into their enterprises' records, move
    its clock, and judge the days it closes (the one detection driver: the worker, the
    evaluation and the tests all run it).

    ``run`` takes the partition's events in offset order with the index each has in its
    batch, ``load(uscc)`` (the stored record or None) and ``members()`` (every enterprise
    the partition holds); it changes only the records it returns and ``clock``.
    """

    def __init__(self, thresholds: Thresholds = DEFAULT, tz: ZoneInfo = CITY_TZ):
        self.thresholds = thresholds
        self.tz = tz
        self.cohorts: PartitionCohorts | None = None  # rebuilt from the records on first use

    def run(self, clock: PartitionClock, items: list[tuple[int, object]], load: Callable[[str], Tracked | None],
            members: Callable[[], Iterable[str]], behind: set[str] = frozenset(),
            close_through: date | None = None) -> Judged:
        out = Judged()
        cache = out.records
        touched: dict[str, dict[tuple[str, date], None]] = defaultdict(dict)

        def tracked(uscc: str) -> Tracked:
            tr = cache.get(uscc)
            if tr is None:
                tr = load(uscc)
                if tr is None:
                    tr = Tracked(uscc, self.thresholds)
                    tr.state.judged_through = clock.clock.closed_through or date.min
                cache[uscc] = tr
            return tr

        if self.cohorts is None:  # first run of this partition in this process
            self.cohorts = PartitionCohorts.rebuild(Cohorts(min_members=self.thresholds.cohort_min_members),
                                                    clock.seq, [tracked(uscc) for uscc in members()])
        cohorts = self.cohorts

        def publish(tr: Tracked, findings: list[Finding], at: datetime, index: int) -> None:
            tr.publish(findings, at, index, out.alerts, out.risk)

        for index, event in items:
            tr = tracked(event.uscc)
            out.last[event.uscc] = index
            if event.kind == "utility":
                days = self._fold_utility(tr, event, touched[event.uscc], out)
                if days:
                    clock.covered(min(days), max(days), event.event_time)
                continue
            clock.saw(event.kind, event.event_time)
            if self._fold(tr, event):
                tr.hold(event, self.tz)  # judged once the clock has closed its day
                if len(tr.pending) > MAX_PENDING:  # no utility data moves this partition's clock
                    _, early = tr.pending.pop(0)
                    cohorts.record = tr
                    publish(tr, tr.feed(early, cohorts, self.tz), early.event_time, index)
        index = items[-1][0] if items else -1
        days = clock.advance(behind)
        if close_through is not None:
            days += clock.close_through(close_through)
        if days:
            for uscc in members():
                tracked(uscc)
            ordered = sorted(cache)
            for day in days:  # day-major: every enterprise's day before anyone's next day
                at = clock.closed_at(day)
                for (_, uscc, _, _), e in self._due(cache, ordered, day):
                    tr = cohorts.record = cache[uscc]
                    publish(tr, tr.feed(e, cohorts, self.tz), at, index)
                for uscc in ordered:
                    tr = cohorts.record = cache[uscc]
                    findings = tr.detectors.close_through(day, tr.state.days, cohorts)
                    tr.state.judged_through = day
                    publish(tr, findings, at, index)
            out.last.update(dict.fromkeys(cache, index))
            out.open_alerts = Counter(rule for tr in cache.values() for rule in tr.open_rules())
        closed = clock.clock.closed_through
        if closed is not None:  # late events (their day already closed) are judged now, not at the next close
            for (_, uscc, _, _), e in self._due(cache, sorted(out.last), closed):
                tr = cohorts.record = cache[uscc]
                publish(tr, tr.feed(e, cohorts, self.tz), clock.closed_at(closed), index)
        for uscc, keys in touched.items():
            state = cache[uscc].state
            out.daily += [(uscc, utility, day, state.days[(utility, day)]) for utility, day in keys]
            state.prune()  # only once the totals of every day the events touched are taken
        cohorts.record = None
        clock.seq = cohorts.seq
        return out

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


def run_events(events: Iterable, thresholds: Thresholds = DEFAULT, lateness: timedelta = DEFAULT_LATENESS,
               tz: ZoneInfo = CITY_TZ, flush: bool = False, batch: int = 500) -> tuple[list[dict], dict[str, dict]]:
    """Validated events (in arrival order) through ``PartitionDriver`` as one partition, in
    batches of ``batch``: the whole city with one clock and city-wide cohorts.

    Returns ``(alerts, risk)``: every alert message in publication order, and the latest
    ``monitor.risk`` record per enterprise.  ``flush=True`` also closes the days the
    lateness would still hold open at the end of the input."""
    driver, clock, records = PartitionDriver(thresholds, tz), PartitionClock(EventClock(lateness, tz)), {}
    alerts: list[dict] = []
    items = list(enumerate(events))
    for start in range(0, len(items), batch):
        run = items[start:start + batch]
        last_day = None
        if flush and start + batch >= len(items):
            last_day = max(e.event_time for _, e in items).astimezone(tz).date() - timedelta(days=1)
        judged = driver.run(clock, run, records.get, records.keys, close_through=last_day)
        records.update(judged.records)
        alerts += [p.body for p in judged.alerts]
    at = clock.clock.now
    return alerts, ({uscc: tr.risk.to_record(at) for uscc, tr in sorted(records.items())} if at else {})

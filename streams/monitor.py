"""Detection inside the worker: one enterprise's record, and the watermark per partition.

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
day before any is judged for the next (day-major), exactly as ``detectors.offline`` does.
A partition that carries no utility data never closes a day; its other events are then
released unsynchronised once an enterprise holds ``MAX_PENDING`` of them.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import orjson

from detectors.alerts import AlertBook
from detectors.cohorts import Cohorts
from detectors.days import EventClock
from detectors.enterprise import EnterpriseDetectors
from detectors.findings import Finding
from detectors.risk import RiskScore
from detectors.thresholds import DEFAULT, Thresholds
from streams.aggregates import EnterpriseState

STATE_PROTOCOL = 5
MAX_PENDING = 64  # events an enterprise may hold back waiting for the clock


@dataclass
class PartitionClock:
    """A partition's event-time clock: moved by the utility stream, held back by lagging kinds."""

    clock: EventClock
    seq: int = 0  # cohort contributions recorded on this partition (their order, for a rebuild)
    seen: dict[str, datetime] = field(default_factory=dict)   # kind -> largest event_time consumed
    first: dict[str, datetime] = field(default_factory=dict)  # kind -> smallest event_time consumed

    def saw(self, kind: str, event_time: datetime) -> None:
        if kind not in self.seen or event_time > self.seen[kind]:
            self.seen[kind] = event_time
        if kind not in self.first or event_time < self.first[kind]:
            self.first[kind] = event_time

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
        return pickle.loads(blob).with_thresholds(thresholds)

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


def alert_row(p: Published) -> dict:
    """The ``alerts`` table row of an alert message."""
    a = p.body
    return {
        "alert_id": a["alert_id"], "uscc": a["uscc"], "enterprise_name": a["enterprise_name"],
        "industry": a["industry"], "town": a["town"], "rule": a["rule"], "severity": a["severity"],
        "status": a["status"], "window_start": _date(a["window_start"]), "window_end": _date(a["window_end"]),
        "detected_at": _time(a["detected_at"]), "score": a["score"], "observed": a["observed"],
        "expected": a["expected"], "evidence": _json(a["evidence"]),
        "explanation_zh": a["explanation"].get("zh", ""), "explanation_en": a["explanation"].get("en", ""),
        "revision": p.revision,
    }


def risk_row(p: Published) -> dict:
    """The ``risk`` table row of a risk message."""
    r = p.body
    return {"uscc": r["uscc"], "score": r["score"], "level": r["level"], "rules": list(r["rules"]),
            "updated_at": _time(r["updated_at"]), "revision": p.revision}


def _date(text: str) -> date:
    return date.fromisoformat(text)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def _json(value) -> str:
    return orjson.dumps(value).decode()

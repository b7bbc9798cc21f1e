"""``entwatch reconcile FILE``: what storage holds against what a replay file says.

Operators run it after every backfill.  The file is judged line by line exactly as
``entwatch replay`` and the worker judge it (bad lines are left out, a repeated
``event_id`` counts once, the latest ``event_time`` of a tax or social period wins), and
then compared, enterprise by enterprise, with storage:

- **events**: every valid event of the file is in ``events`` with its USCC and event time;
- **daily totals**: every enterprise-day and utility the file's readings cover has the
  total of those readings in ``utility_daily`` (readings spread over local days in
  proportion to time, as the worker does);
- **monthly returns**: every tax and social period of the file holds the values of its
  latest return.

Storage is read through the typed read API (``streams.readapi``: named queries over ranges
of USCCs), never with SQL from here.  The comparison covers the enterprises and days of
the file: data of other files for other days is not reported.  A day's total in storage
also holds readings of the same enterprise-day from other files; reconcile the files
together (``cat``) if they overlap.

>>> from datetime import date
>>> expected = Expected()
>>> expected.daily[("914403001922038216", "water", date(2024, 3, 1))] = [5.0, 1]
>>> report = compare_daily(expected, {("914403001922038216", "water", date(2024, 3, 1)): (4.0, 1)})
>>> report
[('914403001922038216', 'water', datetime.date(2024, 3, 1), 5.0, 4.0)]
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, Protocol
from zoneinfo import ZoneInfo

from producers.mapping import Mapping, read_csv
from producers.replay import Line, read_lines
from streams import contracts
from detectors.record import CITY_TZ, split_by_day

RELATIVE_TOLERANCE = 1e-9  # sums of the same readings in another order differ in the last bits
USCCS_PER_READ = 200  # a read of a year of daily uploads: ~150,000 rows, under the API's row limit
SHOWN = 10  # examples of each kind of difference in the report


class Reader(Protocol):
    """What reconcile needs of the typed read API (``streams.readapi``)."""

    def read(self, name: str, **params) -> list[dict]: ...


@dataclass
class Expected:
    """What storage should hold for one file."""

    events: dict[tuple[str, str], tuple[str, datetime]] = field(default_factory=dict)  # (kind, id) -> uscc, time
    daily: dict[tuple[str, str, date], list] = field(default_factory=lambda: defaultdict(lambda: [0.0, 0]))
    monthly: dict[tuple[str, str, str], tuple[datetime, tuple]] = field(default_factory=dict)  # (kind, uscc, period)
    bad: int = 0

    def usccs(self) -> list[str]:
        return sorted({uscc for uscc, _ in self.events.values()})

    def add(self, event, tz: ZoneInfo = CITY_TZ) -> None:
        """Fold one validated event in (a repeated event_id counts once)."""
        key = (event.kind, event.event_id)
        if key in self.events:
            return
        self.events[key] = (event.uscc, event.event_time)
        if event.kind == "utility":
            for reading in event.readings:
                for day, amount in split_by_day(reading.start, reading.end, reading.amount, tz):
                    total = self.daily[(event.uscc, event.utility, day)]
                    total[0] += amount
                    total[1] += 1
        elif event.kind in ("tax", "social"):
            values = ((event.declared_sales_cny, event.tax_paid_cny) if event.kind == "tax"
                      else (event.insured_headcount, event.contributions_cny))
            slot = (event.kind, event.uscc, event.period)
            kept = self.monthly.get(slot)
            if kept is None or event.event_time > kept[0]:
                self.monthly[slot] = (event.event_time, values)


def expected_from(units: Iterable[Line], tz: ZoneInfo = CITY_TZ) -> Expected:
    """Fold in the valid units of a file as ``entwatch replay`` judged them."""
    expected = Expected()
    for unit in units:
        event = contracts.decode_event(unit.raw) if unit.rejection is None else unit.rejection
        if isinstance(event, contracts.Rejection):
            expected.bad += 1
        else:
            expected.add(event, tz)
    return expected


def file_units(path: Path, mapping: Mapping | None = None) -> Iterator[Line]:
    """The units a replay of ``path`` judges: JSON Lines, or CSV rows with their mapping."""
    return read_lines(path) if mapping is None else read_csv(path, mapping)


@dataclass
class Report:
    """The differences found; ``ok`` when there are none."""

    events: int = 0
    days: int = 0
    months: int = 0
    bad_lines: int = 0
    missing_events: list = field(default_factory=list)
    different_events: list = field(default_factory=list)
    different_days: list = field(default_factory=list)    # (uscc, utility, day, expected, stored or None)
    different_months: list = field(default_factory=list)  # (kind, uscc, period, expected, stored or None)

    @property
    def ok(self) -> bool:
        return not (self.missing_events or self.different_events or self.different_days or self.different_months)

    def lines(self) -> list[str]:
        """A short report for a person: counts first, then a few examples of each difference."""
        out = [f"checked {self.events:,} events, {self.days:,} enterprise-days, {self.months:,} returns "
               f"({self.bad_lines:,} bad lines left out, as replay leaves them out)"]
        problems = (
            ("events missing from storage", self.missing_events, lambda e: f"{e[0]} {e[1]}"),
            ("events stored with another USCC or event time", self.different_events,
             lambda e: f"{e[0]} {e[1]}: file {e[2]}, stored {e[3]}"),
            ("enterprise-days whose daily total differs", self.different_days,
             lambda d: f"{d[0]} {d[1]} {d[2]}: file {d[3]:.6g}, stored {'nothing' if d[4] is None else f'{d[4]:.6g}'}"),
            ("returns whose values differ", self.different_months,
             lambda m: f"{m[0]} {m[1]} {m[2]}: file {m[3]}, stored {'nothing' if m[4] is None else m[4]}"),
        )
        for title, items, show in problems:
            if items:
                out.append(f"{len(items):,} {title}:")
                out.extend(f"  {show(item)}" for item in items[:SHOWN])
                if len(items) > SHOWN:
                    out.append(f"  ... and {len(items) - SHOWN:,} more")
        out.append("storage matches the file" if self.ok else "storage differs from the file")
        return out


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= RELATIVE_TOLERANCE * max(abs(a), abs(b), 1e-12)


def compare_daily(expected: Expected, stored: dict[tuple[str, str, date], tuple[float, int]]) -> list:
    """The file's enterprise-days whose stored total is missing or differs."""
    out = []
    for key, (amount, _) in sorted(expected.daily.items()):
        got = stored.get(key)
        if got is None or not _close(amount, got[0]):
            out.append((*key, amount, None if got is None else got[0]))
    return out


def _day(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _time(value) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.fromisoformat(str(value).replace(" ", "T")).replace(tzinfo=timezone.utc)


def reconcile(expected: Expected, reader: Reader, per_read: int = USCCS_PER_READ) -> Report:
    """Compare ``expected`` with storage, ``per_read`` enterprises at a time."""
    report = Report(events=len(expected.events), days=len(expected.daily), months=len(expected.monthly),
                    bad_lines=expected.bad)
    usccs = expected.usccs()
    wanted = set(usccs)
    by_kind: dict[str, dict[str, tuple[str, datetime]]] = defaultdict(dict)
    for (kind, event_id), value in expected.events.items():
        by_kind[kind][event_id] = value
    for i in range(0, len(usccs), per_read):
        first, last = usccs[i], usccs[min(i + per_read, len(usccs)) - 1]
        span = set(usccs[i:i + per_read])
        for kind, events in by_kind.items():
            stored = {r["event_id"]: (r["uscc"], _time(r["event_time"]))
                      for r in reader.read("events_range", kind=kind, first_uscc=first, last_uscc=last)}
            for event_id, (uscc, at) in events.items():
                if uscc not in span:
                    continue
                got = stored.get(event_id)
                if got is None:
                    report.missing_events.append((kind, event_id))
                elif got[0] != uscc or int(got[1].timestamp()) != int(at.timestamp()):
                    report.different_events.append((kind, event_id, f"{uscc} {at.isoformat()}",
                                                    f"{got[0]} {got[1].isoformat()}"))
        daily = {(r["uscc"], r["utility"], _day(r["day"])): (float(r["amount"]), int(r["readings"]))
                 for r in reader.read("daily_range", first_uscc=first, last_uscc=last) if r["uscc"] in wanted}
        part = Expected(daily={k: v for k, v in expected.daily.items() if k[0] in span})
        report.different_days.extend(compare_daily(part, daily))
        for kind, columns in (("tax", ("declared_sales_cny", "tax_paid_cny")),
                              ("social", ("insured_headcount", "contributions_cny"))):
            stored = {(r["uscc"], _day(r["period"]).isoformat()[:7]): tuple(float(r[c]) for c in columns)
                      for r in reader.read("monthly_range", kind=kind, first_uscc=first, last_uscc=last)}
            for (k, uscc, period), (_, values) in sorted(expected.monthly.items()):
                if k != kind or uscc not in span:
                    continue
                got = stored.get((uscc, period))
                if got is None or not all(_close(float(a), b) for a, b in zip(values, got)):
                    report.different_months.append((kind, uscc, period, values, got))
    return report

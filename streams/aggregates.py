"""Per-enterprise aggregates: daily utility totals and the latest monthly tax/social values.

Pure Python: no Kafka, Faust or ClickHouse here, so the same code serves the worker,
the tests and offline tools.  One ``EnterpriseState`` per USCC lives in a Faust table
(pickled, changelogged); the worker applies a whole batch of one enterprise's events
to it and stores it once.

Idempotency: the state remembers a 64-bit digest of every utility event it has folded
in (pruned with the days it touched), so a redelivered or replayed event is counted once.
Tax and social values are "latest event_time wins" per period, which is idempotent by itself.

>>> from datetime import datetime, timezone, timedelta
>>> cst = timezone(timedelta(hours=8))
>>> [(d.isoformat(), a) for d, a in split_by_day(
...     datetime(2024, 3, 1, 22, tzinfo=cst), datetime(2024, 3, 2, 2, tzinfo=cst), 8.0)]
[('2024-03-01', 4.0), ('2024-03-02', 4.0)]
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Iterator
from zoneinfo import ZoneInfo

CITY_TZ = ZoneInfo("Asia/Shanghai")
RETAIN_DAYS = 40  # days of daily totals (and event digests) kept per enterprise for late data
RETAIN_MONTHS = 25

_DAY = timedelta(days=1)


def split_by_day(start: datetime, end: datetime, amount: float, tz: ZoneInfo = CITY_TZ) -> Iterator[tuple[date, float]]:
    """Spread ``amount`` over the local calendar days that ``[start, end)`` covers,
    in proportion to the time in each day."""
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    day = local_start.date()
    if local_end.date() == day or (local_end.date() == day + _DAY and local_end.time() == datetime.min.time()):
        yield day, amount
        return
    total = (end - start).total_seconds()
    cursor = start
    while cursor < end:
        next_midnight = datetime.combine(day + _DAY, datetime.min.time(), tz)
        piece_end = min(end, next_midnight)
        yield day, amount * (piece_end - cursor).total_seconds() / total
        cursor, day = piece_end, day + _DAY


def event_digest(kind: str, event_id: str) -> int:
    """A stable 64-bit digest of an event's identity (stable across processes, unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(f"{kind}\x00{event_id}".encode(), digest_size=8).digest(), "big")


@dataclass
class DayTotal:
    """One utility's consumption on one local day."""

    amount: float = 0.0
    readings: int = 0
    estimated: int = 0


@dataclass
class MonthValue:
    """The latest value reported for one month (by event_time)."""

    event_time: datetime
    values: tuple[float, ...]


@dataclass
class EnterpriseState:
    """What the worker remembers about one enterprise."""

    profile: dict | None = None
    profile_time: datetime | None = None
    days: dict[tuple[str, date], DayTotal] = field(default_factory=dict)
    seen: dict[int, date] = field(default_factory=dict)  # utility event digest -> latest day it touched
    tax: dict[str, MonthValue] = field(default_factory=dict)
    social: dict[str, MonthValue] = field(default_factory=dict)
    newest_day: date | None = None
    # The last day the detectors have judged (set by the worker); days after it are kept
    # whatever their age, so a clock held back by a lagging topic loses nothing.
    judged_through: date | None = None

    def apply_utility(self, event, tz: ZoneInfo = CITY_TZ) -> tuple[list[tuple[str, date]], int]:
        """Fold a utility event in; returns the (utility, day) keys it touched and how many
        readings were too late to aggregate (older than the retention window).

        A redelivered event (same event_id) changes nothing and touches nothing."""
        digest = event_digest("utility", event.event_id)
        if digest in self.seen:
            return [], 0
        horizon = self._horizon()
        touched: dict[tuple[str, date], None] = {}
        too_late = 0
        for reading in event.readings:
            for day, amount in split_by_day(reading.start, reading.end, reading.amount, tz):
                if horizon is not None and day < horizon:
                    too_late += 1
                    continue
                key = (event.utility, day)
                total = self.days.get(key)
                if total is None:
                    total = self.days[key] = DayTotal()
                total.amount += amount
                total.readings += 1
                total.estimated += reading.estimated
                touched[key] = None
        if touched:
            latest = max(day for _, day in touched)
            self.seen[digest] = latest
            if self.newest_day is None or latest > self.newest_day:
                self.newest_day = latest
                self._prune()
        return list(touched), too_late

    def apply_monthly(self, event) -> bool:
        """Keep a tax or social value if it is the latest for its period; True if it was."""
        book = self.tax if event.kind == "tax" else self.social
        current = book.get(event.period)
        if current is not None and current.event_time >= event.event_time:
            return False
        if event.kind == "tax":
            values = (event.declared_sales_cny, event.tax_paid_cny)
        else:
            values = (float(event.insured_headcount), event.contributions_cny)
        book[event.period] = MonthValue(event.event_time, values)
        if len(book) > RETAIN_MONTHS:
            for period in sorted(book)[: len(book) - RETAIN_MONTHS]:
                del book[period]
        return True

    def apply_registry(self, event) -> bool:
        """Keep the registry profile if it is the latest; True if it was."""
        if self.profile_time is not None and self.profile_time >= event.event_time:
            return False
        self.profile = {
            "name": event.name, "industry": event.industry, "town": event.town,
            "status": event.status, "established_on": event.established_on,
            "key_enterprise": event.key_enterprise,
        }
        self.profile_time = event.event_time
        return True

    def _horizon(self) -> date | None:
        if self.newest_day is None:
            return None
        horizon = self.newest_day - timedelta(days=RETAIN_DAYS)
        if self.judged_through is not None and self.judged_through < horizon:
            return self.judged_through + timedelta(days=1) if self.judged_through > date.min else None
        return horizon

    def _prune(self) -> None:
        horizon = self._horizon()
        if horizon is None:
            return
        for key in [k for k in self.days if k[1] < horizon]:
            del self.days[key]
        for digest in [d for d, day in self.seen.items() if day < horizon]:
            del self.seen[digest]

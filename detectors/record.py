"""Per-enterprise aggregates: daily utility totals and the latest monthly tax/social values.

Pure Python: no Kafka, Faust or ClickHouse here, so the same code serves the worker,
the tests and offline tools.  One ``EnterpriseState`` per USCC lives in a Faust table
(pickled, changelogged); the worker applies a whole batch of one enterprise's events
to it and stores it once.

Idempotency: the state remembers a 64-bit digest of every utility event it has folded
in (pruned with the days it touched), so a redelivered or replayed event is counted once.
Tax and social returns are "latest event_time wins" per period (only the event time of the
return kept is remembered: the values go to storage and to the detectors).

>>> from datetime import datetime, timezone, timedelta
>>> cst = timezone(timedelta(hours=8))
>>> [(d.isoformat(), a) for d, a in split_by_day(
...     datetime(2024, 3, 1, 22, tzinfo=cst), datetime(2024, 3, 2, 2, tzinfo=cst), 8.0)]
[('2024-03-01', 4.0), ('2024-03-02', 4.0)]
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Iterator, NamedTuple
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


class DayTotal(NamedTuple):
    """One utility's consumption on one local day."""

    amount: float = 0.0
    readings: int = 0
    estimated: int = 0


EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class DayBook(Mapping):
    """Daily totals per utility over a sliding window, kept in arrays.

    A ``Mapping`` of ``(utility, day) -> DayTotal`` for the days with readings, but stored
    as one run of days per utility (amounts, reading counts, estimated counts): a few
    hundred bytes pickled, and fast to pickle, where a dict of objects was ten times both.

    >>> book = DayBook()
    >>> book.add("electricity", date(2024, 3, 2).toordinal(), 5.0, False)
    >>> book.add("electricity", date(2024, 2, 29).toordinal(), 2.0, True)
    >>> sorted((u, d.isoformat(), t.amount, t.estimated) for (u, d), t in book.items())
    [('electricity', '2024-02-29', 2.0, 1), ('electricity', '2024-03-02', 5.0, 0)]
    >>> book.get(("electricity", date(2024, 3, 1))) is None
    True
    """

    __slots__ = ("runs",)

    def __init__(self):
        # utility -> [first day's ordinal, amounts, readings, estimated]
        self.runs: dict[str, list] = {}

    def add(self, utility: str, ordinal: int, amount: float, estimated: bool) -> None:
        run = self.runs.get(utility)
        if run is None:
            run = self.runs[utility] = [ordinal, array("d"), array("i"), array("i")]
        base, amounts, readings, est = run
        if ordinal < base:  # an earlier day: prepend a gap
            pad = base - ordinal
            run[0] = base = ordinal
            for arr, zero in ((amounts, 0.0), (readings, 0), (est, 0)):
                arr[0:0] = array(arr.typecode, [zero]) * pad
        i = ordinal - base
        if i >= len(amounts):
            grow = i + 1 - len(amounts)
            amounts.extend(array("d", [0.0]) * grow)
            readings.extend(array("i", [0]) * grow)
            est.extend(array("i", [0]) * grow)
        amounts[i] += amount
        readings[i] += 1
        est[i] += bool(estimated)

    def first_days(self) -> dict[str, date]:
        """The first day with readings of each utility."""
        out = {}
        for utility, (base, _, readings, _) in self.runs.items():
            for i, n in enumerate(readings):
                if n:
                    out[utility] = date.fromordinal(base + i)
                    break
        return out

    def drop_before(self, ordinal: int) -> None:
        """Forget the days before ``ordinal``."""
        for utility, run in list(self.runs.items()):
            cut = ordinal - run[0]
            if cut <= 0:
                continue
            if cut >= len(run[1]):
                del self.runs[utility]
                continue
            run[0] = ordinal
            for arr in run[1:]:
                del arr[:cut]

    def get(self, key, default=None):
        utility, day = key
        run = self.runs.get(utility)
        if run is None:
            return default
        i = day.toordinal() - run[0]
        if 0 <= i < len(run[1]) and run[2][i]:
            return DayTotal(run[1][i], run[2][i], run[3][i])
        return default

    def __getitem__(self, key) -> DayTotal:
        total = self.get(key)
        if total is None:
            raise KeyError(key)
        return total

    def __iter__(self):
        for utility, (base, _, readings, _) in self.runs.items():
            for i, n in enumerate(readings):
                if n:
                    yield utility, date.fromordinal(base + i)

    def __len__(self) -> int:
        return sum(sum(1 for n in run[2] if n) for run in self.runs.values())

    def __getstate__(self):
        return self.runs

    def __setstate__(self, runs):
        self.runs = runs


@dataclass
class EnterpriseState:
    """What the worker remembers about one enterprise."""

    profile: dict | None = None
    profile_time: float | None = None  # epoch seconds of the registry event kept
    days: DayBook = field(default_factory=DayBook)
    seen: array = field(default_factory=lambda: array("Q"))      # digests of utility events folded in
    seen_day: array = field(default_factory=lambda: array("i"))  # the latest day (ordinal) each touched
    tax: dict[str, float] = field(default_factory=dict)     # period -> epoch seconds of the return kept
    social: dict[str, float] = field(default_factory=dict)
    newest_day: date | None = None
    # The last day the detectors have judged (set by the worker); days after it are kept
    # whatever their age, so a clock held back by a lagging topic loses nothing.
    judged_through: date | None = None
    # How far the enterprise's own meter readings reach, per utility, by when they were
    # recorded: [[recorded at (epoch s), last whole local day (ordinal)], ...], both
    # ascending (an upload recorded later that reaches no further adds nothing);
    # ``reach`` merges the entries recorded by the end of the day it closes into the first.
    reaches: dict[str, list] = field(default_factory=dict)

    def __setstate__(self, state):
        self.__dict__.update(state)
        if "reaches" not in state:  # pickled before the reach was kept: its days are all in
            self.reaches = {u: [[0.0, base + len(amounts) - 1]] for u, (base, amounts, *_) in self.days.runs.items()}

    def apply_utility(self, event, tz: ZoneInfo = CITY_TZ) -> tuple[list[tuple[str, date]], int]:
        """Fold a utility event in; returns the (utility, day) keys it touched and how many
        readings were too late to aggregate (older than the retention window).

        A redelivered event (same event_id) changes nothing and touches nothing.  Days that
        fall out of the window are dropped only by ``prune()``, which the caller runs once
        it has read the totals of the days it touched (a batch of uploads can move the
        window by months; the totals of its earlier uploads must still be stored)."""
        digest = event_digest("utility", event.event_id)
        if digest in self.seen:
            return [], 0
        horizon = self._horizon()
        low = horizon.toordinal() if horizon is not None else -1
        touched: dict[int, None] = {}
        too_late = 0
        utility, days = event.utility, self.days
        offset = _fixed_offset(event.readings, tz)
        for reading in event.readings:
            if offset is not None:  # the common case: the reading lies within one local day
                start = (reading.start_ts or reading.start.timestamp()) + offset
                end = (reading.end_ts or reading.end.timestamp()) + offset
                ordinal = int(start // 86400)
                if int(-(-end // 86400)) - 1 == ordinal:  # ends by the next local midnight
                    if ordinal + EPOCH_ORDINAL < low:
                        too_late += 1
                        continue
                    days.add(utility, ordinal + EPOCH_ORDINAL, reading.amount, reading.estimated)
                    touched[ordinal + EPOCH_ORDINAL] = None
                    continue
            for day, amount in split_by_day(reading.start, reading.end, reading.amount, tz):
                ordinal = day.toordinal()
                if ordinal < low:
                    too_late += 1
                    continue
                days.add(utility, ordinal, amount, reading.estimated)
                touched[ordinal] = None
        if touched:
            latest = max(touched)
            last = event.readings[-1]
            if offset is not None:  # the last whole local day it reaches: the day before its end's
                whole = int(((last.end_ts or last.end.timestamp()) + offset) // 86400) + EPOCH_ORDINAL - 1
            else:
                whole = last.end.astimezone(tz).date().toordinal() - 1
            _reached(self.reaches.setdefault(utility, []), event.event_time.timestamp(), whole)
            self.seen.append(digest)
            self.seen_day.append(latest)
            if self.newest_day is None or latest > self.newest_day.toordinal():
                self.newest_day = date.fromordinal(latest)
        return [(utility, date.fromordinal(o)) for o in touched], too_late

    def reach(self, by_day_end: float, by_close: float) -> tuple[dict[str, date], dict[str, date]]:
        """Per utility, the last whole local day reached by the readings recorded by
        ``by_day_end`` and by ``by_close`` (epoch seconds; an upload recorded later does
        not count yet, whenever it was folded in).  The entries recorded by ``by_day_end``
        are merged into one: no later close asks about an earlier time.

        >>> from types import SimpleNamespace as NS
        >>> def upload(event_id, first, days, recorded):
        ...     start = datetime(2024, 4, first, tzinfo=CITY_TZ)
        ...     return NS(kind="utility", event_id=event_id, utility="electricity", event_time=recorded,
        ...               readings=[NS(start=start + k * _DAY, end=start + (k + 1) * _DAY, amount=1.0,
        ...                            estimated=False, start_ts=None, end_ts=None) for k in range(days)])
        >>> state = EnterpriseState()
        >>> _ = state.apply_utility(upload("march", 1, 7, datetime(2024, 4, 8, 1, tzinfo=CITY_TZ)))
        >>> _ = state.apply_utility(upload("april", 8, 23, datetime(2024, 5, 5, tzinfo=CITY_TZ)))
        >>> at = lambda *ymd: datetime(*ymd, tzinfo=CITY_TZ).timestamp()
        >>> state.reach(at(2024, 4, 20), at(2024, 4, 29))
        ({'electricity': datetime.date(2024, 4, 7)}, {'electricity': datetime.date(2024, 4, 7)})
        >>> state.reach(at(2024, 4, 26), at(2024, 5, 6))
        ({'electricity': datetime.date(2024, 4, 7)}, {'electricity': datetime.date(2024, 4, 30)})
        """
        early, late = {}, {}
        for utility, entries in self.reaches.items():
            if len(entries) > 1 and entries[1][0] <= by_day_end:
                n = sum(1 for recorded, _ in entries if recorded <= by_day_end)
                entries[:n] = [[entries[0][0], entries[n - 1][1]]]
            recorded, whole = entries[0]
            if recorded > by_close:
                continue
            reached = date.fromordinal(whole)
            if recorded <= by_day_end:
                early[utility] = reached
            for recorded, last in entries[1:]:
                if recorded > by_close:
                    break
                reached = date.fromordinal(last)
            late[utility] = reached
        return early, late

    def apply_monthly(self, event) -> bool:
        """Keep a tax or social return if it is the latest for its period; True if it was."""
        book = self.tax if event.kind == "tax" else self.social
        at = event.event_time.timestamp()
        current = book.get(event.period)
        if current is not None and current >= at:
            return False
        book[event.period] = at
        if len(book) > RETAIN_MONTHS:
            for period in sorted(book)[: len(book) - RETAIN_MONTHS]:
                del book[period]
        return True

    def apply_registry(self, event) -> bool:
        """Keep the registry profile if it is the latest; True if it was."""
        at = event.event_time.timestamp()
        if self.profile_time is not None and self.profile_time >= at:
            return False
        self.profile = {
            "name": event.name, "industry": event.industry, "town": event.town,
            "status": event.status, "established_on": event.established_on,
            "key_enterprise": event.key_enterprise,
        }
        self.profile_time = at
        return True

    def _horizon(self) -> date | None:
        if self.newest_day is None:
            return None
        horizon = self.newest_day - timedelta(days=RETAIN_DAYS)
        if self.judged_through is not None and self.judged_through < horizon:
            return self.judged_through + timedelta(days=1) if self.judged_through > date.min else None
        return horizon

    def prune(self) -> None:
        """Forget the days (and event digests) that fell out of the retention window."""
        horizon = self._horizon()
        if horizon is None:
            return
        low = horizon.toordinal()
        self.days.drop_before(low)
        if self.seen_day and min(self.seen_day) < low:
            keep = [i for i, day in enumerate(self.seen_day) if day >= low]
            self.seen = array("Q", (self.seen[i] for i in keep))
            self.seen_day = array("i", (self.seen_day[i] for i in keep))


def _reached(entries: list, recorded: float, whole: int) -> None:
    """Add an upload to a utility's reach: entries ascending in both time and day, so the
    latest entry recorded by a time is the furthest reach by then."""
    i = 0
    while i < len(entries) and entries[i][0] < recorded:
        i += 1
    if i and entries[i - 1][1] >= whole:
        return  # recorded earlier than an upload that reaches as far
    j = i
    while j < len(entries) and entries[j][1] <= whole:
        j += 1  # recorded no earlier and reaching no further: this one covers them
    if j < len(entries) and entries[j][0] == recorded:
        return  # recorded at the same time as one that reaches further
    entries[i:j] = [[recorded, whole]]


def _fixed_offset(readings, tz: ZoneInfo) -> float | None:
    """The zone's UTC offset in seconds if it is the same across the readings (no
    daylight-saving change inside the upload), else None."""
    first, last = readings[0].start, readings[-1].end
    a, b = tz.utcoffset(first.replace(tzinfo=None)), tz.utcoffset(last.replace(tzinfo=None))
    return a.total_seconds() if a == b else None

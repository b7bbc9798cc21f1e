"""How the simulated departments deliver: meter-upload schedules, lateness, duplicates.

A meter uploads on one of three **schedules**, drawn once per meter from the city's seed
(``schedule_of``) in the shares of an ``UploadMix``:

- ``daily``: the day's readings, delivered the next night (or every ``upload_every_days``
  days, as one upload);
- ``weekly``: Monday to Sunday in one upload, delivered the night after the Sunday;
- ``monthly``: the calendar month in one upload, delivered a few days after the month.

The readings a schedule has not uploaded yet wait in a ``MeterReadings`` (one per utility and
schedule): a day's rows for exactly the meters on that schedule, as a numpy array.  Memory is
therefore proportional to *meters x days held*: a daily meter holds a day or two, a weekly
one up to 8, a monthly one up to 31 + the delivery delay.  A late or duplicated upload keeps
only its own meter's rows (copied out), not its group's.

>>> UploadMix().daily, UploadMix(1.0, 0.0, 0.0).schedules()
(0.5, ('daily',))
>>> schedule_of(7, 0, "electricity", UploadMix(0.0, 1.0, 0.0))
'weekly'
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Callable, Iterator

import numpy as np

__all__ = ["SCHEDULES", "UploadMix", "schedule_of", "MeterReadings", "Delivery", "delivery_draws", "put",
           "utility_event", "own_rows", "ts", "day_text", "DAY", "SOURCES"]

SCHEDULES = ("daily", "weekly", "monthly")
DAY = 86_400
OFFSET = "+08:00"
SOURCES = {"registry": "dg-amr-registry", "electricity": "csg-dongguan-power", "water": "dg-water",
           "tax": "dg-tax-bureau", "social": "dg-hrss", "complaint": "12315-platform"}
_ID_PREFIX = {"electricity": "el", "water": "wa"}


@dataclass(frozen=True)
class UploadMix:
    """Share of the meters on each upload schedule (they add up to 1)."""

    daily: float = 0.50
    weekly: float = 0.35
    monthly: float = 0.15

    def problems(self) -> list[str]:
        """What is wrong with these shares (empty when they are usable)."""
        shares = (self.daily, self.weekly, self.monthly)
        if any(not 0 <= s <= 1 for s in shares):
            return ["upload shares must be between 0 and 1"]
        if abs(sum(shares) - 1) > 1e-9:
            return [f"upload shares must add up to 1, not {sum(shares):g}"]
        return []

    def schedules(self) -> tuple[str, ...]:
        """The schedules some meter may be on."""
        return tuple(s for s in SCHEDULES if getattr(self, s) > 0)


def schedule_of(seed: int, index: int, utility: str, mix: UploadMix) -> str:
    """The upload schedule of enterprise ``index``'s ``utility`` meter: its own draw, so it does
    not depend on the city's size."""
    u = random.Random(f"{seed}:{index}:{utility}:upload").random()
    if u < mix.daily:
        return "daily"
    return "weekly" if u < mix.daily + mix.weekly else "monthly"


class MeterReadings:
    """The readings the meters of one utility and schedule hold until their next upload."""

    def __init__(self, utility: str, schedule: str, members: np.ndarray):
        self.utility, self.schedule = utility, schedule
        self.members = members                     # enterprise indices, ascending
        self._all = None                           # None: a subset of the city's meters
        self.days: list[tuple[int, np.ndarray, np.ndarray]] = []

    def hold(self, ordinal: int, rows: np.ndarray, estimated: np.ndarray) -> None:
        """Keep a day's rows (one per enterprise of the city) for this group's meters only."""
        if self._all is None:
            self._all = len(self.members) == len(rows)
        if self._all:
            self.days.append((ordinal, rows, estimated))
        else:
            self.days.append((ordinal, rows[self.members], estimated[self.members]))

    def take(self) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """The held days, handed over to the upload that carries them."""
        days, self.days = self.days, []
        return days

    def due(self, day: date, every_days: int, last: bool) -> bool:
        """Whether this schedule uploads after ``day`` (``last``: the range's last day)."""
        if not self.days:
            return False
        if last:
            return True
        if self.schedule == "daily":
            return len(self.days) >= every_days
        if self.schedule == "weekly":
            return day.weekday() == 6
        return (day + timedelta(days=1)).day == 1


class Delivery:
    """Pending deliveries: (deliver at, seq) -> a thunk building the event."""

    def __init__(self) -> None:
        self.heap: list = []
        self.seq = 0
        self.now = 0   # delivery key of the last event handed out

    def put(self, at: int, build: Callable[[], tuple[dict, str]]) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, build))

    def due(self, before: int) -> Iterator[Callable[[], tuple[dict, str]]]:
        heap = self.heap
        while heap and heap[0][0] < before:
            self.now, _, build = heapq.heappop(heap)
            yield build


def delivery_draws(config, rng: np.random.Generator, n: int):
    """Per enterprise: delivered late?, delivered twice?, the lateness (seconds), the second
    copy's delay.  ``very_late_share`` of them come ``very_late_hours`` late instead."""
    late = rng.random(n) < config.late_share
    dup = rng.random(n) < config.duplicate_share
    delay = rng.integers(config.late_hours[0] * 3600, config.late_hours[1] * 3600, n)
    dup_delay = rng.integers(60, 2 * DAY, n)
    if config.very_late_share:
        very = rng.random(n) < config.very_late_share
        late |= very
        delay = np.where(very, rng.integers(config.very_late_hours[0] * 3600, config.very_late_hours[1] * 3600, n),
                         delay)
    return late.tolist(), dup.tolist(), delay.tolist(), dup_delay.tolist()


def put(out: Delivery, when: int, build, draws, i: int, detach=None) -> None:
    """Schedule one event, late and/or twice as drawn.  A late or repeated event must not keep
    its whole group's readings alive while it waits: ``detach()`` gives a thunk holding only its
    own data; without it the event is built now."""
    late, dup, delay, dup_delay = (d[i] for d in draws)
    if not (late or dup):
        out.put(when, build)
        return
    if detach is not None:
        build = detach()
    else:
        obj = build()[0]
        build = lambda: (obj, obj["kind"])  # noqa: E731
    if late:
        when += delay
        out.put(when, lambda: (build()[0], "late"))
    else:
        out.put(when, build)
    if dup:
        out.put(when + dup_delay, lambda: (build()[0], "duplicate"))


def own_rows(batch: list, k: int) -> list:
    """Meter ``k``'s rows of a group's held days, copied out of the group's arrays."""
    return [(o, rows[k:k + 1].copy(), est[k:k + 1].copy()) for o, rows, est in batch]


def utility_event(uscc: str, utility: str, meter: str, batch: list, k: int, arrive: int, t: int,
                  hourly: bool) -> dict:
    """The SPEC §2 utility upload of meter ``k`` of a group, carrying the days of ``batch``."""
    readings = []
    for o, rows, estimated in batch:
        marks = _hour_marks(o, hourly)
        amounts = rows[k].tolist()
        if estimated[k]:
            readings += [{"start": marks[h], "end": marks[h + 1], "amount": a, "estimated": True}
                         for h, a in enumerate(amounts)]
        else:
            readings += [{"start": marks[h], "end": marks[h + 1], "amount": a} for h, a in enumerate(amounts)]
    return {"kind": "utility", "event_id": f"{_ID_PREFIX[utility]}-{uscc}-{_compact(batch[0][0])}",
            "uscc": uscc, "source": SOURCES[utility], "event_time": ts(arrive, t), "schema_version": 1,
            "utility": utility, "unit": "kWh" if utility == "electricity" else "m3", "meter_id": meter,
            "readings": readings}


# -- time as text ---------------------------------------------------------------------------------
@lru_cache(maxsize=128)
def day_text(ordinal: int) -> str:
    return date.fromordinal(ordinal).isoformat()


@lru_cache(maxsize=128)
def _compact(ordinal: int) -> str:
    return day_text(ordinal).replace("-", "")


def ts(ordinal: int, second: int) -> str:
    """RFC 3339 local time (UTC+8) of ``second`` seconds after midnight of a day.

    >>> ts(date(2024, 2, 10).toordinal(), 3 * 3600 + 61)
    '2024-02-10T03:01:01+08:00'
    """
    extra, second = divmod(second, DAY)
    return f"{day_text(ordinal + extra)}T{_clock()[second]}{OFFSET}"


@lru_cache(maxsize=1)
def _clock() -> tuple[str, ...]:
    return tuple(f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60))


@lru_cache(maxsize=1024)
def _hour_marks(ordinal: int, hourly: bool) -> tuple[str, ...]:
    if hourly:
        return tuple(ts(ordinal, h * 3600) for h in range(25))
    return (ts(ordinal, 0), ts(ordinal + 1, 0))

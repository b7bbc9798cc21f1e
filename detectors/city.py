"""A whole city through the one detection driver in one process, over any number of
partitions that share one ``detectors.citywide.CityCohorts`` (the tests and offline
tools; the worker runs the same driver per partition in ``streams.pipeline``).

>>> partition_of("91441900MA00000001", 4) in range(4)
True
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from datetime import date, timedelta
from typing import Iterable
from zoneinfo import ZoneInfo

from detectors.citywide import CityCohorts
from detectors.clock import PartitionClock
from detectors.days import DEFAULT_LATENESS, EventClock
from detectors.partition import PartitionDriver, Published, Tracked
from detectors.record import CITY_TZ
from detectors.thresholds import DEFAULT, Thresholds


def partition_of(uscc: str, partitions: int) -> int:
    """The partition of an enterprise in ``run_events`` (CRC-32 of the USCC; the worker's
    is the Kafka key's murmur2, which the detectors need not know)."""
    return zlib.crc32(uscc.encode()) % partitions


def run_events(events: Iterable, thresholds: Thresholds = DEFAULT, lateness: timedelta = DEFAULT_LATENESS,
               tz: ZoneInfo = CITY_TZ, flush: bool = False, batch: int = 500,
               partitions: int = 1) -> tuple[list[dict], dict[str, dict]]:
    """Validated events (in arrival order) through ``PartitionDriver`` in batches of
    ``batch``, spread over ``partitions`` partitions that share one ``CityCohorts`` (the
    alerts are the same for any number).  At the end of the input every partition follows
    the city's readings all the way; ``flush=True`` also closes the days the lateness would
    still hold open.

    Returns ``(alerts, risk)``: every alert message in publication order, and the latest
    ``monitor.risk`` record per enterprise."""
    city = CityCohorts(idle_lag=lateness, tz=tz, min_members=thresholds.cohort_min_members)
    drivers = [PartitionDriver(thresholds, tz, city, p) for p in range(partitions)]
    clocks = [PartitionClock(EventClock(lateness, tz)) for _ in range(partitions)]
    records: list[dict[str, Tracked]] = [{} for _ in range(partitions)]
    alerts: list[dict] = []
    items = list(enumerate(events))
    last_day = max((e.event_time for _, e in items), default=None)
    for start in range(0, len(items), batch):
        by_partition = defaultdict(list)
        for index, event in items[start:start + batch]:
            by_partition[partition_of(event.uscc, partitions)].append((index, event))
        final = start + batch >= len(items)
        through = last_day.astimezone(tz).date() - timedelta(days=1) if flush and final else None
        alerts += [p.body for p in run_batch(drivers, clocks, records, by_partition, final=final, through=through)]
    at = city.coverage()
    risk = {uscc: tr.risk.to_record(at) for book in records for uscc, tr in book.items()} if at else {}
    return alerts, dict(sorted(risk.items()))


def run_batch(drivers: list[PartitionDriver], clocks: list[PartitionClock], records: list[dict[str, Tracked]],
              by_partition: dict[int, list], final: bool = False, through: date | None = None) -> list[Published]:
    """One batch over partitions that live in this process (``records`` per partition):
    every partition folds its events and reports, then they close days in turn until none
    can close another.  Returns the alert messages."""
    judged = {}
    for p, driver in enumerate(drivers):
        judged[p] = out = driver.judged(clocks[p], records[p].get)
        driver.fold(clocks[p], by_partition.get(p, []), out)
        driver.report(clocks[p])
    progress = True
    while progress:
        progress = False
        for p, driver in enumerate(drivers):
            while driver.close(clocks[p], records[p].keys, judged[p], final=final, through=through):
                progress = True
    alerts = []
    for p, driver in enumerate(drivers):
        driver.finish(clocks[p], judged[p])
        records[p].update(judged[p].records)
        alerts += judged[p].alerts
    return sorted(alerts, key=lambda a: a.index)

"""City-wide peer cohorts (detectors.citywide): the cohort watermark, empty partitions, the
messages of monitor.cohorts, and the same alerts over any number of partitions."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import orjson

from detectors.city import run_events
from detectors.citywide import CityCohorts, PartitionReport
from detectors.cohorts import CohortDelta
from tests.unit.test_detectors_city import build_city

CST = timezone(timedelta(hours=8))
PROFILE = {"industry": "C39", "town": "Humen"}


def reported(city: CityCohorts, partition: int, events: bool = True) -> None:
    first = datetime(2024, 5, 1, tzinfo=CST) if events else None
    city.report(partition, PartitionReport(first, datetime(2024, 5, 20, tzinfo=CST) if events else None,
                                           events=events))


def test_a_day_is_folded_only_once_every_partition_with_enterprises_has_closed_it():
    city = CityCohorts(partitions=3)
    reported(city, 0)
    reported(city, 1)
    assert city.begin(0) is None  # partition 2 has not reported
    reported(city, 2, events=False)  # read to its end, and empty: the city does not wait for it
    start = city.begin(0)
    assert start == date(2024, 4, 30) and city.allowed() == date(2024, 5, 1)
    delta = CohortDelta()
    delta.observe(PROFILE, "m", "e1", 2.0)
    city.contribute(0, date(2024, 5, 1), delta)
    assert city.folded == start and city.allowed() == date(2024, 5, 1)  # partition 1 has not closed it
    assert city.city.stats(PROFILE, "m", min_members=1) is None
    city.contribute(1, date(2024, 5, 1), CohortDelta())
    assert city.folded == date(2024, 5, 1) and city.city.stats(PROFILE, "m", min_members=1).median == 2.0


def test_a_partition_not_read_to_its_end_holds_the_start_back():
    city = CityCohorts(partitions=2)
    reported(city, 0)
    city.report(1, PartitionReport(caught_up=False))  # nothing read yet, but there is input
    assert city.begin(0) is None
    city.report(1, PartitionReport(events=True))      # events read, but a kind not seen yet: first unknown
    assert city.begin(0) is None


def test_another_copy_built_from_the_messages_folds_the_same_cohorts_and_ignores_its_own():
    city = CityCohorts(partitions=2, publish=True)
    reported(city, 0)
    reported(city, 1)
    city.begin(0)
    for day in (date(2024, 5, 1), date(2024, 5, 2)):
        for partition in (0, 1):
            delta = CohortDelta()
            delta.observe(PROFILE, "m", f"e{partition}", float(day.day + partition))
            delta.record_day(PROFILE, "electricity", day, partition == 0)
            city.contribute(partition, day, delta)
    copy = CityCohorts(partitions=2)
    for key, body in city.outbox:
        copy.receive(key, orjson.loads(orjson.dumps(body)))
    assert copy.folded == city.folded == date(2024, 5, 2)
    assert copy.city.stats(PROFILE, "m", min_members=1) == city.city.stats(PROFILE, "m", min_members=1)
    assert copy.city.low_share(PROFILE, "electricity", date(2024, 5, 2), 2) == 0.5
    assert city.receive(*city.outbox[-1]) is False  # its own message, read back


def test_a_worker_that_dies_between_a_contribution_and_its_report_closes_the_day_again_on_the_same_cohorts():
    """The worker publishes a day's contribution, stores the partition's state, then reports
    the day closed (streams/app.py).  Killed after the contribution, the day must not be
    folded anywhere: the partition closes it again from its stored state, and must read the
    cohorts as of the end of the day before, as the first time."""
    may1, may2 = date(2024, 5, 1), date(2024, 5, 2)
    topic: list[tuple[str, bytes]] = []

    def worker(partition: int) -> CityCohorts:
        city = CityCohorts(partitions=2, publish=True)
        for key, body in topic:
            city.receive(key, orjson.loads(body))
        reported(city, partition)
        return city

    def publish(city: CityCohorts, kinds=("clock/", "day/")) -> None:
        topic.extend((key, orjson.dumps(body)) for key, body in city.outbox if key.startswith(kinds))
        city.outbox.clear()

    a, b = worker(0), worker(1)
    publish(a), publish(b)
    for city in (a, b):
        for key, body in topic:
            city.receive(key, orjson.loads(body))
        assert city.begin(0) == date(2024, 4, 30)
    delta = CohortDelta()
    delta.record_day(PROFILE, "electricity", may1, True)
    b.contribute(1, may1, CohortDelta())
    publish(b)
    a.contribute(0, may1, delta)
    publish(a, kinds=("day/",))  # ... and the worker of partition 0 dies before its state is stored
    del a
    for key, body in topic:
        b.receive(key, orjson.loads(body))
    assert b.folded == date(2024, 4, 30) and b.allowed() == may1  # partition 1 may not close 2 May

    restarted = worker(0)  # its stored state: closed through 30 April
    assert restarted.folded == date(2024, 4, 30)  # 1 May is not folded: the cohorts of the first close
    restarted.contribute(0, may1, delta)
    publish(restarted)
    for key, body in topic:
        b.receive(key, orjson.loads(body))
    assert b.folded == restarted.folded == may1 and b.allowed() == may2
    assert b.city.low_share(PROFILE, "electricity", may1, 1) == restarted.city.low_share(
        PROFILE, "electricity", may1, 1) == 1.0  # partition 0's contribution, once


def test_a_contribution_carries_the_report_of_before_it_for_workers_of_the_previous_version():
    city = CityCohorts(partitions=1, publish=True)
    reported(city, 0)
    start = city.begin(0)  # the driver then reports its clock at the start
    city.report(0, PartitionReport(datetime(2024, 5, 1, tzinfo=CST), datetime(2024, 5, 20, tzinfo=CST), start, True))
    city.contribute(0, date(2024, 5, 1), CohortDelta())
    day = next(body for key, body in city.outbox if key.startswith("day/"))
    clock = [body for key, body in city.outbox if key.startswith("clock/")][-1]
    # an older worker reads body["report"] of every message: there is one, and it does not
    # say the day is closed (only the report sent after the state does)
    assert day["report"]["closed_through"] == "2024-04-30" and clock["report"]["closed_through"] == "2024-05-01"


def test_a_report_that_arrives_before_the_contribution_it_follows_waits_for_it():
    city = CityCohorts(partitions=2)
    reported(city, 0)
    reported(city, 1)
    city.begin(0)
    city.contribute(0, date(2024, 5, 1), CohortDelta())
    city.receive("clock/1", {"partition": 1, "report": PartitionReport(
        datetime(2024, 5, 1, tzinfo=CST), datetime(2024, 5, 20, tzinfo=CST), date(2024, 5, 1), True).to_message()})
    assert city.folded == date(2024, 4, 30)  # monitor.cohorts has partitions: the order is not given
    city.receive("day/2024-05-01/1", {"partition": 1, "day": "2024-05-01", "delta": CohortDelta().to_message()})
    assert city.folded == date(2024, 5, 1)


def test_run_events_gives_the_same_alerts_and_risk_over_1_3_and_8_partitions():
    events = build_city(n=24, anomalies={3: ("drop", date(2024, 4, 15)), 5: ("zero", date(2024, 1, 1))})
    one = run_events(events, flush=True)
    assert one[0]
    for partitions in (3, 8):
        alerts, risk = run_events(events, flush=True, partitions=partitions)
        assert sorted(map(orjson.dumps, alerts)) == sorted(map(orjson.dumps, one[0])) and risk == one[1]

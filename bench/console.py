"""Console benchmark: the server time of the supervision list, the alert inbox, the
enterprise page and the case page with 100,000 enterprises and 1,000,000 alerts in a private
clickhouse-server 18.16, read as ``entwatch_reader`` through the typed read API (the
``console`` service's setup).  Each page is requested in process (FastAPI's test client), so
the time is the console's and storage's, without a browser.

    .venv/bin/python bench/console.py [--enterprises 100000] [--alerts 1000000] [--requests 40] [--before REV]

``--before REV`` first runs the same benchmark as it was at commit REV (``git archive`` into a
temporary directory: its code, its schema, its queries) on the same machine, and keeps its
figures beside this run's under ``before``.

Daily utility totals (two utilities, 365 days) are stored for 1,000 enterprises only, the ones
the enterprise page is asked for.  Prints one line per page and writes bench/results/console.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from console.app import create_app  # noqa: E402
from console.store import CaseStore  # noqa: E402
from detectors.findings import RULES, SEVERITIES  # noqa: E402
from streams.readapi import StorageReader  # noqa: E402
from streams.readsession import ServerSession  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.storage import TABLES, ServerStorage, apply_schema  # noqa: E402
from streams.uscc import make_uscc  # noqa: E402
from tests.services import ClickHouseServer  # noqa: E402

USERS = ROOT / "deploy" / "clickhouse" / "users.d" / "entwatch-users.xml"
PASSWORDS = {"CLICKHOUSE_WRITER_PASSWORD": "writer-bench", "CLICKHOUSE_READER_PASSWORD": "reader-bench",
             "CLICKHOUSE_GRAFANA_PASSWORD": "grafana-bench"}
TOWNS = [f"{n}镇" for n in ("虎门", "长安", "厚街", "塘厦", "常平", "樟木头", "清溪", "凤岗", "大朗", "石龙")] + \
        [f"街道{i}" for i in range(23)]
INDUSTRIES = [f"C{i}" for i in range(13, 43)]
CHUNK = 100_000


def insert(client, table: str, rows) -> None:
    client.execute(f"INSERT INTO entwatch.{table} ({', '.join(TABLES[table])}) VALUES", rows)


def fill(client, enterprises: int, alerts: int, metered: int, rng: random.Random) -> tuple[list, list]:
    now = datetime(2024, 12, 31, tzinfo=timezone.utc)
    codes = [make_uscc(f"91441900MA{i:07d}") for i in range(enterprises)]
    towns = [rng.choice(TOWNS) for _ in codes]
    names = [f"东莞市企业{i:06d}有限公司" for i in range(enterprises)]
    industries = [rng.choice(INDUSTRIES) for _ in codes]
    insert(client, "enterprises", [(u, names[i], industries[i], towns[i], 1e6, date(2010, 1, 1), "active", 0, now)
                                   for i, u in enumerate(codes)])
    risk = []
    for u in codes:
        score = min(100.0, rng.expovariate(1 / 20))
        risk.append((u, score, "high" if score >= 60 else "low", rng.sample(RULES, 2) if score >= 60 else [], now, 1))
    insert(client, "risk", risk)
    ids, sampled = [], set(codes[:metered])
    for start in range(0, alerts, CHUNK):
        batch = []
        for n in range(start, min(start + CHUNK, alerts)):
            i = rng.randrange(enterprises)
            end = date(2024, 1, 1) + timedelta(days=rng.randrange(360))
            batch.append((f"alert-{n:07d}", codes[i], names[i], industries[i], towns[i], rng.choice(RULES),
                          rng.choice(SEVERITIES), "open" if rng.random() < 0.3 else "resolved", end - timedelta(days=7),
                          end, datetime.combine(end, datetime.min.time(), timezone.utc) + timedelta(hours=9),
                          5.0, 10.0, 100.0, '[{"metric": "daily_kwh", "value": 10.0, "baseline": 100.0}]',
                          "用电量骤降", "electricity fell", 1))
        insert(client, "alerts", batch)
        ids.extend(b[0] for b in batch if b[1] in sampled and b[7] == "open")
    rows = [(u, utility, date(2024, 1, 1) + timedelta(days=d), 100.0 + d % 7, 24, 0, 24)
            for u in codes[:metered] for utility in ("electricity", "water") for d in range(365)]
    for start in range(0, len(rows), CHUNK):
        insert(client, "utility_daily", rows[start:start + CHUNK])
    return codes, ids


def measure(client, path: str, requests: int) -> dict:
    """Server time of ``requests`` GETs (after one warm-up), in milliseconds."""
    paths = [path] * (requests + 1) if isinstance(path, str) else path
    times = []
    for p in paths:
        t = time.perf_counter()
        answer = client.get(p)
        times.append((time.perf_counter() - t) * 1000)
        assert answer.status_code == 200, (p, answer.status_code, answer.text[:300])
    times = sorted(times[1:])
    return {"requests": len(times), "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1), "max_ms": round(times[-1], 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--enterprises", type=int, default=100_000)
    ap.add_argument("--alerts", type=int, default=1_000_000)
    ap.add_argument("--metered", type=int, default=1_000, help="enterprises with daily utility totals")
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--before", metavar="REV", help="run the benchmark of commit REV first, for comparison")
    args = ap.parse_args()
    before = run_before(args) if args.before else None
    rng = random.Random(17)
    os.environ.update(PASSWORDS)
    server = ClickHouseServer()
    (server.dir / "users.d").mkdir()
    shutil.copy(USERS, server.dir / "users.d" / USERS.name)
    server.start()
    try:
        apply_schema(ServerStorage(server.url))
        from clickhouse_driver import Client

        started = time.perf_counter()
        codes, open_alerts = fill(Client("127.0.0.1", port=server.tcp_port), args.enterprises, args.alerts,
                                  args.metered, rng)
        loaded = time.perf_counter() - started
        settings = Settings(storage_url=server.url, reader_password=PASSWORDS["CLICKHOUSE_READER_PASSWORD"])
        store = CaseStore("sqlite://")
        store.add_user("bench", "bench password", "analyst")
        from fastapi.testclient import TestClient

        client = TestClient(create_app(StorageReader(ServerSession.for_settings(settings)), store))
        token = client.get("/login").text.split('name="csrf" value="')[1].split('"')[0]
        client.post("/login", data={"user": "bench", "password": "bench password", "csrf": token})
        n = args.requests
        pages = {
            "supervision list": "/supervision",
            "supervision list, one town": f"/supervision?town={TOWNS[0]}",
            "supervision list, rule and severity": f"/supervision?rule={RULES[0]}&severity=critical",
            "alert inbox (200 newest open)": "/inbox",
            "alert inbox rows (the refresh)": "/inbox/rows",
            "alert inbox, one town and one rule": f"/inbox?town={TOWNS[0]}&rule={RULES[0]}",
            "enterprise page": [f"/enterprise/{rng.choice(codes[:args.metered])}" for _ in range(n + 1)],
            "case page": [f"/cases/{rng.choice(open_alerts)}" for _ in range(n + 1)],
        }
        results = {"enterprises": args.enterprises, "alerts": args.alerts, "metered": args.metered,
                   "load_seconds": round(loaded, 1), "storage": "clickhouse-server 18.16 (entwatch_reader)",
                   "machine": "2 cores", "pages": {}}
        for name, path in pages.items():
            results["pages"][name] = figures = measure(client, path, n)
            print(f"{name:<40} p50 {figures['p50_ms']:>7.1f} ms   p95 {figures['p95_ms']:>7.1f} ms   "
                  f"max {figures['max_ms']:>7.1f} ms", flush=True)
    finally:
        server.stop()
    if before:
        results["before"] = before
        for name, figures in results["pages"].items():
            old = before["pages"].get(name) or before["pages"].get(name.replace(" (the refresh)", " (each refresh)"))
            if old:
                print(f"{name:<40} p95 {old['p95_ms']:>7.1f} ms at {before['commit'][:7]} -> {figures['p95_ms']:>7.1f} ms")
    out = ROOT / "bench" / "results" / "console.json"
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"loaded in {results['load_seconds']} s; wrote {out}")


def run_before(args) -> dict:
    """The figures of this benchmark as it was at ``args.before`` (its own code and schema)."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", args.before], check=True, capture_output=True,
                            text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="entwatch-bench-before-") as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        print(f"the benchmark at {commit[:7]}:", flush=True)
        subprocess.run([sys.executable, str(Path(tmp) / "bench" / "console.py"), "--enterprises", str(args.enterprises),
                        "--alerts", str(args.alerts), "--metered", str(args.metered), "--requests", str(args.requests)],
                       check=True, env={**os.environ, "ENTWATCH_SCHEMA_FILE": str(Path(tmp) / "deploy" / "clickhouse" /
                                                                                    "schema.sql")})
        before = json.loads((Path(tmp) / "bench" / "results" / "console.json").read_text())
    before["commit"] = commit
    print("this tree:", flush=True)
    return before


if __name__ == "__main__":
    main()

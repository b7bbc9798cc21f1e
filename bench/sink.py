"""Sink benchmark: rows/s into ClickHouse through entwatch's storage layer vs a bare
clickhouse-driver bulk insert of the same rows (server 18.16), and the same for chDB vs a
bare chDB ``INSERT … FORMAT JSONEachRow``.  Both sides run in the same process, alternated,
best of N, so the ratio is fair on a noisy machine.

    .venv/bin/python bench/sink.py [--rows 200000] [--repeat 3]

Prints one line per backend and writes bench/results/sink.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.storage import TABLES, EmbeddedStorage, ServerStorage, apply_schema  # noqa: E402
from streams.uscc import make_uscc  # noqa: E402
from tests.services import ClickHouseServer  # noqa: E402


def rows(n: int) -> list[dict]:
    start = date(2024, 1, 1)
    return [{"uscc": make_uscc(f"91441900MA{i % 5000:07d}"), "utility": "electricity",
             "day": start + timedelta(days=i // 5000), "amount": 100.0 + i % 97, "readings": 24,
             "estimated": 0, "version": 24} for i in range(n)]


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    data = rows(args.rows)
    columns = TABLES["utility_daily"]
    results = {"rows": args.rows, "repeat": args.repeat, "machine": "2 cores", "backends": {}}

    server = ClickHouseServer().start()
    try:
        storage = ServerStorage(server.url)
        apply_schema(storage)
        from clickhouse_driver import Client

        bare = Client("127.0.0.1", port=server.tcp_port)
        tuples = [tuple(r[c] for c in columns) for r in data]
        sql = f"INSERT INTO entwatch.utility_daily ({', '.join(columns)}) VALUES"
        ours = best(lambda: storage.insert("utility_daily", data), args.repeat)
        base = best(lambda: bare.execute(sql, tuples), args.repeat)
        results["backends"]["clickhouse-server"] = _figures(args.rows, ours, base)
    finally:
        server.stop()

    with tempfile.TemporaryDirectory() as tmp:
        storage = EmbeddedStorage(tmp)
        apply_schema(storage)
        import orjson

        def bare_chdb():
            body = b"\n".join(map(orjson.dumps, data)).decode()
            storage._conn.query(f"INSERT INTO entwatch.utility_daily FORMAT JSONEachRow\n{body}")

        ours = best(lambda: storage.insert("utility_daily", data), args.repeat)
        base = best(bare_chdb, args.repeat)
        results["backends"]["chdb"] = _figures(args.rows, ours, base)
        storage.close()

    out = ROOT / "bench" / "results" / "sink.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    for name, f in results["backends"].items():
        print(f"sink {name}: entwatch {f['entwatch_rows_per_s']:,.0f} rows/s, bare {f['bare_rows_per_s']:,.0f} rows/s, "
              f"ratio {f['ratio']:.2f}")


def _figures(n: int, ours: float, base: float) -> dict:
    return {"entwatch_rows_per_s": n / ours, "bare_rows_per_s": n / base, "ratio": base / ours}


if __name__ == "__main__":
    main()

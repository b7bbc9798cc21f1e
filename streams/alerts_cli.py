"""``entwatch alerts``: the open alerts, as a table or JSON Lines, optionally followed.

Alerts are read from storage (the ``alerts`` table, latest revision of each alert):
directly from a ClickHouse server when the storage URL is ``clickhouse://``, otherwise
through the running worker's ``/query`` endpoint (embedded chDB belongs to the worker
process).  ``--json`` prints SPEC §5 alert messages, one per line.
"""

from __future__ import annotations

import json
import re
import time

from detectors.findings import RULES, SEVERITIES

COLUMNS = ("alert_id", "uscc", "enterprise_name", "industry", "town", "rule", "severity", "status",
           "window_start", "window_end", "detected_at", "score", "observed", "expected", "evidence",
           "explanation_zh", "explanation_en", "revision")
TOWN = re.compile(r"^[^'\\]{1,64}$")


def add_arguments(parser) -> None:
    parser.add_argument("--rule", choices=RULES, help="only this rule")
    parser.add_argument("--severity", choices=SEVERITIES, help="only this severity or higher")
    parser.add_argument("--town", help="only enterprises of this town")
    parser.add_argument("--uscc", help="only this enterprise")
    parser.add_argument("--all", action="store_true", help="resolved alerts too")
    parser.add_argument("--limit", type=int, default=200, help="at most this many (newest first; default 200)")
    parser.add_argument("--json", action="store_true", help="JSON Lines (SPEC §5 alert messages) instead of a table")
    parser.add_argument("--lang", choices=("zh", "en"), default="zh", help="language of explanations (default zh)")
    parser.add_argument("--follow", action="store_true", help="keep printing alerts as they open, change or resolve")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between polls with --follow")
    parser.add_argument("--storage", help="clickhouse://user:pass@host:9000/db (default ENTWATCH_STORAGE_URL)")
    parser.add_argument("--worker", help="worker web address for embedded storage (default http://127.0.0.1:PORT)")


def build_query(args, follow: bool = False) -> str:
    """The SQL for the alerts the filters select (values are checked, never interpolated raw).

    ``follow``: every status, the most recently active conditions first (what a poll of
    ``--follow`` compares with what it printed)."""
    from streams.errors import UserError
    from streams.uscc import uscc_problem

    where = [] if args.all or follow else ["status = 'open'"]
    if args.rule:
        where.append(f"rule = '{args.rule}'")
    if args.severity:
        levels = ", ".join(f"'{s}'" for s in SEVERITIES[SEVERITIES.index(args.severity):])
        where.append(f"severity IN ({levels})")
    if args.town:
        if not TOWN.match(args.town):
            raise UserError("--town: give a town name without quotes or backslashes")
        where.append(f"town = '{args.town}'")
    if args.uscc:
        problem = uscc_problem(args.uscc)
        if problem:
            raise UserError(f"--uscc {args.uscc}: {problem}; give an 18-character USCC")
        where.append(f"uscc = '{args.uscc}'")
    if args.limit < 1:
        raise UserError("--limit must be at least 1")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    select = ", ".join(f"toString({c}) AS {c}" if c in ("window_start", "window_end", "detected_at") else c
                       for c in COLUMNS)
    order = "window_end DESC, detected_at DESC" if follow else "detected_at DESC"
    return f"SELECT {select} FROM alerts FINAL{clause} ORDER BY {order}, alert_id LIMIT {int(args.limit)}"


def to_message(row: dict) -> dict:
    """A stored row back as its SPEC §5 alert message."""
    evidence = row["evidence"]
    return {
        "alert_id": row["alert_id"], "uscc": row["uscc"], "enterprise_name": row["enterprise_name"],
        "industry": row["industry"], "town": row["town"], "rule": row["rule"], "severity": row["severity"],
        "status": row["status"], "window_start": row["window_start"], "window_end": row["window_end"],
        "detected_at": row["detected_at"].replace(" ", "T") + ("Z" if "Z" not in row["detected_at"] else ""),
        "score": row["score"], "observed": row["observed"], "expected": row["expected"],
        "evidence": json.loads(evidence) if isinstance(evidence, str) else evidence,
        "explanation": {"zh": row["explanation_zh"], "en": row["explanation_en"]},
        "schema_version": 1,
    }


class Reader:
    """Runs a read-only query against the configured storage or the worker."""

    def __init__(self, args):
        from streams.cli import load_settings

        settings = load_settings(storage_url=args.storage)
        self.storage = None
        url = settings.effective_storage_url()
        self.where = args.worker or f"http://127.0.0.1:{settings.metrics_port}"
        if args.storage or (url.startswith("clickhouse://") and not args.worker):
            from streams.storage import open_storage
            password = settings.storage_password.get_secret_value() if settings.storage_password else None
            self.storage = open_storage(url, password)
            self.where = url.split("@")[-1]

    def rows(self, sql: str) -> list[dict]:
        from streams.cli import query_worker
        from streams.errors import UserError

        if self.storage is None:
            try:
                return query_worker(self.where, sql)
            except OSError as exc:
                raise UserError(f"no worker answers at {self.where} ({getattr(exc, 'reason', exc)}); start `entwatch up`, or pass "
                                "--worker URL or --storage clickhouse://…") from None
        try:
            self.storage.use_database()
            return self.storage.query(sql)
        except Exception as exc:
            raise UserError(f"cannot read alerts from {self.where} ({str(exc).splitlines()[0][:200]}); "
                            "is the storage URL right and has a worker applied the schema?") from None


def command(args) -> int:
    reader = Reader(args)
    rows = reader.rows(build_query(args))
    if args.json:
        for row in reversed(rows):
            print(json.dumps(to_message(row), ensure_ascii=False), flush=True)
    else:
        print_table(rows, args.lang)
    if not args.follow:
        return 0
    printed = {r["alert_id"]: int(r["revision"]) for r in rows}
    while True:  # until Ctrl-C
        time.sleep(args.interval)
        polled = reader.rows(build_query(args, follow=True))
        fresh = sorted((r for r in polled if printed.get(r["alert_id"]) != int(r["revision"])),
                       key=lambda r: (r["window_end"], r["detected_at"], r["alert_id"]))
        for row in fresh:
            printed[row["alert_id"]] = int(row["revision"])
            print(json.dumps(to_message(row), ensure_ascii=False) if args.json else line(row, args.lang), flush=True)


def line(row: dict, lang: str) -> str:
    return (f"{row['detected_at'][:16]}  {row['status']:<8} {row['severity']:<8} {row['rule']:<22} "
            f"{row['uscc']}  {row['enterprise_name']}  {row['explanation_' + lang]}")


def print_table(rows: list[dict], lang: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not rows:
        console.print("no alerts match (the worker may still be catching up: see entwatch_consumer_lag)")
        return
    zh = lang == "zh"
    table = Table(show_lines=False, title=f"{len(rows)} alerts" if not zh else f"共 {len(rows)} 条告警")
    for name in (("检测时间", "规则", "级别", "状态", "统一社会信用代码", "企业", "镇街", "期间", "说明") if zh else
                 ("detected", "rule", "severity", "status", "USCC", "enterprise", "town", "period", "explanation")):
        table.add_column(name, overflow="fold")
    for r in rows:
        table.add_row(r["detected_at"][:16], r["rule"], r["severity"], r["status"], r["uscc"], r["enterprise_name"],
                      r["town"], f"{r['window_start']}…{r['window_end']}", r["explanation_" + lang])
    console.print(table)

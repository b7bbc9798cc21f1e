"""``entwatch alerts``: the open alerts, as a table or JSON Lines, optionally followed.

Alerts are read with the typed read API's ``alerts`` query (``streams.readapi``): directly
from a ClickHouse server as the read-only user when the storage URL is ``clickhouse://``,
otherwise through the running worker's ``GET /read/alerts`` with its API token (embedded
chDB belongs to the worker process).  ``--json`` prints SPEC §5 alert messages, one per line.
"""

from __future__ import annotations

import json
import time

from detectors.findings import RULES, SEVERITIES
from streams.errors import UserError
from streams.readapi import ReadError, bind, open_reader, worker_url
from streams.readparams import ParamError


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
    parser.add_argument("--storage", help="clickhouse://host:9000/db, read as ENTWATCH_READER_USER "
                                          "(default ENTWATCH_STORAGE_URL)")
    parser.add_argument("--worker", help="worker web address for embedded storage (default http://127.0.0.1:PORT); "
                                         "its token: ENTWATCH_API_TOKEN or the data dir's api-token file")


def alert_params(args, follow: bool = False) -> dict:
    """The ``alerts`` query's parameters for the command's filters (checked here, so that a
    bad filter is a one-line error before anything is read).

    ``follow``: every status, the most recently active conditions first (what a poll of
    ``--follow`` compares with what it printed)."""
    params = {"status": None if args.all or follow else "open", "rule": args.rule, "severity": args.severity,
              "town": args.town, "uscc": args.uscc, "limit": args.limit, "order": "window" if follow else "detected"}
    params = {k: v for k, v in params.items() if v is not None}
    try:
        bind("alerts", params)
    except ParamError as exc:
        raise UserError(f"--{exc.param}: {str(exc).split(': ', 1)[-1]}") from None
    return params


class AlertSource:
    """The configured reader, with errors a person can act on."""

    def __init__(self, args):
        from streams.cli import load_settings

        settings = load_settings(storage_url=args.storage)
        self.where = args.worker or worker_url(settings)
        try:
            self.reader = open_reader(settings, worker=args.worker)
        except ReadError as exc:
            raise UserError(f"{exc} (worker {self.where})") from None
        if hasattr(self.reader, "session"):
            self.where = self.reader.session.where

    def rows(self, params: dict) -> list[dict]:
        try:
            return self.reader.read("alerts", **params)
        except OSError as exc:
            raise UserError(f"no worker answers at {self.where} ({getattr(exc, 'reason', exc)}); start `entwatch up`, "
                            "or pass --worker URL or --storage clickhouse://…") from None
        except ReadError as exc:
            raise UserError(f"cannot read alerts from {self.where}: {exc}") from None
        except Exception as exc:  # the server refused: login, missing schema
            raise UserError(f"cannot read alerts from {self.where} ({str(exc).strip().splitlines()[0][:200]}); "
                            "is the storage URL right, ENTWATCH_READER_PASSWORD set, and has a worker applied the "
                            "schema?") from None


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


def command(args) -> int:
    params = alert_params(args)
    source = AlertSource(args)
    rows = source.rows(params)
    if args.json:
        for row in reversed(rows):
            print(json.dumps(to_message(row), ensure_ascii=False), flush=True)
    else:
        print_table(rows, args.lang)
    if not args.follow:
        return 0
    printed = {r["alert_id"]: int(r["revision"]) for r in rows}
    polled_params = alert_params(args, follow=True)
    while True:  # until Ctrl-C
        time.sleep(args.interval)
        polled = source.rows(polled_params)
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

"""Reading the provisioned Grafana dashboards and Prometheus rules: their queries, with
Grafana's macros and variables replaced by concrete values so a real Prometheus or
ClickHouse can run them."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]
DEPLOY = ROOT / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources"
RULES = DEPLOY / "prometheus" / "rules.yml"


def dashboard(name: str) -> dict:
    return json.loads((DEPLOY / "grafana" / "dashboards" / name).read_text(encoding="utf-8"))


def panels(dash: dict) -> list[dict]:
    """Every panel, rows' nested panels included."""
    out = []
    for p in dash.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def targets(dash: dict) -> list[tuple[dict, dict]]:
    """(panel, target) for every query of every panel."""
    return [(p, t) for p in panels(dash) for t in p.get("targets", [])]


def datasource_uids() -> dict[str, str]:
    """uid -> type of every provisioned datasource."""
    uids = {}
    for path in DATASOURCES.glob("*.y*ml"):
        for ds in yaml.safe_load(path.read_text())["datasources"]:
            uids[ds["uid"]] = ds["type"]
    return uids


def promql_queries() -> list[tuple[str, str]]:
    """(where, expression) for every PromQL expression in the dashboards and the rules."""
    out = []
    for path in DASHBOARDS:
        dash = json.loads(path.read_text(encoding="utf-8"))
        for panel, target in targets(dash):
            if target.get("datasource", panel.get("datasource", {})).get("type") == "prometheus":
                out.append((f"{path.name}: {panel['title']}", target["expr"]))
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            out.append((f"rules.yml: {rule.get('alert') or rule.get('record')}", rule["expr"]))
    return out


def sql_queries(dash: dict) -> list[tuple[str, str]]:
    """(where, SQL) for every ClickHouse query of a dashboard: panels and variables."""
    out = [(p["title"], t["rawSql"]) for p, t in targets(dash)
           if t.get("datasource", p.get("datasource", {})).get("type") == "grafana-clickhouse-datasource"]
    for var in dash.get("templating", {}).get("list", []):
        if var.get("datasource", {}).get("type") == "grafana-clickhouse-datasource":
            out.append((f"variable {var['name']}", var["query"]))
    return out


def grafana_promql(expr: str, rate_interval: str = "10s", range_: str = "5m") -> str:
    """What Grafana sends to Prometheus for an expression with its interval macros."""
    return (expr.replace("$__rate_interval", rate_interval).replace("$__interval", rate_interval)
            .replace("$__range", range_))


def grafana_sql(sql: str, variables: dict[str, str], start: datetime, end: datetime) -> str:
    """What the ClickHouse plugin sends for SQL with macros: the expansions follow
    grafana-clickhouse-datasource's (``$__timeFilter(c)`` -> ``c >= toDateTime(<s>) AND c <= toDateTime(<s>)``)."""
    s, e = int(start.replace(tzinfo=timezone.utc).timestamp()), int(end.replace(tzinfo=timezone.utc).timestamp())
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 >= toDateTime({s}) AND \1 <= toDateTime({e})", sql)
    sql = re.sub(r"\$__dateFilter\((\w+)\)",
                 rf"\1 >= toDate('{start:%Y-%m-%d}') AND \1 <= toDate('{end:%Y-%m-%d}')", sql)
    sql = sql.replace("$__fromTime", f"toDateTime({s})").replace("$__toTime", f"toDateTime({e})")
    for name, value in variables.items():
        sql = sql.replace("${" + name + "}", value).replace("$" + name, value)
    assert "$" not in sql, f"a Grafana macro or variable the test does not know: {sql}"
    return sql

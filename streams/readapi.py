"""The typed read API: named queries written here, parameters checked, never SQL from a client.

Everything that reads storage for a person or another command — ``entwatch alerts``,
``entwatch demo``, ``entwatch reconcile``, the worker's ``GET /read/<name>`` — asks for a
named query with parameters.  Each parameter is parsed by its type
(``streams.readparams``) and reaches ClickHouse as a bound query parameter (chDB) or as a
literal from the one escape function (ClickHouse 18.16 has no query parameters).  Tables,
columns and the shape of every query are the code's; a client chooses only values.

>>> bound = bind("alerts", {"uscc": "914403001922038216", "limit": "20"})
>>> bound.values["uscc"], bound.values["limit"]
('914403001922038216', 20)
>>> bind("alerts", {"rule": "utility_drop' OR 1=1 --"})
Traceback (most recent call last):
...
streams.readparams.ParamError: rule: must be one of utility_drop, utility_spike, dormant_entity, tax_zero_streak, tax_sales_drop, sales_energy_mismatch, headcount_drop, complaint_burst

Two readers answer ``read(name, **params)``: ``StorageReader`` (a read-only storage
session, ``streams.readsession``: the ``entwatch_reader`` ClickHouse user, or a read-only
chDB session inside the worker) and ``WorkerReader`` (the worker's HTTP API,
token-protected).  ``open_reader`` picks one from the settings.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Callable, Mapping, Protocol

from detectors.findings import RULES, SEVERITIES
from streams.contracts import KINDS, UTILITY_UNITS
from streams.readparams import PLACEHOLDER, Choice, Count, Day, Instant, Number, ParamError, Text, Uscc, UsccBound
from streams.readsession import ReadError, ServerSession

MONTHLY = ("tax", "social")


class UnknownQuery(LookupError):
    """No named query has this name."""


@dataclass(frozen=True)
class NamedQuery:
    """A query written here: SQL with ``{name:Type}`` placeholders and a ``{where}`` marker
    (in a subquery, so that formatted result columns never shadow the filtered ones).

    ``filters`` are the conditions a parameter adds to ``WHERE`` when it is given;
    ``prewhere`` those it adds to ``PREWHERE`` (the ``{prewhere}`` marker, after ``FINAL``):
    only conditions on sorting-key columns, which every version of a row shares, so that
    filtering before ``FINAL`` picks the latest version is still exact; ``sql``
    may be a mapping from the value of the ``by`` parameter (a table per kind); ``checks``
    relate parameters to each other (a range's ends in order)."""

    doc: str
    sql: str | Mapping[str, str]
    params: Mapping[str, Any]
    required: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    filters: Mapping[str, str] = field(default_factory=dict)
    prewhere: Mapping[str, str] = field(default_factory=dict)
    by: str | None = None
    checks: tuple[Callable[[dict], ParamError | None], ...] = ()


@dataclass(frozen=True)
class Bound:
    """A named query ready to run: its SQL (placeholders left in) and the parsed values."""

    name: str
    sql: str
    values: dict[str, Any]


def _in_order(low: str, high: str, most: int | None = None) -> Callable[[dict], ParamError | None]:
    def check(values: dict) -> ParamError | None:
        if values[low] > values[high]:
            return ParamError(high, f"must not come before {low}")
        if most is not None and (values[high] - values[low]).days > most:
            return ParamError(high, f"at most {most} days after {low}")
        return None
    return check


_ALERT_COLUMNS = ("alert_id, uscc, enterprise_name, industry, town, rule, severity, status, "
                  "toString(window_start) AS window_start, toString(window_end) AS window_end, "
                  "toString(detected_at) AS detected_at, score, observed, expected, evidence, "
                  "explanation_zh, explanation_en, revision")
# What the inbox shows of an alert (not its evidence nor its numbers: the case page has them),
# so that the months it reads are read narrow.
_INBOX_COLUMNS = ("alert_id, uscc, enterprise_name, industry, town, rule, severity, status, "
                  "toString(window_start) AS window_start, toString(window_end) AS window_end, "
                  "toString(detected_at) AS detected_at, explanation_zh, explanation_en, revision")
_SEVERITY_RANK = f"[{', '.join(repr(s) for s in SEVERITIES)}]"
_MONTHLY_COLUMNS = {"tax": "declared_sales_cny, tax_paid_cny", "social": "insured_headcount, contributions_cny"}
_RANGE = {"first_uscc": "uscc >= {first_uscc:String}", "last_uscc": "uscc <= {last_uscc:String}"}


def _monthly(kind: str, order: str) -> str:
    return (f"SELECT uscc, toString(period) AS period, {_MONTHLY_COLUMNS[kind]}, event_id, "
            f"toString(event_time) AS event_time FROM (SELECT * FROM {kind}_monthly FINAL {{where}}) ORDER BY {order}")


QUERIES: dict[str, NamedQuery] = {
    "alerts": NamedQuery(
        "Alerts (latest revision), newest first or (order=window) most recently active first; "
        "severity means this severity or higher; since: detected at or after.",
        {order: f"SELECT {_ALERT_COLUMNS} FROM (SELECT * FROM alerts FINAL {{prewhere}} {{where}}) "
                f"ORDER BY {clause}, alert_id "
                "LIMIT {limit:UInt32}"
         for order, clause in (("detected", "detected_at DESC"), ("window", "window_end DESC, detected_at DESC"))},
        {"status": Choice(("open", "resolved", "withdrawn")), "rule": Choice(RULES), "severity": Choice(SEVERITIES),
         "uscc": Uscc(), "town": Text(64), "since": Instant(), "limit": Count(1, 10_000),
         "order": Choice(("detected", "window"))},
        defaults={"limit": 200, "order": "detected"}, by="order",
        filters={"status": "status = {status:String}", "rule": "rule = {rule:String}",
                 "severity": f"indexOf({_SEVERITY_RANK}, severity) >= indexOf({_SEVERITY_RANK}, {{severity:String}})",
                 "town": "town = {town:String}", "since": "detected_at >= {since:DateTime('UTC')}"},
        prewhere={"uscc": "uscc = {uscc:String}"}),
    "alert_counts": NamedQuery(
        "Alerts by rule and severity: open and all.",
        "SELECT rule, severity, countIf(status = 'open') AS open_alerts, count() AS all_alerts "
        "FROM alerts FINAL {prewhere} {where} GROUP BY rule, severity ORDER BY rule, severity",
        {"town": Text(64), "uscc": Uscc(), "since": Instant()},
        filters={"town": "town = {town:String}", "since": "detected_at >= {since:DateTime('UTC')}"},
        prewhere={"uscc": "uscc = {uscc:String}"}),
    "enterprise": NamedQuery(
        "An enterprise's registry row, with its risk score and level (0 and '' when it has none).",
        "SELECT uscc, name, industry, town, registered_capital_cny, toString(established_on) AS established_on, "
        "status, key_enterprise, toString(event_time) AS registered_at, score AS risk_score, level AS risk_level "
        "FROM (SELECT * FROM enterprises FINAL {where}) AS e "
        "ANY LEFT JOIN (SELECT uscc, score, level FROM risk FINAL {where}) AS r USING uscc",
        {"uscc": Uscc()}, required=("uscc",), filters={"uscc": "uscc = {uscc:String}"}),
    "enterprise_series": NamedQuery(
        "An enterprise's daily utility totals from first_day to last_day (local days), by day and utility.",
        "SELECT toString(day) AS day, utility, amount, readings, estimated "
        "FROM (SELECT * FROM utility_daily FINAL {where}) ORDER BY day, utility",
        {"uscc": Uscc(), "first_day": Day(), "last_day": Day(), "utility": Choice(tuple(UTILITY_UNITS))},
        required=("uscc", "first_day", "last_day"),
        filters={"uscc": "uscc = {uscc:String}", "first_day": "day >= {first_day:Date}",
                 "last_day": "day <= {last_day:Date}", "utility": "utility = {utility:String}"},
        checks=(_in_order("first_day", "last_day", most=3660),)),
    "monthly": NamedQuery(
        "An enterprise's monthly tax returns (kind=tax) or social-insurance figures (kind=social), by period.",
        {kind: _monthly(kind, "period") for kind in MONTHLY},
        {"uscc": Uscc(), "kind": Choice(MONTHLY)}, required=("uscc", "kind"), by="kind",
        filters={"uscc": "uscc = {uscc:String}"}),
    "supervision_list": NamedQuery(
        "Enterprises whose risk score is at least threshold (default 60), highest first, with registry data.",
        "SELECT r.uscc AS uscc, e.name AS name, e.industry AS industry, e.town AS town, r.score AS score, "
        "r.level AS level, r.rules AS rules, toString(r.updated_at) AS updated_at "
        "FROM (SELECT uscc, score, level, rules, updated_at FROM risk FINAL WHERE score >= {threshold:Float64}) AS r "
        "ANY LEFT JOIN (SELECT uscc, name, industry, town FROM enterprises FINAL) AS e USING uscc "
        "{where} ORDER BY score DESC, uscc LIMIT {limit:UInt32}",
        {"threshold": Number(0, 100), "town": Text(64), "industry": Text(64), "limit": Count(1, 10_000)},
        defaults={"threshold": 60.0, "limit": 1000},
        filters={"town": "e.town = {town:String}", "industry": "e.industry = {industry:String}"}),
    # The console's (console/): the supervision list and inbox with all their filters, one alert, the facets.
    "console_supervision": NamedQuery(
        "The console's supervision list: risk at least threshold, by town, industry, rule (among the score's "
        "rules) and severity (an open alert of this severity or higher), highest first.",
        "SELECT r.uscc AS uscc, e.name AS name, e.industry AS industry, e.town AS town, r.score AS score, "
        "r.level AS level, r.rules AS rules, toString(r.updated_at) AS updated_at "
        "FROM (SELECT uscc, score, level, rules, updated_at FROM risk FINAL WHERE score >= {threshold:Float64}) AS r "
        "ANY LEFT JOIN (SELECT uscc, name, industry, town FROM enterprises FINAL) AS e USING uscc "
        "{where} ORDER BY score DESC, uscc LIMIT {limit:UInt32}",
        {"threshold": Number(0, 100), "town": Text(64), "industry": Text(64), "rule": Choice(RULES),
         "severity": Choice(SEVERITIES), "limit": Count(1, 10_000)},
        defaults={"threshold": 60.0, "limit": 1000},
        filters={"town": "e.town = {town:String}", "industry": "e.industry = {industry:String}",
                 "rule": "has(r.rules, {rule:String})",
                 # the latest revision of each alert of the listed enterprises only (argMax over every
                 # revision: uscc is in the sorting key, so an alert's revisions are all there)
                 "severity": "r.uscc IN (SELECT uscc FROM alerts WHERE uscc IN (SELECT uscc FROM risk FINAL WHERE "
                             "score >= {threshold:Float64}) GROUP BY uscc, alert_id HAVING argMax(status, revision) "
                             f"= 'open' AND indexOf({_SEVERITY_RANK}, argMax(severity, revision)) >= "
                             f"indexOf({_SEVERITY_RANK}, {{severity:String}}))"}),
    "console_inbox": NamedQuery(
        "The console's alert inbox: open alerts newest first (without evidence), by town, industry, rule, "
        "severity (or higher); "
        "since: detected at or after (alerts are partitioned by the month of detection: only those months are "
        "read).",
        f"SELECT {_INBOX_COLUMNS} FROM (SELECT * FROM alerts FINAL {{where}}) "
        "ORDER BY detected_at DESC, alert_id LIMIT {limit:UInt32}",
        {"status": Choice(("open",)), "town": Text(64), "industry": Text(64), "rule": Choice(RULES),
         "severity": Choice(SEVERITIES), "since": Instant(), "limit": Count(1, 10_000)},
        defaults={"status": "open", "limit": 200},
        filters={"since": "detected_at >= {since:DateTime('UTC')}", "status": "status = {status:String}",
                 "town": "town = {town:String}", "industry": "industry = {industry:String}",
                 "rule": "rule = {rule:String}",
                 "severity": f"indexOf({_SEVERITY_RANK}, severity) >= indexOf({_SEVERITY_RANK}, {{severity:String}})"}),
    "console_alert_span": NamedQuery(
        "When the first and the latest stored alerts were detected, and how many alert rows there are "
        "(the inbox reads back from the latest).",
        "SELECT toString(min(detected_at)) AS oldest, toString(max(detected_at)) AS newest, count() AS rows "
        "FROM alerts",
        {}),
    "console_alert": NamedQuery(
        "One alert (latest revision) by its id.",
        f"SELECT {_ALERT_COLUMNS} FROM (SELECT * FROM alerts FINAL {{prewhere}})",
        {"alert_id": Text(128)}, required=("alert_id",), prewhere={"alert_id": "alert_id = {alert_id:String}"}),
    "console_facets": NamedQuery(
        "The towns and industries of the registry, with how many enterprises each (the console's filters).",
        "SELECT what, value, n FROM (SELECT 'town' AS what, town AS value, count() AS n FROM enterprises FINAL "
        "GROUP BY town UNION ALL SELECT 'industry' AS what, industry AS value, count() AS n FROM enterprises FINAL "
        "GROUP BY industry) ORDER BY what, value",
        {}),
    "enterprise_risk_history": NamedQuery(
        "An enterprise's stored risk scores, oldest first (every score the worker stored; the risk table keeps "
        "only the latest).",
        "SELECT toString(updated_at) AS updated_at, score, level, rules "
        "FROM (SELECT * FROM risk_history FINAL {prewhere}) ORDER BY updated_at",
        {"uscc": Uscc()}, required=("uscc",), prewhere={"uscc": "uscc = {uscc:String}"}),
    "console_complaints_weekly": NamedQuery(
        "An enterprise's complaints by week (Monday of the week, UTC), oldest first.",
        "SELECT toString(toMonday(event_time)) AS week, count() AS complaints "
        "FROM (SELECT * FROM complaints FINAL {where}) GROUP BY week ORDER BY week",
        {"uscc": Uscc()}, required=("uscc",), filters={"uscc": "uscc = {uscc:String}"}),
    "counts": NamedQuery(
        "What is stored (each row once): events by kind, dead letters, alerts by status (what `entwatch demo` "
        "prints).",
        "SELECT what, name, n FROM ("
        "SELECT 'events' AS what, toString(kind) AS name, count() AS n FROM events FINAL GROUP BY kind "
        "UNION ALL SELECT 'deadletters' AS what, '' AS name, count() AS n FROM deadletters FINAL "
        "UNION ALL SELECT 'alerts' AS what, toString(status) AS name, count() AS n FROM alerts FINAL GROUP BY status"
        ") ORDER BY what, name",
        {}),
    "events_range": NamedQuery(
        "Stored events of one kind for the USCCs from first_uscc to last_uscc (for reconcile; no payloads).",
        "SELECT uscc, event_id, toString(event_time) AS event_time "
        "FROM (SELECT * FROM events FINAL {where}) ORDER BY uscc, event_id",
        {"kind": Choice(KINDS), "first_uscc": UsccBound(), "last_uscc": UsccBound()},
        required=("kind", "first_uscc", "last_uscc"),
        filters={"kind": "kind = {kind:String}", **_RANGE}, checks=(_in_order("first_uscc", "last_uscc"),)),
    "daily_range": NamedQuery(
        "Daily utility totals for the USCCs from first_uscc to last_uscc (for reconcile).",
        "SELECT uscc, utility, toString(day) AS day, amount, readings, estimated "
        "FROM (SELECT * FROM utility_daily FINAL {where}) ORDER BY uscc, utility, day",
        {"first_uscc": UsccBound(), "last_uscc": UsccBound()}, required=("first_uscc", "last_uscc"),
        filters=_RANGE, checks=(_in_order("first_uscc", "last_uscc"),)),
    "monthly_range": NamedQuery(
        "Monthly tax (kind=tax) or social (kind=social) rows for the USCCs from first_uscc to last_uscc.",
        {kind: _monthly(kind, "uscc, period") for kind in MONTHLY},
        {"kind": Choice(MONTHLY), "first_uscc": UsccBound(), "last_uscc": UsccBound()},
        required=("kind", "first_uscc", "last_uscc"), by="kind",
        filters=_RANGE, checks=(_in_order("first_uscc", "last_uscc"),)),
}


def bind(name: str, raw: Mapping[str, Any]) -> Bound:
    """Check ``raw`` parameters against the named query ``name``: a ``Bound`` query, or
    ``ParamError`` (which parameter, what to give) or ``UnknownQuery``."""
    query = QUERIES.get(name)
    if query is None:
        raise UnknownQuery(f"no named query {name!r}; the named queries are {', '.join(sorted(QUERIES))}")
    unknown = sorted(set(raw) - set(query.params))
    if unknown:
        raise ParamError(unknown[0], f"not a parameter of {name} (accepted: {', '.join(query.params) or 'none'})")
    values: dict[str, Any] = {}
    for param, kind in query.params.items():
        given = raw.get(param)
        if given is None or given == "":
            if param in query.required:
                raise ParamError(param, "required")
            if param not in query.defaults:
                continue
            given = query.defaults[param]
        try:
            values[param] = kind.parse(given)
        except ValueError as exc:
            raise ParamError(param, str(exc)) from None
    for check in query.checks:
        problem = check(values)
        if problem:
            raise problem
    sql = query.sql[values[query.by]] if query.by else query.sql
    for marker, clauses in (("where", query.filters), ("prewhere", query.prewhere)):
        conditions = [condition for param, condition in clauses.items() if param in values]
        sql = sql.replace(f"{{{marker}}}", f"{marker.upper()} {' AND '.join(conditions)}" if conditions else "")
    used = {m.group(1) for m in PLACEHOLDER.finditer(sql)}
    return Bound(name, sql, {k: v for k, v in values.items() if k in used})


def describe() -> dict[str, dict]:
    """The named queries and their parameters, as ``GET /read`` lists them."""
    return {name: {"doc": q.doc, "required": list(q.required),
                   "params": {p: type(t).__name__ + (f" {list(t.values)}" if isinstance(t, Choice) else "")
                              for p, t in q.params.items()},
                   "defaults": dict(q.defaults)}
            for name, q in QUERIES.items()}


# ---------------------------------------------------------------- readers

class Reader(Protocol):
    """Runs named queries: ``read("alerts", town="虎门镇", limit=20)`` -> rows as dicts."""

    def read(self, name: str, **params) -> list[dict]: ...


class StorageReader:
    """Named queries on a read-only storage session (``streams.readsession``)."""

    def __init__(self, session):
        self.session = session

    def read(self, name: str, **params) -> list[dict]:
        return self.session.run(bind(name, params))

    def close(self) -> None:
        self.session.close()


class WorkerReader:
    """Named queries through a running worker's ``GET /read/<name>`` (embedded chDB is the worker's)."""

    def __init__(self, base_url: str, token: str, timeout: float = 60.0):
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout

    def read(self, name: str, **params) -> list[dict]:
        query = urllib.parse.urlencode({k: v.isoformat() if isinstance(v, (date, datetime)) else str(v)
                                        for k, v in params.items() if v is not None})
        return self._call(f"/read/{urllib.parse.quote(name, safe='')}?{query}")

    def operator_query(self, sql: str) -> list[dict]:
        """The free-form operator query (``ENTWATCH_OPERATOR_QUERY=true`` on the worker)."""
        return self._call("/operator/query", sql.encode())

    def _call(self, path: str, body: bytes | None = None) -> list[dict]:
        request = urllib.request.Request(self.base_url + path, data=body,
                                         headers={"Authorization": f"Bearer {self._token}"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())["rows"]
        except urllib.error.HTTPError as exc:
            try:
                answer = json.loads(exc.read() or b"{}")
            except ValueError:
                answer = {}
            problem = answer.get("error") or f"HTTP {exc.code} {exc.reason}"
            if "param" in answer:
                raise ParamError(answer["param"], problem.split(": ", 1)[-1]) from None
            raise ReadError(problem) from None


def worker_url(settings) -> str:
    """Where this machine's worker answers (its web port; a wildcard bind is reached on loopback)."""
    host = settings.metrics_host if settings.metrics_host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return f"http://{host}:{settings.metrics_port}"


def open_reader(settings, worker: str | None = None) -> Reader:
    """A reader for ``settings``: a ClickHouse server directly, as the read-only user
    (``ENTWATCH_READER_USER``), or else the worker's HTTP API at ``worker`` (default: this
    machine's) with the API token."""
    if settings.effective_storage_url().startswith("clickhouse://") and not worker:
        return StorageReader(ServerSession.for_settings(settings))
    token = settings.api_token_value()
    if token is None:
        raise ReadError(f"no API token: set ENTWATCH_API_TOKEN to the worker's, or run where `entwatch up` "
                        f"wrote {settings.token_file()}")
    return WorkerReader(worker or worker_url(settings), token, timeout=settings.read_timeout + 15)

"""The console's pages (FastAPI, Jinja2 templates, htmx), reading storage only through the
typed read API: every value a browser sends is a parameter of a named query
(``streams.readapi``), checked there; none becomes SQL.

``create_app(reader, store)`` builds the application; ``console.cli`` serves it.
"""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from console import i18n
from console.auth import (CSRF_FIELD, CSRF_HEADER, LOGIN_CSRF_COOKIE, SESSION_COOKIE, LoginLimiter, new_token,
                          same_token, token_hash, verify_password)
from console.admin import add_user_admin
from console.errors import Refused
from console.expected import expected_band
from console.store import ACTIONS, MUTE_MAX_DAYS, OUTCOMES, CaseError, CaseStore, city_today
from detectors.findings import RULES, SEVERITIES
from streams.readparams import ParamError

HERE = Path(__file__).parent
SESSION_HOURS = 12
FILTERS = ("town", "industry", "rule", "severity")
CASE_STATES = ("new", "acknowledged", "resolved")
SORTS = ("score", "name", "town", "industry", "updated_at")
INBOX_LIMIT = 200
INBOX_DAYS = (7, 31, 92, 366)
UTILITIES = ("electricity", "water")
CSV_COLUMNS = ("uscc", "name", "town", "industry", "score", "level", "rules", "updated_at", "case_state")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; form-action 'self'")


def create_app(reader, store: CaseStore, *, secure_cookies: bool = False, refresh_seconds: int = 5,
               limiter: LoginLimiter | None = None) -> FastAPI:
    """The console application on a read-API ``reader`` and a case ``store``."""
    app = FastAPI(title="entwatch console", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    limiter = limiter or LoginLimiter()

    def render(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        lang = i18n.pick_language(request.query_params.get("lang"), request.cookies.get("lang"))
        t = lambda key, **v: i18n.text(lang, key, **v)  # noqa: E731
        user = getattr(request.state, "user", None)
        response = templates.TemplateResponse(request, name, {
            "t": t, "lang": lang, "user": user, "rules": RULES, "severities": SEVERITIES, "outcomes": OUTCOMES,
            "can_act": bool(user and user["role"] in ("analyst", "admin")), "refresh": refresh_seconds,
            "csrf": user["csrf"] if user else request.state.login_csrf, **context}, status_code=status)
        if request.query_params.get("lang") in i18n.LANGUAGES:
            response.set_cookie("lang", lang, max_age=365 * 86400, samesite="strict", secure=secure_cookies)
        return response

    @app.middleware("http")
    async def session_and_headers(request: Request, call_next):
        request.state.user = None
        request.state.login_csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token()
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            request.state.user = store.session(token_hash(token))
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if request.state.user is None and LOGIN_CSRF_COOKIE not in request.cookies:
            response.set_cookie(LOGIN_CSRF_COOKIE, request.state.login_csrf, httponly=True, samesite="strict",
                                secure=secure_cookies)
        return response

    def signed_in(request: Request) -> dict:
        if request.state.user is None:
            raise Refused(401, "log in first")
        return request.state.user

    async def checked_form(request: Request) -> dict:
        """The form of a state-changing request, after its CSRF token (403 without it)."""
        form = await request.form()
        expected = request.state.user["csrf"] if request.state.user else request.state.login_csrf
        if not same_token(expected, form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)):
            raise Refused(403, "missing or wrong CSRF token: reload the page and try again")
        return form

    def login_redirect(request: Request) -> RedirectResponse:
        return RedirectResponse(f"/login?next={quote(str(request.url.path))}", status_code=303)

    def filters_of(request: Request) -> dict:
        return {k: request.query_params.get(k) or None for k in FILTERS}

    def state_of(request: Request) -> str | None:
        state = request.query_params.get("state") or None
        if state not in (None, *CASE_STATES):
            raise Refused(400, f"state: must be one of {', '.join(CASE_STATES)}")
        return state

    def read(name: str, **params) -> list[dict]:
        try:
            return reader.read(name, **{k: v for k, v in params.items() if v is not None})
        except ParamError as exc:
            raise Refused(400, str(exc)) from None

    # ------------------------------------------------------------ login

    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request, next: str = "/"):
        return render(request, "login.html", next=next if next.startswith("/") else "/")

    @app.post("/login")
    async def login(request: Request):
        form = await checked_form(request)
        name, password = str(form.get("user", ""))[:64], str(form.get("password", ""))
        target = str(form.get("next") or "/")
        client = request.client.host if request.client else "?"
        moment = time.monotonic()
        if limiter.blocked(f"user:{name}", moment) or limiter.blocked(f"addr:{client}", moment):
            store.record(name or "?", "login_refused", client, reason="rate limited")
            return render(request, "login.html", status=429, error="too_many", next=target)
        user = store.user(name)
        if user is None or user["disabled_at"] is not None or not verify_password(user["password_hash"], password):
            limiter.failed(f"user:{name}", moment)
            limiter.failed(f"addr:{client}", moment)
            store.record(name or "?", "login_failed", client)
            return render(request, "login.html", status=401, error="login_failed", next=target)
        token = new_token()
        store.start_session(token_hash(token), name, new_token(),
                            datetime.now(timezone.utc) + timedelta(hours=SESSION_HOURS))
        response = RedirectResponse(target if target.startswith("/") and not target.startswith("//") else "/",
                                    status_code=303)
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=secure_cookies,
                            max_age=SESSION_HOURS * 3600)
        return response

    @app.post("/logout")
    async def logout(request: Request):
        user = signed_in(request)
        await checked_form(request)
        store.end_session(token_hash(request.cookies[SESSION_COOKIE]), user["name"])
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # ------------------------------------------------------------ pages

    @app.get("/")
    async def home(request: Request):
        return RedirectResponse("/supervision", status_code=303)

    @app.get("/supervision", response_class=HTMLResponse)
    async def supervision(request: Request):
        if request.state.user is None:
            return login_redirect(request)
        filters, rows = supervision_rows(request)
        by_town: dict[str, int] = {}
        for row in rows:
            by_town[row["town"]] = by_town.get(row["town"], 0) + 1
        return render(request, "supervision.html", rows=rows, filters=filters, facets=facets(), muted=mutes_by_uscc(),
                      by_town=sorted(by_town.items(), key=lambda kv: (-kv[1], kv[0])), query=request.url.query,
                      sort=request.query_params.get("sort") or "score")

    @app.get("/supervision.csv")
    async def supervision_csv(request: Request):
        signed_in(request)
        _, rows = supervision_rows(request)
        return Response(supervision_table(rows), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="supervision.csv"'})

    def supervision_rows(request: Request) -> tuple[dict, list[dict]]:
        """The list's rows after the read API's filters, the case-state filter and the sort."""
        filters = filters_of(request)
        rows = read("console_supervision", **filters)
        states = store.enterprise_states([r["uscc"] for r in rows])
        for row in rows:
            row["case_state"] = states.get(row["uscc"], "new")
        state = state_of(request)
        filters["state"] = state
        rows = [r for r in rows if state in (None, r["case_state"])]
        sort = request.query_params.get("sort") or "score"
        if sort not in SORTS:
            raise Refused(400, f"sort: must be one of {', '.join(SORTS)}")
        if sort != "score":
            rows.sort(key=lambda r: (str(r[sort]), -r["score"]))
        return filters, rows

    @app.get("/inbox", response_class=HTMLResponse)
    async def inbox(request: Request):
        if request.state.user is None:
            return login_redirect(request)
        filters = {**filters_of(request), "state": state_of(request), "muted": muted_of(request)}
        return render(request, "inbox.html", filters=filters, facets=facets(), query=request.url.query,
                      **inbox_rows(filters))

    @app.get("/inbox/rows", response_class=HTMLResponse)
    async def inbox_partial(request: Request):
        signed_in(request)
        return render(request, "inbox_rows.html", **inbox_rows({**filters_of(request), "state": state_of(request),
                                                                "muted": muted_of(request)}))

    def muted_of(request: Request) -> str:
        muted = request.query_params.get("muted") or "hide"
        if muted not in ("hide", "show"):
            raise Refused(400, "muted: must be hide or show")
        return muted

    def inbox_rows(filters: dict) -> dict:
        """The inbox's alerts: the newest open ones, those of a muted rule hidden unless
        ``muted=show`` (at most one open alert per enterprise and rule: reading as many more as
        there are mutes keeps the page full), then the case-state filter."""
        state = filters.get("state")
        muted = mutes_by_uscc()
        hidden = sum(map(len, muted.values())) if filters.get("muted") != "show" else 0
        alerts = newest_open(read, {k: v for k, v in filters.items() if k not in ("state", "muted")},
                             min(INBOX_LIMIT + hidden, 10_000))
        if hidden:
            alerts = [a for a in alerts if a["rule"] not in muted.get(a["uscc"], ())][:INBOX_LIMIT]
        states = store.states([a["alert_id"] for a in alerts])
        if state:
            alerts = [a for a in alerts if states.get(a["alert_id"], "new") == state]
        return {"alerts": alerts, "states": states, "muted": muted}

    def mutes_by_uscc(uscc: str | None = None) -> dict[str, dict[str, dict]]:
        """The mutes in force: enterprise -> rule -> mute."""
        found: dict[str, dict[str, dict]] = {}
        for mute in store.mutes_in_force(uscc):
            found.setdefault(mute["uscc"], {})[mute["rule"]] = mute
        return found

    @app.post("/inbox/acknowledge")
    async def bulk_acknowledge(request: Request):
        """Acknowledge every checked alert that has no case yet (one transaction each)."""
        user = signed_in(request)
        form = await checked_form(request)
        if user["role"] not in ("analyst", "admin"):
            raise Refused(403, "viewers cannot change cases")
        chosen = form.getlist("alert_id")[:500]
        fresh = set(chosen) - set(store.states(chosen))
        for alert_id in sorted(fresh):
            alert = one_alert(alert_id)
            store.act(alert_id, alert["uscc"], "acknowledge", user["name"], rule=alert["rule"])
        return RedirectResponse(f"/inbox?{request.url.query}", status_code=303)

    def facets() -> dict:
        found: dict[str, list] = {"town": [], "industry": []}
        for row in read("console_facets"):
            found[row["what"]].append(row["value"])
        return found

    @app.get("/enterprise", response_class=HTMLResponse)
    async def find_enterprise(request: Request, uscc: str = ""):
        if request.state.user is None:
            return login_redirect(request)
        return RedirectResponse(f"/enterprise/{quote(uscc.strip().upper(), safe='')}", status_code=303)

    @app.get("/enterprise/{uscc}", response_class=HTMLResponse)
    async def enterprise(request: Request, uscc: str):
        if request.state.user is None:
            return login_redirect(request)
        found = read("enterprise", uscc=uscc)
        if not found:
            raise Refused(404, i18n.text(i18n.pick_language(None, request.cookies.get("lang")), "no_enterprise"))
        today = date.today()
        series = read("enterprise_series", uscc=uscc, first_day=today - timedelta(days=3650), last_day=today)
        alerts = read("alerts", uscc=uscc, limit=500)
        chart = {"days": sorted({r["day"] for r in series}), "windows": [[a["window_start"], a["window_end"]]
                                                                        for a in alerts],
                 **series_chart(series), "risk": risk_by_day(read("enterprise_risk_history", uscc=uscc))}
        chart_json = json.dumps(chart).replace("<", "\\u003c")  # never "</script>" inside the data block
        return render(request, "enterprise.html", e=found[0], alerts=alerts, chart=chart_json,
                      tax=read("monthly", uscc=uscc, kind="tax"), social=read("monthly", uscc=uscc, kind="social"),
                      complaints=read("console_complaints_weekly", uscc=uscc), cases=store.cases_for(uscc),
                      mutes=store.mutes_in_force(uscc), muted=mutes_by_uscc(uscc).get(uscc, {}),
                      states=store.states([a["alert_id"] for a in alerts]), evidence=evidence_of)

    @app.get("/cases/{alert_id}", response_class=HTMLResponse)
    async def case_page(request: Request, alert_id: str):
        if request.state.user is None:
            return login_redirect(request)
        alert = one_alert(alert_id)
        case = store.case(alert_id)
        return render(request, "case.html", a=alert, evidence=evidence_of(alert), case=case,
                      history=store.history(alert_id), actions=ACTIONS, error=request.query_params.get("error"),
                      mute=mutes_by_uscc(alert["uscc"]).get(alert["uscc"], {}).get(alert["rule"]),
                      mute_default=(city_today() + timedelta(days=90)).isoformat(),
                      mute_max=(city_today() + timedelta(days=MUTE_MAX_DAYS)).isoformat())

    @app.post("/cases/{alert_id}/{action}")
    async def case_action(request: Request, alert_id: str, action: str):
        user = signed_in(request)
        form = await checked_form(request)
        if user["role"] not in ("analyst", "admin"):
            store.record(user["name"], "case_refused", alert_id, attempted=action, reason="viewer")
            raise Refused(403, "viewers cannot change cases")
        if action not in (*ACTIONS, "mute"):
            raise Refused(404, f"no action {action}")
        alert = one_alert(alert_id)
        details = {k: form.get(k) for k in ("assignee", "note", "due_on", "outcome") if form.get(k)}
        try:
            if action == "mute":
                store.mute(alert_id, user["name"], form.get("until") or "")
            else:
                store.act(alert_id, alert["uscc"], action, user["name"], rule=alert["rule"], **details)
        except CaseError as exc:
            return RedirectResponse(f"/cases/{quote(alert_id, safe='')}?error={quote(str(exc))}", status_code=303)
        return RedirectResponse(f"/cases/{quote(alert_id, safe='')}", status_code=303)

    @app.post("/mutes/{mute_id}/unmute")
    async def unmute(request: Request, mute_id: int):
        """Lift a mute in force (analysts and admins); back to the enterprise page."""
        user = signed_in(request)
        await checked_form(request)
        if user["role"] not in ("analyst", "admin"):
            store.record(user["name"], "case_refused", f"mute {mute_id}", attempted="unmute", reason="viewer")
            raise Refused(403, "viewers cannot change cases")
        try:
            event = store.unmute(mute_id, user["name"])
        except CaseError as exc:
            raise Refused(404, str(exc)) from None
        return RedirectResponse(f"/enterprise/{quote(event['uscc'], safe='')}", status_code=303)

    @app.get("/outcomes", response_class=HTMLResponse)
    async def outcomes(request: Request):
        if request.state.user is None:
            return login_redirect(request)
        return render(request, "outcomes.html", report=store.precision())

    def one_alert(alert_id: str) -> dict:
        rows = read("console_alert", alert_id=alert_id)
        if not rows:
            raise Refused(404, f"no alert {alert_id}")
        return rows[0]

    add_user_admin(app, store, render, signed_in, checked_form, login_redirect)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused):
        return HTMLResponse(f"<!doctype html><title>{exc.status}</title><p>{exc.status}: {exc.reason}</p>",
                            status_code=exc.status)

    return app


def series_chart(series: list[dict]) -> dict:
    """The chart's daily amounts per utility, with the rules' expected level and band
    (``console.expected``): ``{utility: {day: amount}, "expected": {utility: {day: level}},
    "band": {utility: {day: [low, high]}}}``.

    >>> rows = [{"day": f"2024-04-{d:02d}", "utility": "water", "amount": 5.0} for d in range(1, 31)]
    >>> chart = series_chart(rows)
    >>> chart["water"]["2024-04-30"], chart["expected"]["water"]["2024-04-30"], chart["band"]["water"]["2024-04-30"]
    (5.0, 5.0, [1.5, 15.0])
    """
    chart: dict = {"expected": {}, "band": {}}
    for utility in UTILITIES:
        days = [(date.fromisoformat(r["day"]), r["amount"]) for r in series if r["utility"] == utility]
        chart[utility] = {d.isoformat(): amount for d, amount in days}
        points = [p for p in expected_band(utility, days) if p[1] is not None]
        chart["expected"][utility] = {d.isoformat(): level for d, level, _, _ in points}
        chart["band"][utility] = {d.isoformat(): [low, high] for d, _, low, high in points}
    return chart


def risk_by_day(history: list[dict]) -> list[list]:
    """The enterprise's risk score per day from its stored scores: the last one of each day.

    >>> risk_by_day([{"updated_at": "2024-03-01 08:00:00", "score": 40.0}, {"updated_at": "2024-03-01 20:00:00",
    ...              "score": 67.5}, {"updated_at": "2024-03-04 09:00:00", "score": 33.8}])
    [['2024-03-01', 67.5], ['2024-03-04', 33.8]]
    """
    last: dict[str, float] = {}
    for row in sorted(history, key=lambda r: r["updated_at"]):
        last[row["updated_at"][:10]] = row["score"]
    return [[day, score] for day, score in last.items()]


def newest_open(read, filters: dict, limit: int = INBOX_LIMIT) -> list[dict]:
    """The ``limit`` newest open alerts (``read``: a named-query reader): read back from the
    latest detection over the spans of ``inbox_spans`` until the page is full (alerts are
    partitioned by month of detection, so a span reads only its months), then over all.
    Exact: an open alert detected within a span is in that span's answer."""
    span = read("console_alert_span")
    if span and int(span[0]["rows"]):
        newest, wanted = _utc(span[0]["newest"]), 0.0
        for since in inbox_spans(newest, _utc(span[0]["oldest"])):
            days = (newest - since).days
            if days < wanted:  # too short for the page at the rate the last span found
                continue
            alerts = read("console_inbox", since=since, limit=limit, **filters)
            if len(alerts) >= limit:
                return alerts
            wanted = days * limit / max(len(alerts), 1)
    return read("console_inbox", limit=limit, **filters)


def inbox_spans(newest: datetime, oldest: datetime) -> list[datetime]:
    """Where the inbox starts reading back from the latest detection: 7, 31, 92 and 366 days
    before it, as long as that leaves some alerts out (then it reads them all).

    >>> utc = timezone.utc
    >>> [s.date().isoformat() for s in inbox_spans(datetime(2024, 12, 25, tzinfo=utc), datetime(2024, 10, 1, tzinfo=utc))]
    ['2024-12-18', '2024-11-24']
    """
    starts = [newest - timedelta(days=days) for days in INBOX_DAYS]
    return [since for since in starts if since > oldest]


def _utc(text: str) -> datetime:
    """A ClickHouse ``toString`` of a UTC ``DateTime`` as an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def supervision_table(rows: list[dict]) -> str:
    """The supervision list as CSV with a byte-order mark (Excel opens it as UTF-8).

    >>> supervision_table([{"uscc": "U", "name": "甲", "town": "t", "industry": "i", "score": 81.0, "level": "high",
    ...                     "rules": ["utility_drop", "tax_zero_streak"], "updated_at": "2024", "case_state": "new"}])
    '\\ufeffuscc,name,town,industry,score,level,rules,updated_at,case_state\\r\\nU,甲,t,i,81.0,high,utility_drop;tax_zero_streak,2024,new\\r\\n'
    """
    out = io.StringIO()
    out.write("\ufeff")
    table = csv.writer(out)
    table.writerow(CSV_COLUMNS)
    for row in rows:
        table.writerow([_cell(";".join(row[c]) if c == "rules" else row[c]) for c in CSV_COLUMNS])
    return out.getvalue()


def _cell(value):
    """A CSV cell that a spreadsheet will not run as a formula (``=``, ``+``, ``-``, ``@`` first).

    >>> _cell("=HYPERLINK(1)"), _cell(-3.5), _cell("虎门镇")
    ("'=HYPERLINK(1)", -3.5, '虎门镇')
    """
    return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def evidence_of(alert: dict) -> list[tuple[str, str]]:
    """An alert's evidence as (name, value) lines for a table: a JSON object's keys, or each
    item of a JSON list (named by its ``metric``).

    >>> evidence_of({"evidence": '{"baseline": 120.5, "days": [1, 2]}'})
    [('baseline', '120.5'), ('days', '[1, 2]')]
    >>> evidence_of({"evidence": '[{"metric": "daily_kwh", "value": 3, "baseline": 90}]'})
    [('daily_kwh', 'value 3, baseline 90')]
    """
    try:
        found = json.loads(alert.get("evidence") or "{}")
    except ValueError:
        return [("evidence", str(alert.get("evidence")))]
    show = lambda v: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)  # noqa: E731
    if isinstance(found, dict):
        return [(k, show(v)) for k, v in found.items()]
    if isinstance(found, list):
        lines = []
        for n, item in enumerate(found, 1):
            if isinstance(item, dict):
                name = str(item.get("metric") or n)
                lines.append((name, ", ".join(f"{k} {show(v)}" for k, v in item.items() if k != "metric")))
            else:
                lines.append((str(n), show(item)))
        return lines
    return [("evidence", show(found))]

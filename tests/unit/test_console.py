"""The console's pages, sessions, CSRF, roles and case workflow, in process (FastAPI's test
client) on an in-memory SQLite case store and a reader that checks every named query's
parameters as the read API does (``streams.readapi.bind``) and answers fixed rows.  The same
on real parts (worker, broker, chDB, Chromium, PostgreSQL): tests/integration/test_console.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from console.app import create_app
from console.auth import LoginLimiter
from console.store import CaseStore
from streams.readapi import bind

USCC = "914403001922038216"
ALERT = {"alert_id": "a-1", "uscc": USCC, "enterprise_name": "东莞精密五金有限公司", "industry": "metal",
         "town": "虎门镇", "rule": "utility_drop", "severity": "critical", "status": "open",
         "window_start": "2024-03-01", "window_end": "2024-03-09", "detected_at": "2024-03-10 01:00:00",
         "score": 7.5, "observed": 10.0, "expected": 100.0, "evidence": json.dumps({"baseline_kwh": 100.0}),
         "explanation_zh": "用电量骤降 90%", "explanation_en": "electricity fell 90%", "revision": 3}

SERIES = [{"day": "2024-03-01", "utility": "electricity", "amount": 10.0, "readings": 24, "estimated": 0}]


class CheckedReader:
    """Binds every read as the read API does (a bad parameter raises ``ParamError``) and
    answers fixed rows; remembers what it was asked."""

    def __init__(self):
        self.asked: list[tuple[str, dict]] = []

    def read(self, name: str, **params) -> list[dict]:
        bind(name, params)
        self.asked.append((name, params))
        if name == "console_supervision":
            rows = [{"uscc": USCC, "name": "东莞精密五金有限公司", "industry": "metal", "town": "虎门镇", "score": 81.0,
                     "level": "high", "rules": ["utility_drop"], "updated_at": "2024-03-10 01:00:00"}]
            return [r for r in rows if params.get("town") in (None, r["town"])]
        if name == "console_facets":
            return [{"what": "town", "value": "虎门镇", "n": 1}, {"what": "town", "value": "长安镇", "n": 1},
                    {"what": "industry", "value": "metal", "n": 2}]
        if name in ("console_inbox", "console_alert", "alerts"):
            return [ALERT] if params.get("alert_id", "a-1") == "a-1" else []
        if name == "enterprise":
            return [{"uscc": USCC, "name": "东莞精密五金有限公司", "industry": "metal", "town": "虎门镇",
                     "registered_capital_cny": 5e6, "established_on": "2010-05-01", "status": "active",
                     "key_enterprise": 1, "registered_at": "2024-01-01", "risk_score": 81.0, "risk_level": "high"}]
        if name == "monthly" and params["kind"] == "social":
            return [{"uscc": USCC, "period": "2024-02-01", "insured_headcount": 49, "contributions_cny": 1.0,
                     "event_id": "e", "event_time": "2024-03-01 00:00:00"}]
        if name == "console_complaints_weekly":
            return [{"week": "2024-02-26", "complaints": 3}]
        if name == "enterprise_series":
            return SERIES
        if name == "enterprise_risk_history":
            return [{"updated_at": "2024-03-10 01:00:00", "score": 67.5, "level": "high", "rules": ["utility_drop"]},
                    {"updated_at": "2024-03-12 01:00:00", "score": 81.0, "level": "high", "rules": ["utility_drop"]}]
        if name == "console_alert_span":
            return [{"oldest": "2024-03-10 01:00:00", "newest": "2024-03-10 01:00:00", "rows": 1}]
        return []


@pytest.fixture
def console():
    return started_console()


def started_console() -> tuple[TestClient, CaseStore, CheckedReader]:
    """The console app on an in-memory store with an analyst (li) and a viewer (wang)."""
    store = CaseStore("sqlite://")
    store.add_user("li", "analyst password", "analyst")
    store.add_user("wang", "viewer password", "viewer")
    reader = CheckedReader()
    app = create_app(reader, store, limiter=LoginLimiter(attempts=3, seconds=60))
    return TestClient(app), store, reader


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def log_in(client: TestClient, user: str, password: str):
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"user": user, "password": password, "csrf": token, "next": "/supervision"},
                       follow_redirects=False)


def test_a_page_without_a_session_sends_to_the_login(console):
    client, _, _ = console
    answer = client.get("/supervision", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


def test_login_sets_an_httponly_strict_session_cookie_and_the_pages_are_in_chinese(console):
    client, _, _ = console
    answer = log_in(client, "li", "analyst password")
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "entwatch_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    page = client.get("/supervision").text
    assert "重点监管名单" in page and USCC in page
    assert "Supervision list" in client.get("/supervision?lang=en").text
    assert "Supervision list" in client.get("/supervision").text  # the lang cookie keeps it


def test_a_login_form_without_its_csrf_token_is_refused(console):
    client, _, _ = console
    client.get("/login")
    assert client.post("/login", data={"user": "li", "password": "analyst password"}).status_code == 403


def test_failed_logins_are_rate_limited_even_with_the_right_password_after(console):
    client, store, _ = console
    for _ in range(3):
        assert log_in(client, "li", "wrong").status_code == 401
    assert log_in(client, "li", "analyst password").status_code == 429
    assert [r["action"] for r in store.audit_log()][:4] == ["login_refused", "login_failed", "login_failed",
                                                            "login_failed"]


def test_filters_reach_the_read_api_as_parameters_and_a_bad_one_is_a_400(console):
    client, _, reader = console
    log_in(client, "li", "analyst password")
    assert "长安镇" in client.get("/supervision?town=长安镇&rule=utility_drop&severity=warning").text
    assert ("console_supervision", {"town": "长安镇", "rule": "utility_drop", "severity": "warning"}) in reader.asked
    assert client.get("/supervision?rule=x' OR 1=1 --").status_code == 400


def test_an_analyst_works_a_case_and_its_history_audit_and_outbox_agree(console):
    client, store, _ = console
    log_in(client, "li", "analyst password")
    token = csrf_of(client.get("/cases/a-1").text)
    for action, data in (("acknowledge", {}), ("assign", {"assignee": "虎门镇市场监管所"}),
                         ("note", {"note": "已电话联系企业"}), ("due", {"due_on": "2024-04-01"}),
                         ("resolve", {"outcome": "explained"})):
        assert client.post(f"/cases/a-1/{action}", data={"csrf": token, **data}, follow_redirects=False).status_code == 303
    page = client.get("/cases/a-1").text
    assert "已电话联系企业" in page and "已办结" in page and 'id="actions"' not in page
    history = store.history("a-1")
    assert [h["action"] for h in history] == ["acknowledge", "assign", "note", "due", "resolve"]
    assert all(h["actor"] == "li" for h in history)
    sent = [json.loads(r["payload"]) for r in store.unsent()]
    assert [e["event_id"] for e in sent] == [h["event_id"] for h in history]
    assert sent[-1]["state"] == "resolved" and sent[-1]["outcome"] == "explained"
    assert {"acknowledge", "assign", "note", "due", "resolve"} <= {r["action"] for r in store.audit_log()}


def test_a_case_post_without_the_csrf_token_is_refused_and_changes_nothing(console):
    client, store, _ = console
    log_in(client, "li", "analyst password")
    assert client.post("/cases/a-1/acknowledge", data={}).status_code == 403
    assert client.post("/cases/a-1/acknowledge", data={"csrf": "forged"}).status_code == 403
    assert store.case("a-1") is None and store.unsent() == []


def test_a_viewer_sees_no_buttons_and_a_forged_post_is_refused(console):
    client, store, _ = console
    log_in(client, "wang", "viewer password")
    page = client.get("/cases/a-1").text
    assert 'id="acknowledge"' not in page and 'id="read-only"' in page
    answer = client.post("/cases/a-1/acknowledge", data={"csrf": csrf_of(page)})
    assert answer.status_code == 403
    assert store.case("a-1") is None and store.unsent() == []


def test_the_inbox_polls_its_rows_and_the_enterprise_page_carries_its_chart_data(console):
    client, _, _ = console
    log_in(client, "li", "analyst password")
    inbox = client.get("/inbox").text
    assert 'hx-get="/inbox/rows?' in inbox and 'hx-trigger="every 5s"' in inbox
    assert "用电量骤降 90%" in client.get("/inbox/rows").text
    page = client.get(f"/enterprise/{USCC}").text
    data = json.loads(re.search(r'id="chart-data">(.*?)</script>', page, re.S).group(1))
    assert data["electricity"] == {"2024-03-01": 10.0} and data["windows"] == [["2024-03-01", "2024-03-09"]]
    assert "/static/vendor/echarts.min.js" in page and "baseline_kwh" in page
    assert "2024-02-26" in page and ">49<" in page


def test_pages_forbid_scripts_from_elsewhere(console):
    client, _, _ = console
    assert "script-src 'self'" in client.get("/login").headers["content-security-policy"]


def test_the_supervision_list_exports_csv_for_excel_and_filters_by_case_state(console):
    client, store, _ = console
    log_in(client, "li", "analyst password")
    answer = client.get("/supervision.csv?town=虎门镇")
    assert answer.headers["content-type"].startswith("text/csv") and answer.text.startswith("\ufeffuscc,")
    assert f"{USCC},东莞精密五金有限公司,虎门镇" in answer.text
    assert USCC in client.get("/supervision?state=new").text
    store.act("a-1", USCC, "acknowledge", actor="li")
    assert f'data-uscc="{USCC}"' not in client.get("/supervision?state=new").text
    assert f'data-uscc="{USCC}"' in client.get("/supervision?state=acknowledged").text
    assert client.get("/supervision?state=lost").status_code == 400
    assert client.get("/supervision?sort=1;DROP").status_code == 400


def test_bulk_acknowledge_acknowledges_the_ticked_alerts_once_and_a_viewer_cannot(console):
    client, store, _ = console
    log_in(client, "wang", "viewer password")
    page = client.get("/inbox").text
    assert 'id="bulk-acknowledge"' not in page
    assert client.post("/inbox/acknowledge", data={"csrf": csrf_of(page), "alert_id": ["a-1"]}).status_code == 403
    client.cookies.clear()
    log_in(client, "li", "analyst password")
    token = csrf_of(client.get("/inbox").text)
    assert 'name="alert_id" value="a-1"' in client.get("/inbox/rows").text
    for _ in range(2):  # a second submission finds the case there and adds nothing
        client.post("/inbox/acknowledge", data={"csrf": token, "alert_id": ["a-1"]})
    assert [h["action"] for h in store.history("a-1")] == ["acknowledge"]
    assert client.get("/inbox?state=acknowledged").text.count('data-alert="a-1"') == 1
    assert 'data-alert="a-1"' not in client.get("/inbox/rows?state=new").text


def test_outcomes_give_the_precision_per_rule_on_the_page_and_the_command(console, tmp_path):
    client, store, _ = console
    log_in(client, "li", "analyst password")
    token = csrf_of(client.get("/cases/a-1").text)
    client.post("/cases/a-1/resolve", data={"csrf": token, "outcome": "confirmed"})
    store.act("b-2", USCC, "resolve", actor="li", rule="utility_drop", outcome="false_alarm")
    store.act("c-3", USCC, "resolve", actor="li", rule="headcount_drop", outcome="explained")
    assert store.precision() == [
        {"rule": "headcount_drop", "confirmed": 0, "explained": 1, "false_alarm": 0, "resolved": 1, "precision": 0.0,
         "real": 1.0},
        {"rule": "utility_drop", "confirmed": 1, "explained": 0, "false_alarm": 1, "resolved": 2, "precision": 0.5,
         "real": 0.5}]
    assert '<tr data-rule="utility_drop"><td>用量骤降</td>' in client.get("/outcomes").text
    done = subprocess.run([sys.executable, "-m", "streams.cli", "console", "outcomes"], capture_output=True, text=True,
                          timeout=60, env={"ENTWATCH_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "no resolved case yet" in done.stdout, done.stderr


def test_text_from_storage_is_escaped_not_run(console, monkeypatch):
    client, _, _ = console
    log_in(client, "li", "analyst password")
    monkeypatch.setitem(ALERT, "explanation_zh", "<script>alert(1)</script>")
    rows = client.get("/inbox/rows").text
    assert "<script>alert(1)" not in rows and "&lt;script&gt;alert(1)" in rows

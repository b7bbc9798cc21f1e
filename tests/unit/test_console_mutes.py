"""Muting a rule for an enterprise after an explained outcome, in process (the fixtures of
test_console: FastAPI's test client, SQLite in memory, every read checked by ``bind``)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from console.store import CaseError, city_today
from tests.schema_check import problems as schema_problems
from tests.unit.test_console import USCC, csrf_of, log_in, started_console


@pytest.fixture
def console():
    return started_console()


def resolved_explained(client, store) -> str:
    log_in(client, "li", "analyst password")
    token = csrf_of(client.get("/cases/a-1").text)
    client.post("/cases/a-1/resolve", data={"csrf": token, "outcome": "explained"})
    return token


def test_an_explained_case_mutes_its_rule_for_the_enterprise_and_the_inbox_hides_it_until_unmuted(console):
    client, store, _ = console
    token = resolved_explained(client, store)
    page = client.get("/cases/a-1").text
    assert 'id="mute"' in page
    until = (city_today() + timedelta(days=30)).isoformat()
    assert client.post("/cases/a-1/mute", data={"csrf": token, "until": until}, follow_redirects=False).status_code == 303
    assert f"已对该企业静默至 {until}" in client.get("/cases/a-1").text

    assert 'data-alert="a-1"' not in client.get("/inbox").text  # hidden by default
    shown = client.get("/inbox/rows?muted=show").text
    assert 'data-alert="a-1"' in shown and "已静默" in shown
    assert "已静默: 用量骤降" in client.get("/supervision").text
    enterprise = client.get(f"/enterprise/{USCC}").text
    assert '<tr data-rule="utility_drop">' in enterprise and 'class="unmute"' in enterprise

    (mute,) = store.mutes_in_force(USCC)
    assert client.post(f"/mutes/{mute['id']}/unmute", data={"csrf": token}, follow_redirects=False).status_code == 303
    assert store.mutes_in_force() == [] and 'data-alert="a-1"' in client.get("/inbox").text

    history = store.history("a-1")
    assert [h["action"] for h in history] == ["resolve", "mute", "unmute"]
    events = [json.loads(r["payload"]) for r in store.unsent()]
    assert [(e["action"], e.get("muted_until"), e["version"]) for e in events] == [
        ("resolve", None, 1), ("mute", until, 2), ("unmute", None, 3)]
    assert all(schema_problems("case.v1.json", e) == [] for e in events)
    assert {"mute", "unmute"} <= {r["action"] for r in store.audit_log()}


def test_only_an_explained_case_mutes_and_only_for_a_day_within_a_year(console):
    client, store, _ = console
    log_in(client, "li", "analyst password")
    token = csrf_of(client.get("/cases/a-1").text)
    client.post("/cases/a-1/resolve", data={"csrf": token, "outcome": "confirmed"})
    assert 'id="mute"' not in client.get("/cases/a-1").text
    with pytest.raises(CaseError, match="explained"):
        store.mute("a-1", "li", city_today() + timedelta(days=3))
    store.act("b-2", USCC, "resolve", actor="li", rule="utility_drop", outcome="explained")
    for until in (city_today(), city_today() + timedelta(days=367), "soon"):
        with pytest.raises(CaseError, match="until"):
            store.mute("b-2", "li", until)
    assert store.mutes_in_force() == []


def test_a_viewer_can_neither_mute_nor_unmute(console):
    client, store, _ = console
    store.act("a-1", USCC, "resolve", actor="li", rule="utility_drop", outcome="explained")
    store.mute("a-1", "li", city_today() + timedelta(days=5))
    log_in(client, "wang", "viewer password")
    page = client.get("/cases/a-1").text
    assert 'id="mute"' not in page and 'class="unmute"' not in client.get(f"/enterprise/{USCC}").text
    token = csrf_of(page)
    assert client.post("/cases/a-1/mute", data={"csrf": token, "until": "2099-01-01"}).status_code == 403
    (mute,) = store.mutes_in_force()
    assert client.post(f"/mutes/{mute['id']}/unmute", data={"csrf": token}).status_code == 403
    assert len(store.mutes_in_force()) == 1 and [h["action"] for h in store.history("a-1")] == ["resolve", "mute"]

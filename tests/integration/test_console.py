"""The console on real parts: a worker on a real Tansu broker and chDB fed a simulated city,
``entwatch console`` as a child process, Debian's Chromium driven by Playwright; the case
store on SQLite and on a real PostgreSQL 15 cluster started here.

Set ``ENTWATCH_SCREENSHOTS=DIR`` to keep a screenshot of each page (docs/console/)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import orjson
import pytest

from console.relay import OutboxRelay, cases_topic
from console.store import CaseStore, city_today
from producers.simulator import LEGACY, AnomalyRates, SimulationConfig, generate
from streams.broker import free_port
from streams.settings import Settings
from tests.conftest import require, wait_until
from tests.integration.kafka_io import read_topic
from tests.schema_check import header_text
from tests.schema_check import problems as schema_problems
from tests.integration.test_pipeline import _metric, replay
from tests.services import entwatch, stop_process

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
USCC = "914403001922038216"
SHOTS = os.environ.get("ENTWATCH_SCREENSHOTS")


@pytest.fixture
def city(tmp_path) -> Path:
    rates = AnomalyRates(**{name: 0.1 for name in AnomalyRates.__dataclass_fields__})
    config = SimulationConfig(enterprises=40, days=200, seed=5, start=date(2024, 1, 1), rates=rates,
                              electricity_interval="day", **{**LEGACY, "late_share": 0.0})
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(o) if isinstance(o, dict) else o.encode() for o in generate(config)))
    return path


def start_console(tmp_path: Path, worker, broker) -> tuple[str, subprocess.Popen]:
    """``entwatch console`` on the worker's read API, with an analyst and a viewer."""
    port = free_port()
    env = {"ENTWATCH_STORAGE_URL": worker.storage_url, "ENTWATCH_METRICS_PORT": str(worker.port),
           "ENTWATCH_API_TOKEN": worker.token, "ENTWATCH_BROKER_URL": broker.url,
           "ENTWATCH_DATA_DIR": str(tmp_path / "console"), "ENTWATCH_CONSOLE_REFRESH_SECONDS": "2"}
    for name, role in (("li", "analyst"), ("wang", "viewer"), ("root", "admin")):
        done = subprocess.run([sys.executable, "-m", "streams.cli", "console", "adduser", name, "--role", role],
                              env={**os.environ, **env, "ENTWATCH_CONSOLE_PASSWORD": f"{name}-password"},
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert f"{name}-password" not in done.stdout + done.stderr
    proc = entwatch("console", "--port", str(port), env=env, log=tmp_path / "console.log")
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert proc.poll() is None, (tmp_path / "console.log").read_text()
        try:
            with urllib.request.urlopen(url + "/login", timeout=2):
                return True
        except OSError:
            return False

    wait_until(answers, timeout=60, what="the console")
    return url, proc


def browser():
    from playwright.sync_api import sync_playwright

    require(Path(CHROMIUM).exists(), f"{CHROMIUM} is not installed (apt-get install chromium)")
    driver = sync_playwright().start()
    return driver, driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def log_in(context, url: str, user: str):
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(url + "/supervision")
    page.fill("#user", user)
    page.fill("#password", f"{user}-password")
    page.click("#login")
    page.wait_for_url("**/supervision")
    return page, problems


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def replayed(worker, broker, city):
    """``worker`` once it has consumed the replayed city and stored some risk >= 60."""
    replay(city, broker.url)
    lines = len(city.read_bytes().splitlines())
    wait_until(lambda: _metric(worker.metrics(), "entwatch_processing_latency_seconds_count") >= lines - 50,
               timeout=240, what="the city consumed")
    wait_until(lambda: worker.scalar("SELECT count() FROM risk FINAL WHERE score >= 60"), timeout=60,
               what="enterprises with risk >= 60")
    time.sleep(3)  # the last batch's risk rows
    return worker


@pytest.mark.parametrize("storage_url", ["chdb"], indirect=True)
def test_an_analyst_and_a_viewer_work_the_console_on_a_replayed_city(start_worker, broker, city, tmp_path):
    worker = replayed(start_worker(), broker, city)
    risky = {r["uscc"]: r["town"] for r in worker.query(
        "SELECT r.uscc AS uscc, e.town AS town FROM (SELECT uscc FROM risk FINAL WHERE score >= 60) AS r "
        "ANY LEFT JOIN (SELECT uscc, town FROM enterprises FINAL) AS e USING uscc")}
    url, console = start_console(tmp_path, worker, broker)
    driver, chromium = browser()
    try:
        analyst = chromium.new_context(locale="zh-CN")
        page, problems = log_in(analyst, url, "li")

        # The supervision list: exactly the enterprises with risk >= 60; a town filter narrows it.
        listed = page.eval_on_selector_all("#supervision tbody tr[data-uscc]", "rows => rows.map(r => r.dataset.uscc)")
        assert sorted(listed) == sorted(risky)
        assert "重点监管名单" in page.content()
        shot(page, "supervision")
        town = sorted(risky.values())[0]
        page.select_option("#f-town", town)
        page.click("#apply")
        page.wait_for_url("**town=*")
        in_town = page.eval_on_selector_all("#supervision tbody tr[data-uscc]", "rows => rows.map(r => r.dataset.uscc)")
        assert sorted(in_town) == sorted(u for u, t in risky.items() if t == town)

        # The enterprise page: registry facts, a chart with data, its alerts with evidence.
        metered = {r["uscc"] for r in worker.query("SELECT DISTINCT uscc FROM utility_daily FINAL "
                                                   "WHERE utility = 'electricity' AND amount > 0")}
        uscc = max(sorted(risky.keys() & metered),
                   key=lambda u: worker.scalar(f"SELECT count() FROM alerts FINAL WHERE uscc = '{u}'"))
        page.goto(f"{url}/enterprise/{uscc}")
        page.wait_for_function("() => window.echarts && echarts.getInstanceByDom(document.getElementById('chart'))")
        series = page.evaluate("() => echarts.getInstanceByDom(document.getElementById('chart')).getOption().series"
                               ".map(s => [s.name, s.data.filter(v => v !== null && v !== undefined).length])")
        filled = {name: n for name, n in series if n}
        assert any(name.endswith("预期") for name in filled), series  # the rules' expected level ...
        assert sum(1 for name, n in series if name.endswith("正常范围") and n) >= 2, series  # ... and its band
        assert page.evaluate("() => echarts.getInstanceByDom(document.getElementById('risk-chart'))"
                             ".getOption().series[0].data.length") >= 1  # the risk score over time
        assert page.locator("#registry").inner_text().count("\n") >= 5
        assert page.locator("#alerts tbody tr[data-alert]").count() >= 1
        shot(page, "enterprise")

        # The inbox (live): the case workflow on one of its alerts.
        page.goto(f"{url}/inbox?lang=en")
        page.wait_for_selector("#inbox-rows tr[data-alert]")
        shot(page, "inbox")
        with page.expect_response(lambda r: "/inbox/rows" in r.url, timeout=10_000) as polled:
            pass  # htmx asks for the rows again every ENTWATCH_CONSOLE_REFRESH_SECONDS (2 s here)
        assert polled.value.status == 200 and "data-alert" in polled.value.text()
        alert_id = page.locator("#inbox-rows tr[data-alert]").first.get_attribute("data-alert")
        page.goto(f"{url}/cases/{alert_id}?lang=zh")
        shot(page, "case-open")
        page.click("#acknowledge")
        page.fill("#assignee-input", "虎门镇市场监管所")
        page.click("#assign")
        page.fill("#note-input", "已电话联系企业，安排现场核查")
        page.click("#note")
        page.select_option("#outcome-input", "confirmed")
        page.click("#resolve")
        page.wait_for_selector("#history tr[data-action=resolve]")
        page.reload()
        actions = page.eval_on_selector_all("#history tr[data-action]", "rows => rows.map(r => r.dataset.action)")
        assert actions == ["acknowledge", "assign", "note", "resolve"]
        assert "已电话联系企业" in page.inner_text("#history") and page.inner_text("#state") == "已办结"
        shot(page, "case-resolved")
        page.goto(f"{url}/outcomes")
        rule = worker.read("console_alert", alert_id=alert_id)[0]["rule"]
        assert page.eval_on_selector_all("#outcomes tr[data-rule]", "rows => rows.map(r => r.dataset.rule)") == [rule]
        shot(page, "outcomes")

        with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's event loop
            published = pool.submit(read_topic, broker.bootstrap, cases_topic(Settings()), 5, 15).result()
        events = [json.loads(r.value) for r in published]
        assert [e["action"] for e in events] == actions  # each change once, in order
        assert len({e["event_id"] for e in events}) == 4 and {e["case_id"] for e in events} == {alert_id}
        assert all(dict(r.headers)["event_id"].decode() == e["event_id"] for r, e in zip(published, events))
        for record, event in zip(published, events):  # the monitor.cases contract and its CloudEvents headers
            headers = header_text(record.headers)
            assert schema_problems("case.v1.json", event) == [], event
            assert schema_problems("cloudevents-headers.v1.json", headers) == [], headers
            assert headers["ce_id"] == event["event_id"] and headers["ce_type"].startswith("cn.entwatch.case.")

        # A form whose CSRF token is removed is refused (after it, the browser logs the 403 itself).
        page.goto(f"{url}/inbox")
        other = page.locator("#inbox-rows tr[data-alert]").nth(1).get_attribute("data-alert")
        page.goto(f"{url}/cases/{other}")
        assert problems == []
        page.evaluate("document.querySelector('form[action$=\"/acknowledge\"] input[name=csrf]').remove()")
        with page.expect_response(lambda r: r.url.endswith("/acknowledge")) as answer:
            page.click("#acknowledge")
        assert answer.value.status == 403

        # A viewer: no buttons, and a forged POST (with the viewer's own token) is refused.
        viewer = chromium.new_context()
        seen, viewer_problems = log_in(viewer, url, "wang")
        seen.goto(f"{url}/cases/{other}")
        assert seen.locator("#acknowledge").count() == 0 and seen.locator("#read-only").count() == 1
        token = seen.get_attribute("input[name=csrf]", "value")
        assert viewer.request.post(f"{url}/cases/{other}/acknowledge", form={"csrf": token}).status == 403
        seen.goto(f"{url}/cases/{other}")
        assert seen.inner_text("#history").count("\n") <= 1 and viewer_problems == []

        # Muting: a case resolved as explained mutes its rule for the enterprise; the inbox hides that
        # enterprise's alerts of the rule (a filter shows them); the enterprise page lifts the mute.
        page.goto(f"{url}/inbox?lang=zh")
        listed = page.eval_on_selector_all("#inbox-rows tr[data-alert]", "rows => rows.map(r => r.dataset.alert)")
        third = next(a for a in listed if a not in (alert_id, other))
        muted = worker.read("console_alert", alert_id=third)[0]
        page.goto(f"{url}/cases/{third}")
        page.select_option("#outcome-input", "explained")
        page.click("#resolve")
        page.wait_for_selector("#mute")
        page.click("#mute")
        page.wait_for_selector("#muted")
        page.goto(f"{url}/inbox")
        assert page.locator(f'#inbox-rows tr[data-alert="{third}"]').count() == 0
        page.goto(f"{url}/inbox?muted=show")
        assert page.locator(f'#inbox-rows tr[data-alert="{third}"].muted').count() == 1
        page.goto(f"{url}/enterprise/{muted['uscc']}")
        assert page.locator(f'#mutes tr[data-rule="{muted["rule"]}"]').count() == 1
        shot(page, "enterprise-muted")
        page.click("#mutes button.unmute")
        page.wait_for_url(f"**/enterprise/{muted['uscc']}")
        assert page.locator("#mutes").count() == 0
        page.goto(f"{url}/inbox")
        assert page.locator(f'#inbox-rows tr[data-alert="{third}"]').count() == 1
        with ThreadPoolExecutor(1) as pool:
            published = pool.submit(read_topic, broker.bootstrap, cases_topic(Settings()), 7, 15).result()
        later = [json.loads(r.value) for r in published][4:]
        assert [(e["case_id"], e["action"]) for e in later] == [(third, "resolve"), (third, "mute"), (third, "unmute")]
        assert all(schema_problems("case.v1.json", e) == [] for e in later) and later[1]["muted_until"]
        headers = [header_text(r.headers) for r in published[4:]]
        assert [h["ce_type"] for h in headers[1:]] == ["cn.entwatch.case.muted", "cn.entwatch.case.unmuted"]
        assert all(schema_problems("cloudevents-headers.v1.json", h) == [] for h in headers)

        # User administration: an admin creates a user and disables it; a viewer is refused.
        admin_context = chromium.new_context(locale="zh-CN")
        admin_page, admin_problems = log_in(admin_context, url, "root")
        admin_page.click("#nav-users")
        admin_page.fill("#new-name", "zhao")
        admin_page.select_option("#new-role", "viewer")
        admin_page.fill("#new-password", "zhao-password")
        admin_page.click("#create-user")
        admin_page.wait_for_selector('#users tr[data-user="zhao"][data-role="viewer"]')
        admin_page.click('#users tr[data-user="zhao"] button.disable')
        admin_page.wait_for_selector('#users tr[data-user="zhao"][data-disabled="yes"]')
        shot(admin_page, "users")
        assert admin_problems == []
        assert viewer.request.get(f"{url}/admin/users").status == 403
        assert viewer.request.post(f"{url}/admin/users/li/disable", form={"csrf": token}).status == 403

        # Bulk acknowledge: the ticked alert survives the inbox's refreshes, then leaves the "new" view.
        page.goto(f"{url}/inbox?state=new")
        box = page.locator("#inbox-rows input[name=alert_id]").first
        chosen = box.get_attribute("value")
        box.check()
        page.wait_for_timeout(4500)  # two refresh periods: polling waits while something is ticked
        assert page.locator(f'#inbox-rows input[value="{chosen}"]').is_checked()
        page.click("#bulk-acknowledge")
        page.wait_for_selector("#inbox-rows tr")
        assert page.locator(f'#inbox-rows tr[data-alert="{chosen}"]').count() == 0
    finally:
        chromium.close()
        driver.stop()
        stop_process(console)


# ---------------------------------------------------------------- the case store on SQLite and PostgreSQL

@pytest.fixture(scope="module")
def postgres():
    """A private PostgreSQL 15 cluster in a temporary directory (as root: owned by postgres)."""
    require((PG_BIN / "initdb").exists(), f"{PG_BIN}/initdb is missing (apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="entwatch-pg-"))
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if run_as:
        shutil.chown(folder, "postgres", "postgres")
    port = free_port()
    subprocess.run([*run_as, str(PG_BIN / "initdb"), "-D", str(folder / "data"), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8"], check=True, capture_output=True, timeout=120)
    subprocess.run([*run_as, str(PG_BIN / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "log"),
                    "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "-w", "start"],
                   check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, str(PG_BIN / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'console.db'}"
    return request.getfixturevalue("postgres")


def test_the_case_store_keeps_every_action_and_the_relay_publishes_each_once(store_url, broker):
    store = CaseStore(store_url)
    case_id = f"case-{time.monotonic_ns()}"
    for action, detail in (("acknowledge", {}), ("assign", {"assignee": "长安镇"}), ("due", {"due_on": "2024-05-01"}),
                           ("note", {"note": "企业称设备检修"}), ("resolve", {"outcome": "false_alarm"})):
        store.act(case_id, USCC, action, actor="li", **detail)
    again = CaseStore(store_url)  # a new process would see the same
    assert [h["action"] for h in again.history(case_id)] == ["acknowledge", "assign", "due", "note", "resolve"]
    assert again.case(case_id)["outcome"] == "false_alarm" and str(again.case(case_id)["due_on"]) == "2024-05-01"
    assert all(h["at"].tzinfo is not None for h in again.history(case_id))

    settings = Settings(broker_url=broker.url, topic_prefix=f"t{time.monotonic_ns()}.")
    relay = OutboxRelay(store, settings)
    pending = [r for r in store.unsent(1000) if json.loads(r["payload"])["case_id"] == case_id]
    assert relay.drain() >= 5 and store.unsent() == []
    events = [json.loads(r.value) for r in read_topic(broker.bootstrap, cases_topic(settings), 5, timeout=20)]
    assert [e["event_id"] for e in events if e["case_id"] == case_id] == [r["event_id"] for r in pending]
    relay._close()


def test_mutes_and_user_changes_are_kept_on_sqlite_and_postgresql_and_an_older_store_gains_its_column(store_url):
    import sqlalchemy as sa

    store = CaseStore(store_url)
    case_id, today = f"case-{time.monotonic_ns()}", city_today()
    store.act(case_id, USCC, "resolve", actor="li", rule="utility_drop", outcome="explained")
    store.mute(case_id, "li", today + timedelta(days=10))
    again = CaseStore(store_url)  # a new process would see the same
    mine = lambda day=None: [m for m in again.mutes_in_force(USCC, day) if m["case_id"] == case_id]  # noqa: E731
    assert [(m["rule"], m["until"]) for m in mine()] == [("utility_drop", today + timedelta(days=10))]
    assert mine(today + timedelta(days=11)) == []  # over after its last day
    again.unmute(mine()[0]["id"], "wang")
    assert mine() == [] and [h["action"] for h in again.history(case_id)] == ["resolve", "mute", "unmute"]
    name = f"u{time.monotonic_ns()}"
    store.add_user(name, "a long password", "viewer", actor="root")
    store.change_user(name, "root", disabled=True)
    assert again.user(name)["disabled_at"].tzinfo is not None

    older = store_url.rsplit("/", 1)[0] + f"/older{time.monotonic_ns()}" if store_url.startswith("postgresql") \
        else store_url.replace(".db", "-older.db")
    if older.startswith("postgresql"):
        with sa.create_engine(store_url, isolation_level="AUTOCOMMIT").connect() as db:
            db.execute(sa.text(f"CREATE DATABASE {older.rsplit('/', 1)[1]}"))
    with sa.create_engine(older).begin() as db:  # the users table as the first console created it
        db.execute(sa.text("CREATE TABLE console_users (name VARCHAR(64) PRIMARY KEY, password_hash VARCHAR(256) "
                           "NOT NULL, role VARCHAR(16) NOT NULL, created_at TIMESTAMP WITH TIME ZONE NOT NULL)"))
    CaseStore(older).add_user("li", "a long password", "analyst")
    CaseStore(older).change_user("li", "root", disabled=True)
    assert CaseStore(older).user("li")["disabled_at"] is not None


CRASHING_RELAY = """
import os, sys
from console.relay import OutboxRelay
from console.store import CaseStore
from streams.settings import Settings

store = CaseStore(sys.argv[1])
for action, detail in (("acknowledge", {}), ("assign", {"assignee": "长安镇"}), ("resolve", {"outcome": "confirmed"})):
    store.act("case-crash", sys.argv[3], action, actor="li", **detail)
marked = []
real_mark = store.mark_sent

def mark_then_die(row_id):
    if marked:  # the second event: the broker has acknowledged it, the mark never happens
        os._exit(9)
    marked.append(row_id)
    real_mark(row_id)

store.mark_sent = mark_then_die
OutboxRelay(store, Settings(broker_url=sys.argv[2], topic_prefix="crash.")).drain()
"""


def test_a_console_killed_between_the_brokers_acknowledgement_and_the_mark_loses_nothing(broker, tmp_path):
    """At least once with a stable id: the re-sent event is a duplicate a subscriber drops."""
    url = f"sqlite:///{tmp_path / 'console.db'}"
    child = subprocess.run([sys.executable, "-c", CRASHING_RELAY, url, broker.url, USCC], capture_output=True,
                           text=True, timeout=120)
    assert child.returncode == 9, child.stderr
    store = CaseStore(url)
    history = [h["event_id"] for h in store.history("case-crash")]
    assert len(history) == 3 and len(store.unsent()) == 2  # the first was marked; the second sent, not marked
    settings = Settings(broker_url=broker.url, topic_prefix="crash.")
    relay = OutboxRelay(store, settings)
    assert relay.drain() == 2 and store.unsent() == []
    relay._close()
    records = read_topic(broker.bootstrap, cases_topic(settings), 5, timeout=15)
    sent = [json.loads(r.value)["event_id"] for r in records]
    assert sent == [history[0], history[1], history[1], history[2]]  # nothing lost; one re-send
    seen: list[str] = []
    for event_id in sent:  # what docs/CONSOLE.md asks of a subscriber
        if event_id not in seen:
            seen.append(event_id)
    assert seen == history


def test_the_consoles_named_queries_answer_what_storage_holds_on_both_backends(start_worker, broker, city):
    """clickhouse-server 18.16 (as entwatch_reader) and chDB answer the console's reads alike."""
    worker = replayed(start_worker(), broker, city)
    risky = {r["uscc"] for r in worker.query("SELECT uscc FROM risk FINAL WHERE score >= 60")}
    listed = worker.read("console_supervision")
    assert {r["uscc"] for r in listed} == risky and all(r["name"] and r["town"] for r in listed)
    town = listed[0]["town"]
    assert {r["uscc"] for r in worker.read("console_supervision", town=town)} == {
        r["uscc"] for r in listed if r["town"] == town}
    rule = listed[0]["rules"][0]
    assert {r["uscc"] for r in worker.read("console_supervision", rule=rule)} == {
        r["uscc"] for r in listed if rule in r["rules"]}
    critical = {r["uscc"] for r in worker.query("SELECT uscc FROM alerts FINAL WHERE status = 'open' "
                                                "AND severity = 'critical'")}
    assert {r["uscc"] for r in worker.read("console_supervision", severity="critical")} == risky & critical

    inbox = worker.read("console_inbox", limit=10000)
    assert len(inbox) == worker.scalar("SELECT count() FROM alerts FINAL WHERE status = 'open'") > 0
    assert [a["detected_at"] for a in inbox] == sorted((a["detected_at"] for a in inbox), reverse=True)
    assert {a["alert_id"] for a in worker.read("console_inbox", town=town, limit=10000)} == {
        a["alert_id"] for a in inbox if a["town"] == town}
    (one,) = worker.read("console_alert", alert_id=inbox[0]["alert_id"])
    assert {k: one[k] for k in inbox[0]} == inbox[0] and "evidence" in one and "evidence" not in inbox[0]

    facets = worker.read("console_facets")
    assert sum(f["n"] for f in facets if f["what"] == "town") == worker.scalar(
        "SELECT count() FROM enterprises FINAL")
    complainer = worker.scalar("SELECT uscc FROM complaints FINAL GROUP BY uscc ORDER BY count() DESC, uscc LIMIT 1")
    weekly = worker.read("console_complaints_weekly", uscc=complainer)
    assert sum(w["complaints"] for w in weekly) == worker.scalar(
        f"SELECT count() FROM complaints FINAL WHERE uscc = '{complainer}'")

"""The provisioned dashboards and rules against real services: a real Prometheus scraping
a real worker runs every PromQL expression; every ClickHouse query of the enterprise
dashboard runs on the server (18.16) and on chDB after a replay."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from datetime import date, datetime

import orjson
import pytest
import yaml

from producers.simulator import AnomalyRates, SimulationConfig, generate
from streams.broker import free_port
from streams.pipeline import replay_in_process
from streams.settings import Settings
from tests.conftest import require, wait_until
from tests.grafana import RULES, dashboard, grafana_promql, grafana_sql, promql_queries, sql_queries
from tests.integration.test_pipeline import EVENTS, _metric, replay
from tests.services import stop_process

pytestmark = pytest.mark.integration


class Prometheus:
    """A real Prometheus on loopback, scraping one worker every second, with the rules loaded."""

    def __init__(self, tmp_path, worker_port: int):
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "entwatch", "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}]}],
        }
        self.config = tmp_path / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.log = tmp_path / "prometheus.log"
        self.args = ["prometheus", f"--config.file={self.config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                     f"--web.listen-address=127.0.0.1:{self.port}"]
        self.proc = None

    def start(self) -> "Prometheus":
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False
        wait_until(ready, timeout=30, what="prometheus ready")
        return self

    def query(self, expr: str) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 400/422 carry the error as JSON
            return json.loads(exc.read())

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)


@pytest.mark.parametrize("storage_url", ["chdb"], indirect=True)  # the metrics do not depend on the backend
def test_every_promql_expression_runs_on_a_real_prometheus_scraping_a_worker(start_worker, broker, tmp_path):
    require(shutil.which("prometheus") is not None, "prometheus is not installed (apt-get install prometheus)")
    worker = start_worker()
    prom = Prometheus(tmp_path, worker.port).start()
    try:
        replay(EVENTS, broker.url)
        wait_until(lambda: _metric(worker.metrics(), "entwatch_events_in_total") > 0, timeout=30, what="events consumed")
        up = wait_until(lambda: prom.query('up{job="entwatch"} == 1')["data"]["result"], timeout=20,
                        what="the worker scraped")
        assert up[0]["metric"]["instance"] == f"127.0.0.1:{worker.port}"
        throughput = grafana_promql(next(e for where, e in promql_queries() if "Throughput by kind" in where))
        wait_until(lambda: prom.query(throughput)["data"]["result"], timeout=20, what="throughput series")
        # a counter's first sample is not an increase: replay again while Prometheus watches
        # (a replayed event is consumed and counted again, and stored once)
        replay(EVENTS, broker.url)
        result = wait_until(lambda: [r for r in prom.query(throughput)["data"]["result"] if float(r["value"][1]) > 0],
                            timeout=20, what="throughput above zero")
        assert "utility" in {r["metric"]["kind"] for r in result}

        failed = {}
        for where, expr in promql_queries():
            answer = prom.query(grafana_promql(expr))
            if answer.get("status") != "success":
                failed[where] = (expr, answer.get("error"))
        assert not failed, failed
        assert prom.query('count(up{job="entwatch"})')["data"]["result"][0]["value"][1] == "1"
        rules = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{prom.port}/api/v1/rules", timeout=10).read())
        loaded = [r for g in rules["data"]["groups"] for r in g["rules"]]
        assert loaded and all(r["health"] != "err" for r in loaded), [r for r in loaded if r["health"] == "err"]
    finally:
        prom.stop()


@pytest.fixture(scope="module")
def small_city(tmp_path_factory):
    """A few enterprises with every anomaly, so alerts and risk rows exist (as in test_alerts.py)."""
    rates = AnomalyRates(**{name: 0.15 for name in AnomalyRates.__dataclass_fields__})
    config = SimulationConfig(enterprises=15, days=120, seed=7, start=date(2024, 1, 1), rates=rates,
                              electricity_interval="day", late_share=0.0)
    path = tmp_path_factory.mktemp("city") / "events.jsonl"
    lines = [orjson.dumps(obj) if isinstance(obj, dict) else obj.encode() for obj in generate(config)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, lines


def test_every_enterprise_dashboard_query_runs_and_the_drill_down_finds_the_enterprise(start_worker, broker, small_city):
    path, lines = small_city
    accepted = sum(r.accepted.total() for r in replay_in_process(lines, Settings().partitions))
    worker = start_worker()
    replay(path, broker.url)
    wait_until(lambda: _metric(worker.metrics(), "entwatch_processing_latency_seconds_count") >= accepted,
               timeout=60, what="the city consumed and stored")
    assert worker.scalar("SELECT count() FROM alerts FINAL") and worker.scalar("SELECT count() FROM risk FINAL")
    # the enterprise with the most alerts among those with meter readings (a dormant one has none)
    uscc = worker.scalar("SELECT uscc FROM alerts FINAL WHERE uscc IN (SELECT uscc FROM utility_daily) "
                         "GROUP BY uscc ORDER BY count() DESC, uscc LIMIT 1")
    start, end = datetime(2023, 1, 1), datetime(2025, 12, 31)
    dash = dashboard("enterprise-monitoring.json")
    answers, failed = {}, {}
    for where, sql in sql_queries(dash):
        try:
            answers[where] = worker.query(grafana_sql(sql, {"uscc": uscc}, start, end))
        except urllib.error.HTTPError as exc:
            failed[where] = (sql, exc.read().decode()[:300])
    assert not failed, failed

    assert answers["Open alerts by rule and town"] or not worker.scalar("SELECT count() FROM alerts FINAL WHERE status = 'open'")
    assert answers["Alerts over time (by detection day and rule)"]
    assert [r["uscc"] for r in answers["Enterprise"]] == [uscc]
    for title, table in (("Daily utility consumption", "utility_daily"), ("Monthly tax (CNY)", "tax_monthly"),
                         ("Monthly social insurance (insured headcount)", "social_monthly"),
                         ("Alerts of this enterprise", "alerts")):
        expected = worker.scalar(f"SELECT count() FROM {table} FINAL WHERE uscc = '{uscc}'")
        assert expected and len(answers[title]) == expected, (title, len(answers[title]), expected)
    high = worker.scalar("SELECT count() FROM risk FINAL WHERE score >= 60")
    assert len(answers["Supervision list (risk score >= 60)"]) == high == len(answers["variable uscc"])
    assert high, "the small city puts no enterprise on the supervision list: the join is untested"
    assert all(r["name"] and r["town"] for r in answers["Supervision list (risk score >= 60)"])


def test_the_init_job_creates_the_topics_and_the_schema_once(broker, clickhouse_server):
    """What compose's one-shot `init` service runs, natively against a real broker and server."""
    import os
    import sys
    import uuid

    from streams.storage import open_storage
    from tests.grafana import DEPLOY

    db = f"init_{uuid.uuid4().hex[:10]}"
    url = f"clickhouse://default@127.0.0.1:{clickhouse_server.tcp_port}/{db}"
    env = {**os.environ, "ENTWATCH_BROKER_URL": broker.url, "ENTWATCH_STORAGE_URL": url, "ENTWATCH_PARTITIONS": "3"}
    runs = [subprocess.run([sys.executable, str(DEPLOY / "init.py")], capture_output=True, text=True, timeout=60, env=env)
            for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert "enterprise.utility" in runs[0].stdout and "none (all existed)" in runs[1].stdout
    storage = open_storage(url)
    try:
        tables = {r["name"] for r in storage.query(f"SHOW TABLES FROM {db}")}
    finally:
        storage.close()
    assert {"events", "utility_daily", "tax_monthly", "social_monthly", "enterprises", "alerts", "risk"} <= tables

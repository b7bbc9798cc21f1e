"""deploy/: Prometheus config and rules checked by promtool; Grafana provisioning and
dashboards checked as Grafana reads them."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import require
from tests.grafana import DASHBOARDS, DATASOURCES, DEPLOY, dashboard, datasource_uids, panels, promql_queries, sql_queries, targets

PROMETHEUS = DEPLOY / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess:
    require(shutil.which("promtool") is not None, "promtool is not installed (apt-get install prometheus)")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, cwd=PROMETHEUS)


def test_promtool_accepts_the_scrape_config():
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_accepts_the_alert_rules():
    done = promtool("check", "rules", "rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_alert_rules_pass_their_promtool_unit_tests():
    done = promtool("test", "rules", "rules.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_cover_every_operations_case_and_say_what_to_do():
    rules = [r for g in yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"] for r in g["rules"]]
    exprs = " ".join(r["expr"] for r in rules)
    for metric in ("entwatch_source_freshness_seconds", "entwatch_consumer_lag", "entwatch_events_deadlettered_total",
                   "entwatch_sink_failures_total", 'up{job="entwatch"} == 0'):
        assert metric in exprs, metric
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 80, rule["alert"]
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS / "rules.test.yml").read_text()))
    assert len(tested) >= 2 and tested <= {r["alert"] for r in rules}


def test_prometheus_finds_the_worker_replicas_through_compose_dns():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "entwatch")
    assert job["dns_sd_configs"][0]["names"] == ["worker"] and job["dns_sd_configs"][0]["port"] == 6066


def test_there_are_the_two_dashboards():
    assert {d.name for d in DASHBOARDS} >= {"pipeline-health.json", "enterprise-monitoring.json"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_a_dashboard_is_valid_grafana_json(path):
    dash = dashboard(path.name)
    assert isinstance(dash["schemaVersion"], int) and dash["schemaVersion"] >= 36
    assert dash["uid"] and dash["title"]
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    uids = datasource_uids()
    for panel, target in targets(dash):
        for ds in (panel.get("datasource"), target.get("datasource")):
            if ds:
                assert ds["uid"] in uids and uids[ds["uid"]] == ds["type"], (panel["title"], ds)
        assert target.get("expr") or target.get("rawSql"), panel["title"]
    for var in dash.get("templating", {}).get("list", []):
        if "datasource" in var:
            assert var["datasource"]["uid"] in uids
    for panel in panels(dash):
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys(), panel["title"]


def test_dashboard_uids_are_unique():
    uids = [dashboard(p.name)["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids))


def test_the_pipeline_dashboard_shows_what_operations_needs():
    exprs = " ".join(t["expr"] for _, t in targets(dashboard("pipeline-health.json")))
    for metric in ("entwatch_events_in_total", "histogram_quantile(0.5", "histogram_quantile(0.99", "entwatch_consumer_lag",
                   "entwatch_events_deadlettered_total", "entwatch_sink_rows_total", "entwatch_sink_failures_total",
                   "entwatch_source_freshness_seconds", "entwatch_open_alerts"):
        assert metric in exprs, metric
    assert promql_queries()


def test_the_enterprise_dashboard_drills_down_by_uscc():
    dash = dashboard("enterprise-monitoring.json")
    assert [v["name"] for v in dash["templating"]["list"]] == ["uscc"]
    sql = " ".join(q for _, q in sql_queries(dash))
    for table in ("alerts FINAL", "risk FINAL", "utility_daily FINAL", "tax_monthly FINAL", "social_monthly FINAL"):
        assert table in sql, table
    drill = [q for _, q in sql_queries(dash) if "'${uscc}'" in q]
    assert len(drill) >= 5


def test_provisioning_defines_the_two_datasources_with_fixed_uids():
    uids = datasource_uids()
    assert uids == {"entwatch-prometheus": "prometheus", "entwatch-clickhouse": "grafana-clickhouse-datasource"}
    text = "".join(p.read_text() for p in DATASOURCES.glob("*.yml"))
    assert "$CLICKHOUSE_GRAFANA_PASSWORD" in text and "entwatch_grafana" in text
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "entwatch.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_init_refuses_example_secrets_in_one_line_that_names_them_and_hides_them(tmp_path):
    import os
    import sys
    import time

    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(DEPLOY.parent),
           "ENTWATCH_BROKER_URL": "kafka://127.0.0.1:1", "ENTWATCH_STORAGE_PASSWORD": "change-me-writer",
           "GRAFANA_ADMIN_PASSWORD": "change-me-admin", "CLICKHOUSE_READER_PASSWORD": "a-real-one-7"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(DEPLOY / "init.py")], capture_output=True, text=True, timeout=60,
                          env=env, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "ENTWATCH_STORAGE_PASSWORD" in done.stderr and "GRAFANA_ADMIN_PASSWORD" in done.stderr
    assert "CLICKHOUSE_READER_PASSWORD" not in done.stderr and "change-me-writer" not in done.stderr
    assert time.monotonic() - started < 30  # refused before trying the broker (30 attempts otherwise)


def test_grafana_reads_clickhouse_as_its_read_only_user():
    text = "".join(p.read_text() for p in DATASOURCES.glob("*.yml"))
    assert "username: entwatch_grafana" in text and "entwatch_writer" not in text and "entwatch_reader" not in text

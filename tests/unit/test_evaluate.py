"""``entwatch evaluate``: matching alerts to the ground truth, the figures, the command."""

from __future__ import annotations

import json
from datetime import date

import pytest

from detectors.findings import RULES
from detectors.city import run_events
from producers.simulator import AnomalyRates, SimulationConfig, generate, write_files
from streams.cli import main
from streams.contracts import validate_event
from streams.evaluate import TruthRecord, fold_alerts, load_truth, quantile, score

A, B, C = "91441900000000001A", "91441900000000002B", "91441900000000003C"


def truth(uscc, rule, start, end, caused_by=None):
    return {"uscc": uscc, "rule": rule, "start": start, "end": end,
            "parameters": {"caused_by": caused_by} if caused_by else {}}


def alert(alert_id, uscc, rule, start, end, detected, status="open", severity="warning"):
    return {"alert_id": alert_id, "uscc": uscc, "rule": rule, "window_start": start, "window_end": end,
            "detected_at": detected, "status": status, "severity": severity}


def figures(alerts, records, enterprises=1000, months=12.0, **kw):
    return score(fold_alerts(alerts), load_truth(records), enterprises, months, **kw)


def test_messages_of_one_alert_fold_into_one_alert_with_its_first_detection_and_widest_window():
    folded = fold_alerts([
        alert("x", A, "utility_drop", "2024-05-06", "2024-05-08", "2024-05-10T16:00:00Z"),
        alert("x", A, "utility_drop", "2024-05-06", "2024-05-15", "2024-05-10T16:00:00Z", severity="critical"),
        alert("x", A, "utility_drop", "2024-05-06", "2024-05-20", "2024-05-10T16:00:00Z", status="resolved"),
    ])
    assert len(folded) == 1
    a = folded[0]
    assert (a.window_start, a.window_end, a.severity, a.resolved) == (
        date(2024, 5, 6), date(2024, 5, 20), "critical", True)


def test_precision_recall_f1_and_delays_are_exact_on_a_hand_made_case():
    records = [truth(A, "utility_drop", "2024-05-06", "2024-05-20"),
               truth(B, "utility_drop", "2024-06-03", "2024-06-10"),
               truth(C, "utility_drop", "2024-07-01", "2024-07-09")]        # missed
    alerts = [alert("a", A, "utility_drop", "2024-05-06", "2024-05-09", "2024-05-10T16:00:00Z"),  # 2024-05-11 00:00 CST
              alert("b", B, "utility_drop", "2024-06-03", "2024-06-05", "2024-06-06T16:00:00Z"),  # 2024-06-07 00:00 CST
              alert("c", B, "utility_drop", "2024-09-02", "2024-09-04", "2024-09-05T16:00:00Z")]  # false
    r = figures(alerts, records)["rules"]["utility_drop"]
    assert (r["alerts"], r["correct_alerts"], r["false_alerts"], r["truth"], r["detected"]) == (3, 2, 1, 3, 2)
    assert r["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert r["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert r["f1"] == pytest.approx(2 / 3, abs=1e-4)
    assert r["delay_median_days"] == 4.5          # delays 5 and 4 days
    assert r["delay_p90_days"] == 4.9
    assert r["false_alerts_per_1000_enterprise_months"] == pytest.approx(1 / 12, abs=1e-3)  # 1 / (1000 × 12) × 1000
    assert [m["uscc"] for m in r["missed"]] == [C]


def test_an_alert_matches_within_the_tolerance_but_not_beyond_it():
    records = [truth(A, "utility_spike", "2024-05-10", "2024-05-12")]
    near = [alert("n", A, "utility_spike", "2024-05-15", "2024-05-16", "2024-05-17T00:00:00Z")]
    far = [alert("f", A, "utility_spike", "2024-05-25", "2024-05-26", "2024-05-27T00:00:00Z")]
    assert figures(near, records)["rules"]["utility_spike"]["precision"] == 1.0
    assert figures(near, records, tolerance_days=0)["rules"]["utility_spike"]["precision"] == 0.0
    assert figures(far, records)["rules"]["utility_spike"]["recall"] == 0.0


def test_an_alert_of_another_rule_or_enterprise_does_not_match():
    records = [truth(A, "utility_drop", "2024-05-06", "2024-05-20")]
    alerts = [alert("x", A, "utility_spike", "2024-05-06", "2024-05-08", "2024-05-09T00:00:00Z"),
              alert("y", B, "utility_drop", "2024-05-06", "2024-05-08", "2024-05-09T00:00:00Z")]
    rules = figures(alerts, records)["rules"]
    assert rules["utility_drop"]["recall"] == 0.0 and rules["utility_drop"]["false_alerts"] == 1
    assert rules["utility_spike"]["precision"] == 0.0 and rules["utility_spike"]["recall"] is None


def test_a_derived_truth_record_is_allowed_but_not_required():
    records = [truth(A, "utility_drop", "2024-05-06", "2024-05-31"),
               truth(A, "tax_sales_drop", "2024-05-01", "2024-05-31", caused_by="utility_drop"),
               truth(B, "tax_sales_drop", "2024-05-01", "2024-05-31", caused_by="utility_drop")]
    alerts = [alert("x", A, "tax_sales_drop", "2024-05-01", "2024-05-31", "2024-06-10T00:00:00Z")]
    r = figures(alerts, records)["rules"]["tax_sales_drop"]
    assert (r["precision"], r["recall"], r["truth"], r["allowed_truth"], r["allowed_detected"]) == (1.0, None, 0, 2, 1)


def test_false_alerts_in_the_spring_festival_or_a_holiday_on_normal_enterprises_are_counted():
    records = [truth(A, "utility_drop", "2024-05-06", "2024-05-20")]
    alerts = [alert("sf", B, "utility_drop", "2024-02-19", "2024-02-21", "2024-02-23T00:00:00Z"),   # shutdown
              alert("nd", C, "utility_spike", "2024-09-30", "2024-10-02", "2024-10-04T00:00:00Z"),  # National Day
              alert("ok", C, "utility_drop", "2024-06-03", "2024-06-05", "2024-06-07T00:00:00Z"),   # ordinary days
              alert("an", A, "utility_spike", "2024-10-01", "2024-10-02", "2024-10-04T00:00:00Z")]  # anomalous firm
    out = figures(alerts, records)
    assert out["holiday_false_alerts"] == 2
    assert {a["alert_id"] for a in out["holiday_false_alert_examples"]} == {"sf", "nd"}


def test_quantiles_interpolate_between_order_statistics():
    assert quantile([3.0], 0.9) == 3.0
    assert quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9) == pytest.approx(9.1)


def test_truth_records_read_from_the_simulator_format():
    [t] = load_truth([truth(A, "headcount_drop", "2024-06-01", "2024-06-30")])
    assert t == TruthRecord(A, "headcount_drop", date(2024, 6, 1), date(2024, 6, 30), False)


# a small city where every rule has something to find
SMALL = SimulationConfig(enterprises=80, days=150, seed=21, electricity_interval="day", water=False,
                         rates=AnomalyRates(**{rule: 0.04 for rule in RULES}))


def test_the_same_events_through_run_events_twice_give_the_identical_alert_list():
    events = [validate_event(e) for e in generate(SMALL) if isinstance(e, dict)]
    events = [e for e in events if not isinstance(e, tuple)]
    first, risk1 = run_events(events, flush=True)
    second, risk2 = run_events(events, flush=True)
    assert len({a["alert_id"] for a in first}) >= 5
    assert first == second and risk1 == risk2
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_evaluate_simulate_writes_the_report_the_chart_and_the_figures(tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(["evaluate", "--simulate", "--seed", "5", "--enterprises", "120", "--days", "150",
                 "--electricity-interval", "day", "--quiet", "--out", str(out)])
    assert code == 0
    assert {p.name for p in out.iterdir()} == {"report.md", "evaluation.png", "evaluation.json", "alerts.jsonl"}
    final = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    assert final and len({m["alert_id"] for m in final}) == len(final)  # one line per alert, its latest state
    figures = json.loads((out / "evaluation.json").read_text())
    assert set(figures["rules"]) >= {"utility_drop", "complaint_burst"}
    assert figures["enterprises"] == 120 and "holiday_false_alerts" in figures
    assert (out / "evaluation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| `utility_drop` |" in (out / "report.md").read_text()
    assert "precision" in capsys.readouterr().out


@pytest.mark.parametrize("partitions", ["1", "4"])
def test_evaluate_events_runs_an_events_file(tmp_path, partitions):
    config = SimulationConfig(enterprises=40, days=60, seed=3, electricity_interval="day")
    write_files(config, tmp_path / "events.jsonl", tmp_path / "truth.jsonl")
    code = main(["evaluate", "--truth", str(tmp_path / "truth.jsonl"), "--events", str(tmp_path / "events.jsonl"),
                 "--out", str(tmp_path / "out"), "--quiet", "--partitions", partitions])
    assert code == 0
    figures = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert figures["enterprises"] == 40 and "rejected" in figures["source"]


def test_evaluate_alerts_scores_a_published_alert_file(tmp_path):
    (tmp_path / "truth.jsonl").write_text(json.dumps(truth(A, "utility_drop", "2024-05-06", "2024-05-20")) + "\n")
    (tmp_path / "alerts.jsonl").write_text("\n".join(json.dumps(m) for m in [
        alert("x", A, "utility_drop", "2024-05-06", "2024-05-08", "2024-05-10T16:00:00Z"),
        alert("x", A, "utility_drop", "2024-05-06", "2024-05-20", "2024-05-10T16:00:00Z", status="resolved"),
    ]) + "\n")
    code = main(["evaluate", "--truth", str(tmp_path / "truth.jsonl"), "--alerts", str(tmp_path / "alerts.jsonl"),
                 "--enterprises", "100", "--months", "12", "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 0
    r = json.loads((tmp_path / "out" / "evaluation.json").read_text())["rules"]["utility_drop"]
    assert (r["alerts"], r["precision"], r["recall"]) == (1, 1.0, 1.0)


@pytest.mark.parametrize("argv, says", [
    (["--truth", "nope.jsonl", "--alerts", "nope.jsonl", "--enterprises", "5", "--months", "1"], "no such file"),
    (["--alerts", "a.jsonl"], "give --truth"),
    (["--truth", "{truth}", "--alerts", "{truth}"], "give --enterprises"),
    (["--truth", "{bad}", "--alerts", "{truth}", "--enterprises", "5", "--months", "1"], "not JSON"),
    (["--simulate", "--enterprises", "0"], "enterprises must be at least 1"),
])
def test_bad_input_ends_in_one_line_that_says_what_to_do(tmp_path, capsys, argv, says):
    good, bad = tmp_path / "t.jsonl", tmp_path / "bad.jsonl"
    good.write_text(json.dumps(truth(A, "utility_drop", "2024-05-06", "2024-05-20")) + "\n")
    bad.write_text("{not json\n")
    argv = [a.format(truth=good, bad=bad) for a in argv]
    assert main(["evaluate", *argv, "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1 and err.startswith("entwatch evaluate: ")


def test_evaluate_cases_reports_precision_from_the_analysts_outcomes(tmp_path, monkeypatch, capsys):
    from console.store import CaseStore
    from console.cli import ConsoleSettings

    monkeypatch.setenv("ENTWATCH_DATA_DIR", str(tmp_path))
    store = CaseStore(ConsoleSettings().store_url(tmp_path))
    for n, outcome in enumerate(("confirmed", "confirmed", "false_alarm")):
        store.act(f"a{n}", A, "resolve", "li", rule="utility_drop", outcome=outcome)
    assert main(["evaluate", "--cases"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("utility_drop"))
    assert line.split()[1:5] == ["2", "0", "1", "3"] and "67%" in line

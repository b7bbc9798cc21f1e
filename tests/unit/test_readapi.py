"""The typed read API: parameters are parsed by type and refused with the parameter named;
no client text becomes SQL; the one escape function round-trips every string through chDB."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone

import pytest

from streams.readapi import QUERIES, UnknownQuery, bind
from streams.readparams import (PLACEHOLDER, Choice, Count, Day, Instant, Number, ParamError, Text, Uscc, UsccBound,
                                literal, parameter_text, render)
from streams.readsession import operator_problem, syntax_problem

USCC = "914403001922038216"
NASTY = ["'", "\\", "\\'", "''", "' OR 1=1 --", "x'); DROP TABLE events; --", "长安镇", "Ｆｕｌｌ", "a\tb",
         "{uscc:String}", "%(uscc)s", "$1", "\\x27", "\\0", "😀 emoji", "`backtick`", '"double"', "a\nb", "\0"]


@pytest.mark.parametrize("kind, raw, parsed", [
    (Uscc(), USCC, USCC),
    (UsccBound(), "0" * 18, "0" * 18),
    (Choice(("open", "resolved")), "open", "open"),
    (Text(8), "虎门镇", "虎门镇"),
    (Day(), "2024-02-29", date(2024, 2, 29)),
    (Day(), date(2024, 3, 1), date(2024, 3, 1)),
    (Instant(), "2024-03-01T08:00:00+08:00", datetime(2024, 3, 1, tzinfo=timezone.utc)),
    (Instant(), "2024-03-01T00:00:00Z", datetime(2024, 3, 1, tzinfo=timezone.utc)),
    (Count(1, 10), "7", 7),
    (Count(1, 10), 10, 10),
    (Number(0, 100), "60.5", 60.5),
    (Number(0, 100), 60, 60.0),
])
def test_a_good_value_is_parsed_to_its_type(kind, raw, parsed):
    assert kind.parse(raw) == parsed


@pytest.mark.parametrize("kind, raw", [
    (Uscc(), "914403001922038217"),           # check character
    (Uscc(), USCC + "' OR 1=1"),
    (Uscc(), 914403001922038216),
    (UsccBound(), "91440300192203821I"),      # I is not in the charset
    (UsccBound(), "0" * 17),
    (Choice(("open", "resolved")), "OPEN"),
    (Choice(("open", "resolved")), "open' OR '1'='1"),
    (Text(8), ""),
    (Text(8), "x" * 9),
    (Text(8), "a\nb"),
    (Text(8), "a\x00b"),
    (Text(8), "a\x85b"),
    (Text(8), 12),
    (Day(), "2024-02-30"),
    (Day(), "2024-3-1"),
    (Day(), "1969-12-31"),
    (Day(), datetime(2024, 3, 1, tzinfo=timezone.utc)),
    (Instant(), "2024-03-01T08:00:00"),       # no offset
    (Instant(), datetime(2024, 3, 1)),        # naive
    (Instant(), "1900-01-01T00:00:00+00:00"),
    (Instant(), "now()"),
    (Count(1, 10), "0"),
    (Count(1, 10), "11"),
    (Count(1, 10), "1; DROP TABLE events"),
    (Count(1, 10), "1e3"),
    (Count(1, 10), True),
    (Count(1, 10), 2.5),
    (Number(0, 100), "nan"),
    (Number(0, 100), "inf"),
    (Number(0, 100), "1e2"),
    (Number(0, 100), "101"),
    (Number(0, 100), "-1"),
    (Number(0, 100), True),
])
def test_a_bad_value_is_refused_with_what_to_give(kind, raw):
    with pytest.raises(ValueError) as refused:
        kind.parse(raw)
    assert str(refused.value).startswith(("give", "must", "control", "check digit", "invalid", "character")), \
        str(refused.value)


def test_an_unknown_query_says_which_exist():
    with pytest.raises(UnknownQuery, match="alerts"):
        bind("drop_table", {})


@pytest.mark.parametrize("name, params, param", [
    ("alerts", {"sql": "SELECT 1"}, "sql"),
    ("alerts", {"status": "open'--"}, "status"),
    ("enterprise", {}, "uscc"),
    ("enterprise_series", {"uscc": USCC, "first_day": "2024-03-01", "last_day": "2024-01-01"}, "last_day"),
    ("enterprise_series", {"uscc": USCC, "first_day": "2000-01-01", "last_day": "2024-01-01"}, "last_day"),
    ("events_range", {"kind": "utility", "first_uscc": "Y" * 18, "last_uscc": "0" * 18}, "last_uscc"),
    ("monthly_range", {"kind": "utility", "first_uscc": "0" * 18, "last_uscc": "Y" * 18}, "kind"),
    ("supervision_list", {"threshold": "60 OR 1=1"}, "threshold"),
])
def test_binding_refuses_with_the_parameter_named(name, params, param):
    with pytest.raises(ParamError) as refused:
        bind(name, params)
    assert refused.value.param == param


def test_a_filter_is_added_only_when_its_parameter_is_given():
    assert "WHERE" not in bind("alerts", {}).sql.split("ORDER BY")[0].replace("FINAL )", "")
    bound = bind("alerts", {"town": "虎门镇", "severity": "warning"})
    assert "town = {town:String}" in bound.sql and "indexOf(" in bound.sql and "rule =" not in bound.sql
    assert bound.values == {"town": "虎门镇", "severity": "warning", "limit": 200}


def test_the_table_of_a_kind_comes_from_the_code():
    assert "FROM tax_monthly FINAL" in bind("monthly", {"uscc": USCC, "kind": "tax"}).sql
    assert "FROM social_monthly FINAL" in bind("monthly", {"uscc": USCC, "kind": "social"}).sql


def test_no_client_value_is_in_the_sql_text():
    bound = bind("alerts", {"town": "x' OR '1'='1", "uscc": USCC, "since": "2024-01-01T00:00:00+08:00"})
    assert "x' OR" not in bound.sql and USCC not in bound.sql and "2024" not in bound.sql


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_every_placeholder_has_its_parameters_type(name):
    query = QUERIES[name]
    for sql in (query.sql.values() if isinstance(query.sql, dict) else [query.sql]):
        text = sql + " ".join([*query.filters.values(), *query.prewhere.values()])
        for match in PLACEHOLDER.finditer(text):
            assert query.params[match.group(1)].clickhouse == match.group(2), match.group(0)
        assert "{" not in PLACEHOLDER.sub("", text.replace("{where}", "").replace("{prewhere}", "")), "a stray brace"


@pytest.mark.parametrize("name", sorted(n for n, q in QUERIES.items() if q.prewhere))
def test_prewhere_conditions_are_on_sorting_key_columns_only(name):
    """Before FINAL, only a condition every version of a row shares keeps the latest version exact."""
    keys = {"alerts": {"uscc", "alert_id"}}
    for param, condition in QUERIES[name].prewhere.items():
        column = condition.split()[0]
        assert column in keys["alerts"], (param, condition)
    bound = bind(name, {p: USCC if p == "uscc" else "a1" for p in QUERIES[name].prewhere})
    assert "FINAL PREWHERE" in bound.sql and "{prewhere}" not in bound.sql


@pytest.mark.parametrize("value, text", [
    ("it's", "'it\\'s'"),
    ("a\\b", "'a\\\\b'"),
    ("a\nb\tc\0", "'a\\nb\\tc\\0'"),
    (42, "42"),
    (0.1, "0.1"),
    (date(2024, 3, 1), "toDate('2024-03-01')"),
    (datetime(2024, 3, 1, 8, tzinfo=timezone(timedelta(hours=8))), "toDateTime('2024-03-01 00:00:00', 'UTC')"),
])
def test_literal_escapes_what_clickhouse_reads_specially(value, text):
    assert literal(value) == text


@pytest.mark.parametrize("value", [True, None, float("nan"), datetime(2024, 3, 1), [1], b"x"])
def test_literal_refuses_what_no_parameter_type_produces(value):
    with pytest.raises(TypeError):
        literal(value)


def test_the_escape_function_and_bound_parameters_round_trip_every_string_through_chdb():
    """chDB (in a child process: one engine per process) reads back exactly what was sent,
    as a literal (what 18.16 gets) and as a bound query parameter (what chDB gets)."""
    sql = " UNION ALL ".join(f"SELECT {i} AS i, {literal(s)} AS lit" for i, s in enumerate(NASTY))
    params = {f"p{i}": parameter_text(s) for i, s in enumerate(NASTY)}
    bound = " UNION ALL ".join(f"SELECT {i} AS i, {{p{i}:String}} AS par" for i in range(len(NASTY)))
    script = ("import chdb, json, sys; c = chdb.connect(':memory:'); a = json.loads(sys.argv[1]); "
              "r1 = c.query(a['sql'], 'JSONEachRow').bytes().decode(); "
              "r2 = c.query(a['bound'], 'JSONEachRow', params=a['params']).bytes().decode(); print(json.dumps([r1, r2]))")
    done = subprocess.run([sys.executable, "-c", script, json.dumps({"sql": sql, "bound": bound, "params": params})],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    literal_rows, bound_rows = (sorted((json.loads(line) for line in out.splitlines() if line), key=lambda r: r["i"])
                                for out in json.loads(done.stdout.splitlines()[-1]))
    assert [r["lit"] for r in literal_rows] == NASTY
    assert [r["par"] for r in bound_rows] == NASTY


def test_render_replaces_each_placeholder_with_a_literal():
    assert render("SELECT {a:String}, {n:UInt32}", {"a": "'", "n": 3}) == "SELECT '\\'', 3"


@pytest.mark.parametrize("sql, problem", [
    ("SELECT count() FROM events", None),
    ("WITH 1 AS x SELECT x", None),
    ("select 1;", None),
    ("SELECT 1; SELECT 2", "one statement"),
    ("INSERT INTO events SELECT 1", "only SELECT"),
    ("WITH 1 AS x INSERT INTO events SELECT x", "INTO"),
    ("SELECT 'x' INTO OUTFILE '/tmp/x'", "INTO"),
    ("SELECT 1 PARALLEL WITH DROP TABLE events", "PARALLEL"),
    ("SELECT 1 FORMAT TSV", "FORMAT"),
    ("KILL QUERY WHERE 1", "only SELECT"),
    ("SELECT 1 FROM (KILL QUERY WHERE 1)", "KILL"),
    ("", "give one query"),
    ("SELECT " + "1+" * 20_000 + "1", "give one query"),
])
def test_the_operator_query_text_checks(sql, problem):
    found = operator_problem(sql)
    assert (found is None) if problem is None else (found is not None and problem in found), found


@pytest.mark.parametrize("tree, problem", [
    ("SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  Function count", None),
    ("SelectWithUnionQuery (children 3)\n ExpressionList (children 1)\n Literal '/tmp/y'", "plain SELECT"),
    ("ParallelWithQuery 2 SelectWithUnionQuery (children 2)", "plain SELECT"),
    ("SelectWithUnionQuery (children 1)\n   Function file (alias f) (children 1)", "function file"),
    ("SelectWithUnionQuery (children 1)\n   Function remoteSecure (children 1)", "remoteSecure"),
    ("SelectWithUnionQuery (children 1)\n   Function dictGetString (children 1)", "dictGetString"),
    ("SelectWithUnionQuery (children 1)\n    ColumnsTransformerList (children 1)\n     ColumnsApplyTransformer",
     "ColumnsTransformerList"),
])
def test_the_operator_query_syntax_tree_checks(tree, problem):
    found = syntax_problem(tree)
    assert (found is None) if problem is None else (found is not None and problem in found), found

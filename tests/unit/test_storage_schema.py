"""The storage schema as DDL text, and choosing a backend by URL (no ClickHouse needed)."""

from __future__ import annotations

import re

import pytest

from streams.storage import TABLES, StorageError, open_storage, schema_statements


def columns(statement: str) -> tuple[str, ...]:
    """The column names of a CREATE TABLE statement (commas inside parentheses ignored)."""
    body = statement[statement.index("(") + 1:statement.index(") ENGINE")]
    parts, depth, current = [], 0, ""
    for ch in body:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return tuple(p.split()[0] for p in [*parts, current] if p.strip())


def tables(version: tuple[int, ...]) -> dict[str, str]:
    stmts = schema_statements("ew", version)
    return {re.match(r"CREATE TABLE IF NOT EXISTS ew\.(\w+)", s).group(1): s for s in stmts[1:]
            if not s.startswith("CREATE MATERIALIZED VIEW")}


def test_clickhouse_18_16_gets_no_low_cardinality():
    assert not any("LowCardinality" in s for s in schema_statements("ew", (18, 16, 1)))


def test_a_current_server_keeps_low_cardinality():
    assert "kind LowCardinality(String)" in tables((24, 1))["events"]


def test_the_database_is_created_first_and_named_everywhere():
    stmts = schema_statements("dg_test", (24, 1))
    assert stmts[0] == "CREATE DATABASE IF NOT EXISTS dg_test"
    assert all("{db}" not in s and "--" not in s for s in stmts)


@pytest.mark.parametrize("version", [(18, 16, 1), (24, 1)], ids=["18.16", "24.1"])
def test_every_table_has_a_create_statement(version):
    assert sorted(tables(version)) == sorted(TABLES)


@pytest.mark.parametrize("table", sorted(TABLES))
def test_the_ddl_columns_match_the_tables_the_code_writes(table):
    ddl = tables((18, 16, 1))
    like = re.match(r"CREATE TABLE IF NOT EXISTS ew\.\w+ AS ew\.(\w+)", ddl[table])  # the columns of another
    assert columns(ddl[like.group(1) if like else table]) == TABLES[table]


@pytest.mark.parametrize("url", ["postgres://x@h/db", "/var/lib/entwatch", "http://127.0.0.1:8123"])
def test_an_unknown_storage_scheme_says_what_to_use(url):
    with pytest.raises(StorageError, match=r"use clickhouse://.*chdb:///"):
        open_storage(url)


def test_a_chdb_url_without_a_directory_is_refused():
    with pytest.raises(StorageError, match="needs a directory"):
        open_storage("chdb://")

"""Column types on clickhouse-server 18.16 and chDB: an enterprise established before 1970
(a ClickHouse ``Date`` on 18.16 starts at 1970-01-01) is stored with its date, and a data
directory whose ``enterprises.established_on`` is still a ``Date`` is altered on start
without losing a value."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from streams.storage import apply_schema, open_storage
from streams.uscc import make_uscc

pytestmark = pytest.mark.integration

OLD_ENTERPRISES = """CREATE TABLE {db}.enterprises (uscc String, name String, industry String, town String,
    registered_capital_cny Float64, established_on Date, status String, key_enterprise UInt8,
    event_time DateTime('UTC')) ENGINE = ReplacingMergeTree(event_time) ORDER BY uscc"""


def enterprise(n: int, established: date) -> dict:
    return {"uscc": make_uscc(f"91441900MA{n:07d}"), "name": f"企业{n}", "industry": "C13", "town": "虎门镇",
            "registered_capital_cny": 1e6, "established_on": established, "status": "active",
            "key_enterprise": 0, "event_time": datetime(2024, 3, 1, tzinfo=timezone.utc)}


@pytest.fixture
def storage(storage_url):
    storage = open_storage(storage_url)
    yield storage
    storage.close()


def established(storage) -> dict[str, str]:
    return {r["uscc"]: r["established_on"] for r in storage.query(
        "SELECT uscc, toString(established_on) AS established_on FROM enterprises FINAL")}


def test_an_enterprise_established_before_1970_is_stored_with_its_date(storage):
    apply_schema(storage)
    rows = [enterprise(1, date(1958, 3, 1)), enterprise(2, date(1800, 1, 1)), enterprise(3, date(2015, 6, 1))]
    storage.insert("enterprises", rows)
    assert established(storage) == {r["uscc"]: r["established_on"].isoformat() for r in rows}


def test_an_older_date_column_is_altered_on_start_and_keeps_its_values(storage):
    storage.execute(f"CREATE DATABASE IF NOT EXISTS {storage.database}")
    storage.execute(OLD_ENTERPRISES.format(db=storage.database))
    old = enterprise(4, date(2015, 6, 1))
    storage.execute(f"INSERT INTO {storage.database}.enterprises SELECT '{old['uscc']}', 'x', 'C13', '虎门镇', 1, "
                    "toDate('2015-06-01'), 'active', 0, toDateTime('2024-03-01 00:00:00', 'UTC')")
    apply_schema(storage)
    apply_schema(storage)  # a second start finds the new type and alters nothing
    kind = storage.query(f"SELECT type FROM system.columns WHERE database = '{storage.database}' "
                         "AND table = 'enterprises' AND name = 'established_on'")
    assert [r["type"] for r in kind] == ["String"]
    storage.insert("enterprises", [enterprise(5, date(1958, 3, 1))])
    assert established(storage) == {old["uscc"]: "2015-06-01", enterprise(5, date(1958, 3, 1))["uscc"]: "1958-03-01"}

"""deploy/clickhouse/users.d/entwatch-users.xml on a real server: the writer applies the
schema and writes; the workers' reader and Grafana's user read, cannot write, cannot reach
files, URLs or other servers, and cannot lift their limits; passwords come from the
environment.

The server here is Debian's 18.16: it checks the file loads, the passwords (``from_env``)
and the ``readonly=1`` profiles. The ``<grants>`` (database-level limits) need ClickHouse 22+
and are not checked here; on 18.16 they are ignored. entwatch-constraints.xml (a
``changeable_in_readonly`` constraint for Grafana's plugin) is for 22.12+ only: 18.16
refuses ``<constraints>`` and ignores the settings a client sends to a readonly=1 user,
which the last test shows."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from clickhouse_driver import Client
from clickhouse_driver.errors import ServerException

from streams.storage import apply_schema, open_storage
from tests.conftest import PASSWORDS, server_with_entwatch_users

pytestmark = pytest.mark.integration

WRITER = PASSWORDS["CLICKHOUSE_WRITER_PASSWORD"]
READERS = {"entwatch_reader": PASSWORDS["CLICKHOUSE_READER_PASSWORD"],
           "entwatch_grafana": PASSWORDS["CLICKHOUSE_GRAFANA_PASSWORD"]}
READONLY = 164  # ClickHouse's error code for "... in readonly mode"
MEMORY_LIMIT = 241


@pytest.fixture(scope="module")
def server():
    """A private server with entwatch's users file, passwords in its environment."""
    s = server_with_entwatch_users()
    yield s
    s.stop()


def client(server, user: str, password: str, **kw) -> Client:
    return Client("127.0.0.1", port=server.tcp_port, user=user, password=password, **kw)


@pytest.fixture(scope="module")
def stored(server):
    """The schema applied and one risk row written, as entwatch_writer (the init job and the workers)."""
    storage = open_storage(f"clickhouse://entwatch_writer:{WRITER}@127.0.0.1:{server.tcp_port}/entwatch")
    try:
        apply_schema(storage)
        storage.insert("risk", [{"uscc": "914403001922038216", "score": 72.5, "level": "high", "rules": ["utility_drop"],
                                 "updated_at": datetime(2024, 3, 1, tzinfo=timezone.utc), "revision": 1}])
        return storage.query("SELECT uscc, score FROM risk FINAL")
    finally:
        storage.close()


def test_the_writer_applies_the_schema_and_writes(stored):
    assert stored == [{"uscc": "914403001922038216", "score": 72.5}]


@pytest.mark.parametrize("user", READERS)
def test_the_readers_read(server, stored, user):
    assert client(server, user, READERS[user], database="entwatch").execute("SELECT count() FROM risk FINAL") == [(1,)]


@pytest.mark.parametrize("user", READERS)
@pytest.mark.parametrize("statement", [
    "INSERT INTO entwatch.risk (uscc, score) VALUES",
    "DROP TABLE entwatch.risk",
    "ALTER TABLE entwatch.risk DELETE WHERE 1",
    "CREATE DATABASE elsewhere",
    "SELECT * FROM file('/etc/passwd', 'TSV', 'line String')",
    "SELECT * FROM url('http://127.0.0.1:9/x', 'TSV', 'line String')",
    "SELECT * FROM remote('127.0.0.1:9', system.one)",
    "SELECT 1 SETTINGS max_memory_usage = 0",
    "SELECT 1 SETTINGS max_execution_time = 100000",
    "SELECT 1 SETTINGS readonly = 0",
    "SET readonly = 0",
], ids=["insert", "drop", "alter", "create", "file", "url", "remote", "memory", "time", "readonly", "set"])
def test_the_readers_cannot_change_anything_reach_outside_or_lift_their_limits(server, stored, user, statement):
    reader = client(server, user, READERS[user])
    args = ([("x", 1.0)],) if statement.endswith("VALUES") else ()
    with pytest.raises(ServerException) as caught:
        reader.execute(statement, *args)
    assert caught.value.code == READONLY, str(caught.value)[:300]
    assert client(server, "entwatch_writer", WRITER).execute("SELECT count() FROM entwatch.risk") == [(1,)]


def test_settings_a_client_sends_do_not_lift_the_readers_memory_limit(server):
    """18.16 ignores them for a readonly=1 user (current servers refuse them): the profile's 1 GB holds."""
    reader = client(server, "entwatch_reader", READERS["entwatch_reader"], settings={"max_memory_usage": 0})
    with pytest.raises(ServerException) as caught:
        reader.execute("SELECT length(groupArray(number)) FROM (SELECT number FROM system.numbers LIMIT 200000000)")
    assert caught.value.code == MEMORY_LIMIT, str(caught.value)[:300]


@pytest.mark.parametrize("user", ["entwatch_writer", *READERS])
def test_a_wrong_missing_or_example_password_is_refused(server, user):
    for password in ("", "change-me-writer", "change-me-reader", "change-me-grafana"):
        with pytest.raises(ServerException):
            client(server, user, password).execute("SELECT 1")

"""ClickHouse storage behind one interface, two backends chosen by URL.

- ``clickhouse://user:pass@host:9000/db`` — a ClickHouse server over the native protocol
  (clickhouse-driver); works with 18.16 (Debian) and current servers.
- ``chdb:///path/to/dir`` — ClickHouse embedded in this process (chDB); one process owns
  the directory, so other commands ask the running worker (its typed read API,
  ``streams.readapi``, on its web port).

The schema lives in ``deploy/clickhouse/schema.sql`` and is applied by ``apply_schema``;
features the server lacks are left out (LowCardinality before 19.x).
"""

from __future__ import annotations

import logging
import os
import re
from operator import itemgetter
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

import orjson

from streams.readparams import literal

log = logging.getLogger("entwatch.storage")
SCHEMA_FILE = Path(os.environ.get("ENTWATCH_SCHEMA_FILE", Path(__file__).resolve().parent.parent / "deploy" / "clickhouse" / "schema.sql"))
DEFAULT_DB = "entwatch"

TABLES: dict[str, tuple[str, ...]] = {
    "events": ("kind", "uscc", "event_id", "source", "event_time", "payload"),
    "utility_daily": ("uscc", "utility", "day", "amount", "readings", "estimated", "version"),
    "tax_monthly": ("uscc", "period", "declared_sales_cny", "tax_paid_cny", "event_id", "event_time"),
    "social_monthly": ("uscc", "period", "insured_headcount", "contributions_cny", "event_id", "event_time"),
    "enterprises": ("uscc", "name", "industry", "town", "registered_capital_cny", "established_on",
                    "status", "key_enterprise", "event_time"),
    "complaints": ("uscc", "complaint_id", "event_id", "event_time", "category", "channel", "text"),
    "deadletters": ("topic", "partition", "offset", "stage", "reason", "detail", "received_at"),
    "alerts": ("alert_id", "uscc", "enterprise_name", "industry", "town", "rule", "severity", "status",
               "window_start", "window_end", "detected_at", "score", "observed", "expected", "evidence",
               "explanation_zh", "explanation_en", "revision"),
    "risk": ("uscc", "score", "level", "rules", "updated_at", "revision"),
    "risk_history": ("uscc", "score", "level", "rules", "updated_at", "revision"),
}


DATETIME_COLUMNS = frozenset({"event_time", "received_at", "detected_at", "updated_at"})
DATE_TEXT_COLUMNS = frozenset({"established_on"})  # dates kept as YYYY-MM-DD text (schema.sql)
# Columns whose type changed since a data directory may have been created: (table, column)
# -> the type they have now.  ``apply_schema`` alters an older column in place (ClickHouse
# converts the values: a Date becomes its YYYY-MM-DD text).
RETYPED = {("enterprises", "established_on"): "String"}


class StorageError(Exception):
    """A storage problem a person can act on (bad URL, server unreachable)."""


class Storage(Protocol):
    """What the worker and the commands need from ClickHouse."""

    database: str

    def version(self) -> tuple[int, ...]: ...
    def execute(self, sql: str) -> None: ...
    def use_database(self) -> None: ...
    def insert(self, table: str, rows: list[dict[str, Any]]) -> None: ...
    def query(self, sql: str) -> list[dict[str, Any]]:
        """Rows as dicts of JSON-like values (dates and times as ClickHouse text, UTC)."""
    def close(self) -> None: ...


def schema_statements(database: str, version: tuple[int, ...], schema_file: Path = SCHEMA_FILE) -> list[str]:
    """The DDL statements for ``database``, degraded to what ``version`` supports.

    >>> stmts = schema_statements("ew", (18, 16, 1))
    >>> stmts[0]
    'CREATE DATABASE IF NOT EXISTS ew'
    >>> any("LowCardinality" in s for s in stmts), any("LowCardinality" in s for s in schema_statements("ew", (24, 1)))
    (False, True)
    """
    text = re.sub(r"--[^\n]*", "", schema_file.read_text(encoding="utf-8"))
    lc = "LowCardinality(String)" if version >= (19, 9) else "String"
    text = text.replace("String /*lc*/", lc).replace("{db}", database)
    return [s.strip() for s in text.split(";") if s.strip()]


def apply_schema(storage: Storage) -> None:
    """Create the database and tables if they do not exist (idempotent), rebuilding a table
    whose sorting key changed (``REKEYED``).

    Afterwards ``storage.query`` resolves unqualified table names in its database."""
    statements = schema_statements(storage.database, storage.version())
    storage.execute(statements[0])
    before = sorting_keys(storage)
    set_aside_rekeyed(storage, before)
    for statement in statements[1:]:
        storage.execute(statement)
    copy_back_rekeyed(storage, sorting_keys(storage))
    retype(storage)
    if "risk_history" not in before and "risk" in before:  # scores stored before the history was kept
        columns = ", ".join(TABLES["risk_history"])
        storage.execute(f"INSERT INTO {storage.database}.risk_history ({columns}) "
                        f"SELECT {columns} FROM {storage.database}.risk")
    storage.use_database()


# Tables whose sorting key (or partitioning) changed since a data directory may have been
# created: the key they have now.  ClickHouse cannot change a key in place, so on start a
# table of another key is renamed to ``<table>_before_rekey``, the schema creates the table
# anew, the old rows are copied in (all revisions: FINAL still picks the latest) and the old
# table is dropped.  Rows written meanwhile go to the new table (nothing is lost); a start
# that stops half-way finds ``<table>_before_rekey`` and copies again (a row copied twice is
# the same row to ReplacingMergeTree).
REKEYED = {"alerts": "uscc, alert_id"}
ASIDE = "{table}_before_rekey"


def sorting_keys(storage: Storage) -> dict[str, str]:
    """The sorting key of each table of the storage's database, as ClickHouse writes it."""
    rows = storage.query(f"SELECT name, sorting_key FROM system.tables WHERE database = {literal(storage.database)}")
    return {r["name"]: r["sorting_key"] for r in rows}


def sorting_key(storage: Storage, table: str) -> str | None:
    """The sorting key of ``table`` in the storage's database, or None when there is no such table."""
    return sorting_keys(storage).get(table)


def set_aside_rekeyed(storage: Storage, keys: dict[str, str]) -> list[str]:
    """Rename each ``REKEYED`` table whose key (in ``keys``) is not the current one; returns
    their names."""
    moved = []
    for table, key in REKEYED.items():
        found, aside = keys.get(table), ASIDE.format(table=table)
        if found is not None and found != key and aside not in keys:
            log.warning("storage: %s.%s is ordered by (%s); rebuilding it ordered by (%s)",
                        storage.database, table, found, key)
            storage.execute(f"RENAME TABLE {storage.database}.{table} TO {storage.database}.{aside}")
            moved.append(table)
    return moved


def copy_back_rekeyed(storage: Storage, keys: dict[str, str]) -> int:
    """Copy the rows of each set-aside table (in ``keys``) into its new table, then drop the
    old one; returns the rows copied."""
    copied = 0
    for table in REKEYED:
        aside = ASIDE.format(table=table)
        if aside not in keys:
            continue
        columns = ", ".join(TABLES[table])
        rows = int(storage.query(f"SELECT count() AS n FROM {storage.database}.{aside}")[0]["n"])
        storage.execute(f"INSERT INTO {storage.database}.{table} ({columns}) "
                        f"SELECT {columns} FROM {storage.database}.{aside}")
        storage.execute(f"DROP TABLE {storage.database}.{aside}")
        log.warning("storage: %s.%s rebuilt (%d rows copied)", storage.database, table, rows)
        copied += rows
    return copied


def retype(storage: Storage) -> list[str]:
    """Alter each ``RETYPED`` column that still has an older type; returns the columns altered."""
    tables = ", ".join(literal(t) for t in sorted({t for t, _ in RETYPED}))
    found = {(r["table"], r["name"]): r["type"] for r in storage.query(
        f"SELECT table, name, type FROM system.columns WHERE database = {literal(storage.database)} "
        f"AND table IN ({tables})")}
    altered = []
    for (table, column), wanted in RETYPED.items():
        if found.get((table, column), wanted) != wanted:
            log.warning("storage: %s.%s.%s is %s; altering it to %s", storage.database, table, column,
                        found[(table, column)], wanted)
            storage.execute(f"ALTER TABLE {storage.database}.{table} MODIFY COLUMN {column} {wanted}")
            altered.append(f"{table}.{column}")
    return altered


def _plain(value: Any) -> Any:
    """A value as ClickHouse's text formats expect it (UTC ``YYYY-MM-DD hh:mm:ss``)."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return value


class ServerStorage:
    """A ClickHouse server over the native protocol (clickhouse-driver)."""

    def __init__(self, url: str, password: str | None = None):
        from clickhouse_driver import Client

        parts = urlparse(url)
        self.database = (parts.path or "/").strip("/") or DEFAULT_DB
        self._connect = dict(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 9000,
            user=unquote(parts.username or "default"),
            password=unquote(parts.password or "") or (password or ""),
            connect_timeout=5,
            send_receive_timeout=60,
        )
        self._client = Client(**self._connect)
        self._version: tuple[int, ...] | None = None

    def use_database(self) -> None:
        from clickhouse_driver import Client

        self._client.disconnect()
        self._client = Client(**self._connect, database=self.database)

    def version(self) -> tuple[int, ...]:
        if self._version is None:
            text = self._client.execute("SELECT version()")[0][0]
            self._version = tuple(int(p) for p in text.split(".") if p.isdigit())
        return self._version

    def execute(self, sql: str) -> None:
        self._client.execute(sql)

    def insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        columns = TABLES[table]
        data = list(map(itemgetter(*columns), rows))
        stamps = [i for i, c in enumerate(columns) if c in DATETIME_COLUMNS]
        texts = [i for i, c in enumerate(columns) if c in DATE_TEXT_COLUMNS]
        if stamps or texts:  # clickhouse-driver writes naive datetimes as they are: make them UTC wall time
            data = [list(row) for row in data]
            for row in data:
                for i in stamps:
                    row[i] = _utc_naive(row[i])
                for i in texts:
                    row[i] = row[i].isoformat() if isinstance(row[i], date) else row[i]
        self._client.execute(f"INSERT INTO {self.database}.{table} ({', '.join(columns)}) VALUES", data)

    def query(self, sql: str) -> list[dict[str, Any]]:
        rows, columns = self._client.execute(sql, with_column_types=True)
        names = [c[0] for c in columns]
        return [{n: _plain(v) for n, v in zip(names, row)} for row in rows]

    def close(self) -> None:
        self._client.disconnect()


def _utc_naive(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo is not None else value


class EmbeddedStorage:
    """ClickHouse in this process (chDB) with its data in a directory."""

    def __init__(self, path: str | Path, database: str = DEFAULT_DB):
        import chdb

        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.database = database
        try:
            self._conn = chdb.connect(str(self.path))
        except Exception as exc:  # chDB refuses a directory another process holds
            raise StorageError(
                f"cannot open embedded storage at {self.path}: {exc}. Is another entwatch worker "
                "using it? Stop it, or set ENTWATCH_DATA_DIR to another directory."
            ) from None

    def version(self) -> tuple[int, ...]:
        text = self._conn.query("SELECT version()", "CSV").bytes().decode().strip().strip('"')
        return tuple(int(p) for p in text.split(".") if p.isdigit())

    def execute(self, sql: str) -> None:
        self._conn.query(sql)

    def use_database(self) -> None:
        self._conn.query(f"USE {self.database}")

    def insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        # orjson writes dates and aware datetimes as ISO 8601 (with offset); best_effort reads them.
        body = b"\n".join(map(orjson.dumps, rows))
        self._conn.query(
            f"INSERT INTO {self.database}.{table} ({', '.join(TABLES[table])}) "
            "SETTINGS date_time_input_format = 'best_effort' FORMAT JSONEachRow\n" + body.decode()
        )

    def query(self, sql: str) -> list[dict[str, Any]]:
        result = self._conn.query(sql, "JSONEachRow").bytes()
        return [orjson.loads(line) for line in result.splitlines() if line.strip()]

    def close(self) -> None:
        self._conn.close()


def open_storage(url: str, password: str | None = None) -> Storage:
    """Open storage by URL: ``clickhouse://…`` or ``chdb:///dir``."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "clickhouse":
        return ServerStorage(url, password)
    if scheme == "chdb":
        path = url.split("://", 1)[1]
        if not path:
            raise StorageError("chdb URL needs a directory, e.g. chdb:///var/lib/entwatch/chdb")
        return EmbeddedStorage(path)
    raise StorageError(
        f"unknown storage URL {url!r}: use clickhouse://user:pass@host:9000/db or chdb:///path/to/dir"
    )

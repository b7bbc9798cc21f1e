"""Read-only storage sessions for the read API, with limits, on their own threads.

- ``ChdbSession``: a second chDB connection on the worker's directory (chDB keeps session
  settings per connection) with ``readonly=1``, a time limit, a memory limit and a result
  row limit.  The sink's connection and thread are not involved.
- ``ServerSession``: a ClickHouse server as the read-only user (``entwatch_reader``,
  ``deploy/clickhouse/users.d``).  Its profile holds ``readonly=1`` and the limits (a
  ``readonly=1`` user cannot change settings: 18.16 ignores what a client sends, newer
  servers refuse it); a user without ``readonly`` gets them sent with every query.
- ``ReadPool``: runs sessions' reads on its own threads, one session per thread, and gives
  up after the time limit.

The free-form operator query (``operator_problem``) is checked in text (one statement,
``SELECT``/``WITH``, none of ``INTO OUTFILE``, ``KILL``, ``PARALLEL WITH``, ``FORMAT``)
and, where the server can show it (chDB, ClickHouse >= 21), in ClickHouse's own syntax
tree: only plain query nodes, no function that reaches files, URLs, other servers or
programs.  ``readonly=1`` is what stops writes, DDL and table functions; on chDB it does
not stop ``INTO OUTFILE`` nor the ``file()`` function, which these checks do.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable
from urllib.parse import unquote, urlencode, urlparse

import orjson

from streams.readparams import parameter_text, render
from streams.storage import DEFAULT_DB


DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
OPERATOR_MAX_CHARS = 20_000
FORBIDDEN_WORDS = frozenset({"into", "outfile", "kill", "parallel", "format"})
# Functions (and table functions) whose name holds one of these reach outside the tables.
FORBIDDEN_FUNCTIONS = ("file", "url", "s3", "gcs", "oss", "cosn", "hdfs", "hive", "azure", "remote", "cluster",
                       "mysql", "postgres", "mongo", "redis", "sqlite", "jdbc", "odbc", "executable", "python",
                       "iceberg", "delta", "hudi", "paimon", "catboost", "model", "evalml", "bayes", "dict", "input",
                       "kafka", "nats", "rabbit", "ytsaurus", "prometheus", "timeseries", "arrowflight", "loop")
# The syntax-tree nodes a plain query is made of (EXPLAIN AST); anything else is refused.
QUERY_NODES = frozenset({
    "SelectWithUnionQuery", "SelectIntersectExceptQuery", "ExpressionList", "SelectQuery", "Literal", "Identifier",
    "Function", "TablesInSelectQuery", "TablesInSelectQueryElement", "TableExpression", "TableIdentifier",
    "TableJoin", "ArrayJoin", "Subquery", "Asterisk", "QualifiedAsterisk", "OrderByElement", "WithElement",
    "WindowDefinition", "WindowListElement", "WindowFrameBound", "SampleRatio", "QueryParameter", "Interpolate",
    "InterpolateElement",
})


class ReadError(Exception):
    """A read that failed for a reason a person can act on (storage down, time limit, token)."""


class ReadTimeout(ReadError):
    """A read that ran past its time limit (it is stopped, not left running)."""


class ReadRefused(ReadError):
    """An operator query the checks refuse (what it may not do is said)."""


@dataclass(frozen=True)
class Limits:
    """What one read may take: seconds, bytes of memory, result rows."""

    seconds: float = 30.0
    memory_bytes: int = 1_000_000_000
    rows: int = 1_000_000

    def settings(self) -> dict[str, Any]:
        """ClickHouse settings for these limits (a larger result is an error, never cut short)."""
        return {"max_execution_time": max(1, math.ceil(self.seconds)), "max_memory_usage": self.memory_bytes,
                "max_result_rows": self.rows, "result_overflow_mode": "throw"}

    @classmethod
    def from_settings(cls, settings) -> "Limits":
        return cls(settings.read_timeout, settings.read_max_memory_bytes, settings.read_max_rows)


def operator_problem(sql: str) -> str | None:
    """Why the text of an operator query is refused, or None.

    >>> operator_problem("SELECT count() FROM events FINAL") is None
    True
    >>> operator_problem("SELECT 'x' INTO OUTFILE '/tmp/x'")
    'INTO is not allowed in an operator query'
    >>> operator_problem("SELECT 1; DROP TABLE events")
    'one statement only (no ;)'
    """
    text = sql.strip().removesuffix(";").strip()
    if not text or len(text) > OPERATOR_MAX_CHARS:
        return f"give one query of at most {OPERATOR_MAX_CHARS:,} characters"
    if ";" in text:
        return "one statement only (no ;)"
    if text.split(None, 1)[0].lower() not in ("select", "with"):
        return "only SELECT or WITH … SELECT queries"
    words = set(re.findall(r"[a-z_][a-z0-9_]*", text.lower()))
    for word in sorted(words & FORBIDDEN_WORDS):
        return f"{word.upper()} is not allowed in an operator query"
    return None


def syntax_problem(tree: str) -> str | None:
    """Why a query's syntax tree (``EXPLAIN AST``) is refused, or None.

    >>> syntax_problem("SelectWithUnionQuery (children 1)\\n ExpressionList (children 1)\\n  Function file (children 1)")
    'function file is not allowed in an operator query'
    """
    lines = [line.strip() for line in tree.splitlines() if line.strip()]
    if not lines or lines[0] != "SelectWithUnionQuery (children 1)":
        return "only a plain SELECT (no FORMAT, SETTINGS, INTO OUTFILE or PARALLEL WITH)"
    for line in lines:
        node, _, rest = line.partition(" ")
        if node not in QUERY_NODES:
            return f"{node} is not allowed in an operator query"
        if node == "Function":
            name = rest.split(" ", 1)[0].lower()
            if any(part in name for part in FORBIDDEN_FUNCTIONS):
                return f"function {rest.split(' ', 1)[0]} is not allowed in an operator query"
    return None


def failure(exc: Exception) -> str:
    """One line saying why ClickHouse refused a read (``Code: N. message``), at most 300 characters.

    >>> failure(RuntimeError("Code: 159. DB::Exception: Timeout exceeded: elapsed 10 s\\nstack"))
    'Code: 159. DB::Exception: Timeout exceeded: elapsed 10 s'
    """
    code, message = getattr(exc, "code", None), getattr(exc, "message", None)
    text = f"Code: {code}. {message}" if code is not None and message else str(exc)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[0] if lines else exc.__class__.__name__)[:300]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if value.tzinfo else \
            value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class ChdbSession:
    """A read-only chDB connection on the worker's storage directory."""

    def __init__(self, path: str, database: str, limits: Limits):
        import chdb

        if not DATABASE_NAME.match(database):
            raise ReadError(f"database name {database!r} is not an identifier")
        options = {**limits.settings(), "output_format_json_quote_64bit_integers": 0, "readonly": 1}
        self._conn = chdb.connect(f"{path}?{urlencode(options)}")
        self._conn.query(f"USE {database}")

    def run(self, bound) -> list[dict]:
        params = {name: parameter_text(value) for name, value in bound.values.items()}
        return self._rows(bound.sql, params)

    def operator(self, sql: str) -> list[dict]:
        problem = operator_problem(sql) or syntax_problem(self._conn.query(f"EXPLAIN AST {sql}", "TSVRaw").bytes()
                                                          .decode())
        if problem:
            raise ReadRefused(problem)
        return self._rows(sql, {})

    def _rows(self, sql: str, params: dict) -> list[dict]:
        result = self._conn.query(sql, "JSONEachRow", params=params).bytes()
        return [orjson.loads(line) for line in result.splitlines() if line.strip()]

    def close(self) -> None:
        self._conn.close()


class ServerSession:
    """A ClickHouse server as the read-only user (native protocol)."""

    def __init__(self, url: str, user: str, password: str, limits: Limits):
        from clickhouse_driver import Client

        parts = urlparse(url)
        database = (parts.path or "/").strip("/") or "entwatch"
        if not DATABASE_NAME.match(database):
            raise ReadError(f"database name {database!r} is not an identifier")
        self.limits = limits
        self.where = f"{parts.hostname}:{parts.port or 9000}/{database} as {user}"
        self._client = Client(host=parts.hostname or "127.0.0.1", port=parts.port or 9000, user=user,
                              password=password, database=database, connect_timeout=5,
                              send_receive_timeout=limits.seconds + 10)
        self._settings: dict | None = None
        self._version: tuple[int, ...] | None = None

    @classmethod
    def for_settings(cls, settings) -> "ServerSession":
        """The reader of ``settings``' server: the storage URL's host and database, as
        ``ENTWATCH_READER_USER`` (never the writer of the storage URL)."""
        url = settings.effective_storage_url()
        writer = unquote(urlparse(url).username or "default")
        if settings.reader_user == writer:
            raise ReadError(f"ENTWATCH_READER_USER is {writer}, the storage URL's (writing) user: reads need a "
                            "read-only user (entwatch_reader, deploy/clickhouse/users.d)")
        password = settings.reader_password.get_secret_value() if settings.reader_password else ""
        return cls(url, settings.reader_user, password, Limits.from_settings(settings))

    def run(self, bound) -> list[dict]:
        return self._rows(render(bound.sql, bound.values))

    def operator(self, sql: str) -> list[dict]:
        problem = operator_problem(sql)
        if problem is None and self.version() >= (21, 1):
            problem = syntax_problem("\n".join(r["explain"] for r in self._rows(f"EXPLAIN AST {sql}")))
        if problem:
            raise ReadRefused(problem)
        return self._rows(sql)

    def version(self) -> tuple[int, ...]:
        if self._version is None:
            text = self._execute("SELECT version()")[0][0][0]
            self._version = tuple(int(p) for p in text.split(".") if p.isdigit())
        return self._version

    def _rows(self, sql: str) -> list[dict]:
        rows, columns = self._execute(sql)
        names = [c[0] for c in columns]
        return [{n: _jsonable(v) for n, v in zip(names, row)} for row in rows]

    def _execute(self, sql: str):
        if self._settings is None:  # a readonly=1 profile holds the limits itself
            profile = self._client.execute("SELECT value FROM system.settings WHERE name = 'readonly'")
            self._settings = {} if profile[0][0] == "1" else {**self.limits.settings(), "readonly": 1}
        deadline = time.monotonic() + self.limits.seconds
        try:
            progress = self._client.execute_with_progress(sql, with_column_types=True, settings=self._settings)
            for _ in progress:
                if time.monotonic() > deadline:
                    self._client.cancel()
                    raise ReadTimeout(f"the read took longer than {self.limits.seconds:g} s and was stopped")
            return progress.get_result()
        except (OSError, EOFError) as exc:
            self._client.disconnect()  # the server stops a query whose client has gone
            raise ReadTimeout(f"no answer from {self.where} within the time limit ({exc.__class__.__name__})") from None

    def close(self) -> None:
        self._client.disconnect()


def open_session(settings):
    """A read-only session on ``settings``' storage: chDB in this process (the worker), or
    the server as ``ENTWATCH_READER_USER``."""
    url = settings.effective_storage_url()
    if url.startswith("chdb://"):
        return ChdbSession(url.split("://", 1)[1], DEFAULT_DB, Limits.from_settings(settings))
    return ServerSession.for_settings(settings)


class ReadPool:
    """Reads on their own threads (never the sink's), one session per thread, with a time limit.

    At most ``threads`` reads run and as many wait; more are refused as busy."""

    def __init__(self, open_session: Callable[[], Any], limits: Limits, threads: int = 2):
        self._open = open_session
        self.limits = limits
        self.threads = threads
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="entwatch-read")
        self._local = threading.local()
        self._sessions: list = []
        self._in_flight = 0

    def _session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._open()
            self._sessions.append(session)
        return session

    async def call(self, method: str, arg) -> list[dict]:
        """``session.<method>(arg)`` on a read thread; ``ReadTimeout`` after the time limit."""
        if self._in_flight >= 2 * self.threads:
            raise ReadError("busy: too many reads at once; try again shortly")
        self._in_flight += 1
        try:
            job = asyncio.get_running_loop().run_in_executor(
                self._executor, lambda: getattr(self._session(), method)(arg))
            return await asyncio.wait_for(job, self.limits.seconds + 5)
        except asyncio.TimeoutError:
            raise ReadTimeout(f"the read took longer than {self.limits.seconds:g} s") from None
        finally:
            self._in_flight -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        for session in self._sessions:
            session.close()

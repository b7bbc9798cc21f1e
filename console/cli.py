"""``entwatch console`` (serve the console) and ``entwatch console adduser NAME --role ROLE``.

Settings: ``ENTWATCH_CONSOLE_DB_URL`` (the case store: a SQLAlchemy URL such as
``postgresql+psycopg://user:pass@host/db``; unset: SQLite ``console.db`` in the data
directory), ``ENTWATCH_CONSOLE_HOST`` (default 127.0.0.1), ``ENTWATCH_CONSOLE_PORT``
(default 8088), ``ENTWATCH_CONSOLE_SECURE_COOKIES`` (true behind HTTPS), and the worker's
settings for storage (``streams.settings``).
"""

from __future__ import annotations

import getpass
import os
import secrets
import sys
import threading
import time

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from console.store import ROLES, CaseError, CaseStore
from streams.errors import UserError


class ConsoleSettings(BaseSettings):
    """The console's own settings (prefix ``ENTWATCH_CONSOLE_``)."""

    model_config = SettingsConfigDict(env_prefix="ENTWATCH_CONSOLE_", env_file=".env", extra="ignore")

    db_url: str = Field("", description="SQLAlchemy URL of the case store; empty = SQLite in the data dir")
    host: str = "127.0.0.1"
    port: int = Field(8088, ge=0, le=65535)
    secure_cookies: bool = Field(False, description="mark cookies Secure (serve behind HTTPS)")
    refresh_seconds: int = Field(5, ge=1, le=600, description="the alert inbox's refresh interval")
    relay: bool = Field(True, description="publish case events on monitor.cases")

    def store_url(self, data_dir) -> str:
        if "change-me" in self.db_url:  # .env.example's password must never reach a deployment
            raise UserError("ENTWATCH_CONSOLE_DB_URL: its password is still the example value from "
                            ".env.example (change-me…); set a real CONSOLE_DB_PASSWORD")
        if self.db_url:
            return self.db_url
        data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(data_dir / 'console.db').resolve()}"


def add_arguments(p) -> None:
    """The options of ``entwatch console`` and its ``adduser`` subcommand."""
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8088)")
    p.add_argument("--worker", help="the worker's URL for embedded storage (default: this machine's)")
    sub = p.add_subparsers(dest="console_command", metavar="SUBCOMMAND")
    u = sub.add_parser("adduser", help="create (or replace) a console user; password from a prompt or "
                                       "ENTWATCH_CONSOLE_PASSWORD")
    u.add_argument("name")
    u.add_argument("--role", choices=ROLES, default="analyst")
    o = sub.add_parser("outcomes", help="precision per rule from the outcomes analysts recorded")
    o.add_argument("--json", action="store_true", help="one JSON object per rule")


def command(args) -> int:
    from streams.cli import load_settings

    settings = load_settings()
    console = ConsoleSettings()
    if getattr(args, "console_command", None) == "adduser":
        return adduser(console, settings, args.name, args.role)
    if getattr(args, "console_command", None) == "outcomes":
        return outcomes(CaseStore(console.store_url(settings.data_dir)), args.json)
    return serve(console, settings, host=args.host, port=args.port, worker=args.worker)


def adduser(console: ConsoleSettings, settings, name: str, role: str) -> int:
    password = os.environ.get("ENTWATCH_CONSOLE_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            raise UserError("give the password at the prompt (a terminal) or in ENTWATCH_CONSOLE_PASSWORD")
        password = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != password:
            raise UserError("the two passwords differ; run adduser again")
    try:
        CaseStore(console.store_url(settings.data_dir)).add_user(name, password, role)
    except CaseError as exc:
        raise UserError(str(exc)) from None
    print(f"user {name} ({role}) saved")
    return 0


def outcomes(store: CaseStore, as_json: bool = False) -> int:
    """Print the outcomes of resolved cases per rule, with the precision (confirmed / resolved)."""
    import json

    report = store.precision()
    if as_json:
        for row in report:
            print(json.dumps(row))
        return 0
    print(f"{'rule':<24}{'confirmed':>10}{'explained':>10}{'false':>7}{'resolved':>9}{'precision':>10}{'real':>7}")
    for r in report:
        print(f"{r['rule']:<24}{r['confirmed']:>10}{r['explained']:>10}{r['false_alarm']:>7}{r['resolved']:>9}"
              f"{r['precision']:>10.0%}{r['real']:>7.0%}")
    if not report:
        print("no resolved case yet")
    return 0


def serve(console: ConsoleSettings, settings, host: str | None = None, port: int | None = None,
          worker: str | None = None) -> int:
    """Serve the console until Ctrl-C or SIGTERM."""
    import logging

    import uvicorn

    from console.app import create_app
    from console.relay import OutboxRelay
    from streams.readapi import open_reader

    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        reader = open_reader(settings, worker=worker)
    except Exception as exc:
        raise UserError(f"cannot read storage: {exc}") from None
    store = CaseStore(console.store_url(settings.data_dir))
    relay = OutboxRelay(store, settings) if console.relay else None
    if relay:
        relay.start()
    app = create_app(reader, store, secure_cookies=console.secure_cookies, refresh_seconds=console.refresh_seconds)
    host, port = host or console.host, port if port is not None else console.port
    print(f"entwatch console on http://{host}:{port}/ (case store: {store.engine.url.render_as_string()})",
          flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        if relay:
            relay.stop()
            relay.join(10)
    return 0


class ConsoleThread(threading.Thread):
    """The console served from a thread of ``entwatch up``/``demo`` (no extra process to own),
    with its outbox relay; ``stop()`` ends both."""

    def __init__(self, settings, demo_user: bool = False):
        import uvicorn

        from console.app import create_app
        from console.relay import OutboxRelay
        from streams.broker import free_port
        from streams.readapi import open_reader

        super().__init__(name="console", daemon=True)
        console = ConsoleSettings()
        store = CaseStore(console.store_url(settings.data_dir))
        self.user, self.password = None, None
        if demo_user:  # a fresh random password each run, shown once on the terminal, kept only as a hash
            self.user, self.password = "demo", secrets.token_urlsafe(12)
            store.add_user(self.user, self.password, "analyst")
        port = console.port if console.port and port_is_free(console.host, console.port) else free_port()
        self.url = f"http://{console.host}:{port}/"
        self.relay = OutboxRelay(store, settings) if console.relay else None
        app = create_app(open_reader(settings), store, secure_cookies=console.secure_cookies,
                         refresh_seconds=console.refresh_seconds)
        self.server = uvicorn.Server(uvicorn.Config(app, host=console.host, port=port, log_level="warning"))

    def run(self) -> None:
        self.server.run()

    def __enter__(self) -> "ConsoleThread":
        if self.relay:
            self.relay.start()
        self.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline and self.is_alive():
            time.sleep(0.1)
        if not self.server.started:
            self.stop()
            raise UserError(f"the console did not start on {self.url}")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.relay:
            self.relay.stop()
        self.join(10)

    def __exit__(self, *exc) -> None:
        self.stop()


def port_is_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0

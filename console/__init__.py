"""The monitoring centre's console (SPEC §9): a server-rendered web application.

- ``console.app``: the pages (FastAPI + Jinja2 + htmx), reading storage only through the typed
  read API (``streams.readapi``);
- ``console.store``: users, sessions, cases, their history, the audit log and the outbox, on
  SQLite (embedded) or PostgreSQL, through SQLAlchemy;
- ``console.relay``: publishes the outbox on ``monitor.cases``;
- ``console.auth``: passwords (argon2), sessions, CSRF tokens, the login rate limit;
- ``console.i18n``: every string a person reads, in Chinese and English;
- ``console.cli``: ``entwatch console`` and ``entwatch console adduser``.
"""

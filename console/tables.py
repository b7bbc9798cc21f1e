"""The case store's tables (SQLAlchemy Core): users and sessions, cases with their history
(``case_events``), the audit log, the mutes analysts set after an ``explained`` outcome, and
the outbox of ``monitor.cases``.  ``console.store`` works on them."""

from __future__ import annotations

from datetime import date, datetime, timezone

import sqlalchemy as sa

from detectors.days import CITY_TZ


class UtcDateTime(sa.types.TypeDecorator):
    """Aware UTC datetimes in and out (SQLite keeps them naive: they are read back as UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: give a time zone")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


metadata = sa.MetaData()
users = sa.Table("console_users", metadata,
                 sa.Column("name", sa.String(64), primary_key=True),
                 sa.Column("password_hash", sa.String(256), nullable=False),
                 sa.Column("role", sa.String(16), nullable=False),
                 sa.Column("created_at", UtcDateTime, nullable=False),
                 sa.Column("disabled_at", UtcDateTime))
sessions = sa.Table("console_sessions", metadata,
                    sa.Column("token_hash", sa.String(64), primary_key=True),
                    sa.Column("user_name", sa.String(64), sa.ForeignKey("console_users.name"), nullable=False),
                    sa.Column("csrf", sa.String(64), nullable=False),
                    sa.Column("expires_at", UtcDateTime, nullable=False))
cases = sa.Table("cases", metadata,
                 sa.Column("case_id", sa.String(128), primary_key=True),
                 sa.Column("uscc", sa.String(18), nullable=False, index=True),
                 sa.Column("rule", sa.String(32)),
                 sa.Column("state", sa.String(16), nullable=False),
                 sa.Column("assignee", sa.String(64)),
                 sa.Column("due_on", sa.Date),
                 sa.Column("outcome", sa.String(16)),
                 sa.Column("updated_at", UtcDateTime, nullable=False),
                 sa.Column("version", sa.Integer, nullable=False))
case_events = sa.Table("case_events", metadata,
                       sa.Column("event_id", sa.String(36), primary_key=True),
                       sa.Column("case_id", sa.String(128), nullable=False, index=True),
                       sa.Column("version", sa.Integer, nullable=False),
                       sa.Column("action", sa.String(16), nullable=False),
                       sa.Column("actor", sa.String(64), nullable=False),
                       sa.Column("at", UtcDateTime, nullable=False),
                       sa.Column("detail", sa.Text, nullable=False),
                       sa.UniqueConstraint("case_id", "version"))
audit = sa.Table("audit", metadata,
                 sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                 sa.Column("at", UtcDateTime, nullable=False),
                 sa.Column("actor", sa.String(64), nullable=False),
                 sa.Column("action", sa.String(32), nullable=False),
                 sa.Column("target", sa.String(128), nullable=False),
                 sa.Column("detail", sa.Text, nullable=False))
mutes = sa.Table("mutes", metadata,  # a rule muted for an enterprise after an explained case
                sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                sa.Column("uscc", sa.String(18), nullable=False, index=True),
                sa.Column("rule", sa.String(32), nullable=False),
                sa.Column("until", sa.Date, nullable=False),
                sa.Column("case_id", sa.String(128), nullable=False),
                sa.Column("muted_by", sa.String(64), nullable=False),
                sa.Column("muted_at", UtcDateTime, nullable=False),
                sa.Column("lifted_by", sa.String(64)),
                sa.Column("lifted_at", UtcDateTime))
outbox = sa.Table("outbox", metadata,
                  sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                  sa.Column("event_id", sa.String(36), nullable=False, unique=True),
                  sa.Column("key", sa.String(64), nullable=False),
                  sa.Column("payload", sa.Text, nullable=False),
                  sa.Column("created_at", UtcDateTime, nullable=False),
                  sa.Column("sent_at", UtcDateTime, index=True))


def now() -> datetime:
    return datetime.now(timezone.utc)


def city_today() -> date:
    """Today in the city (Asia/Shanghai): mutes last until the end of a local day."""
    return now().astimezone(CITY_TZ).date()

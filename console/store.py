"""The console's transactional store: users, sessions, cases with their history, the audit
log and the outbox of ``monitor.cases``, through SQLAlchemy on SQLite (embedded: a file in
the data directory) or PostgreSQL (``ENTWATCH_CONSOLE_DB_URL``).

A case is the work on one alert (its id is the alert's).  Every case action is one
transaction that writes the case row, a history row, an audit row and an outbox row with
the same stable ``event_id``: the action and its publication are never apart.

>>> store = CaseStore("sqlite://")
>>> store.add_user("li", "a long password", "analyst")
>>> event = store.act("A1", "914403001922038216", "acknowledge", actor="li")
>>> store.case("A1")["state"], event["action"], event["actor"]
('acknowledged', 'acknowledge', 'li')
>>> _ = store.act("A2", "914403001922038216", "resolve", actor="li", rule="utility_drop", outcome="false_alarm")
>>> [(r["rule"], r["false_alarm"], r["precision"]) for r in store.precision()]
[('utility_drop', 1, 0.0)]
>>> store.act("A1", "914403001922038216", "resolve", actor="li", outcome="maybe")
Traceback (most recent call last):
...
console.store.CaseError: outcome: must be one of confirmed, explained, false_alarm
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from console.tables import (audit, case_events, cases, city_today, metadata, mutes, now, outbox, sessions,
                            users)
from streams.masking import mask_pii
from streams.messages import CASE_ACTIONS, CASE_OUTCOMES

ROLES = ("viewer", "analyst", "admin")
MUTE_ACTIONS = ("mute", "unmute")  # decisions on a resolved case (``CaseStore.mute``, ``CaseStore.unmute``)
ACTIONS = tuple(a for a in CASE_ACTIONS if a not in MUTE_ACTIONS)  # the workflow (``CaseStore.act``)
OUTCOMES = CASE_OUTCOMES  # the monitor.cases contract (streams.messages)
SCHEMA_VERSION = 1
MUTE_MAX_DAYS = 366


class CaseError(ValueError):
    """An action a case cannot take, or a bad value for it (says which field)."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field


def _row(row) -> dict:
    return dict(row._mapping) if row is not None else None


class CaseStore:
    """Users, sessions, cases, history, audit and outbox in one SQL database (created if missing)."""

    def __init__(self, url: str):
        options = {}
        if url in ("sqlite://", "sqlite:///:memory:"):  # one shared in-memory database (tests, doctests)
            options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        elif url.startswith("sqlite"):
            options = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        self.engine = sa.create_engine(url, **options)
        metadata.create_all(self.engine)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Columns added since a store was created (``create_all`` adds only missing tables)."""
        have = {c["name"] for c in sa.inspect(self.engine).get_columns("console_users")}
        if "disabled_at" not in have:
            kind = users.c.disabled_at.type.impl.compile(dialect=self.engine.dialect)
            with self.engine.begin() as db:
                db.execute(sa.text(f"ALTER TABLE console_users ADD COLUMN disabled_at {kind}"))

    # ------------------------------------------------------------ users and sessions

    def add_user(self, name: str, password: str, role: str, actor: str = "admin") -> None:
        """Create or replace a user (the password is stored as an argon2 hash only)."""
        from console.auth import hash_password

        _check_role(role)
        if not name or len(name) > 64 or not name.isprintable() or name != name.strip():
            raise CaseError("name", "give 1 to 64 printable characters")
        _check_password(password)
        with self.engine.begin() as db:
            db.execute(sa.delete(sessions).where(sessions.c.user_name == name))
            db.execute(sa.delete(users).where(users.c.name == name))
            db.execute(sa.insert(users).values(name=name, password_hash=hash_password(password), role=role,
                                               created_at=now()))
            self._audit(db, actor, "adduser", name, {"role": role})

    def user(self, name: str) -> dict | None:
        """The user ``name`` (a disabled one too: ``disabled_at`` says so)."""
        with self.engine.connect() as db:
            return _row(db.execute(sa.select(users).where(users.c.name == name)).first())

    def users(self) -> list[dict]:
        """Every user by name, without password hashes."""
        with self.engine.connect() as db:
            rows = db.execute(sa.select(users.c.name, users.c.role, users.c.created_at, users.c.disabled_at)
                              .order_by(users.c.name))
            return [_row(r) for r in rows]

    def change_user(self, name: str, actor: str, *, role: str | None = None, disabled: bool | None = None,
                    password: str | None = None) -> None:
        """Change a user's role, disable or enable it, or reset its password; audited. Disabling
        or resetting the password ends the user's sessions."""
        from console.auth import hash_password

        change: dict = {}
        if role is not None:
            _check_role(role)
            change["role"] = role
        if disabled is not None:
            change["disabled_at"] = now() if disabled else None
        if password is not None:
            _check_password(password)
            change["password_hash"] = hash_password(password)
        if not change:
            raise CaseError("change", "nothing to change")
        with self.engine.begin() as db:
            if db.execute(sa.update(users).where(users.c.name == name).values(**change)).rowcount != 1:
                raise CaseError("name", "no such user")
            if disabled or password is not None:
                db.execute(sa.delete(sessions).where(sessions.c.user_name == name))
            action = ("reset_password" if password is not None else "set_role" if role is not None
                      else "disable_user" if disabled else "enable_user")
            self._audit(db, actor, action, name, {"role": role} if role is not None else {})

    def start_session(self, token_hash: str, user_name: str, csrf: str, expires_at: datetime) -> None:
        with self.engine.begin() as db:
            db.execute(sa.insert(sessions).values(token_hash=token_hash, user_name=user_name, csrf=csrf,
                                                  expires_at=expires_at))
            self._audit(db, user_name, "login", user_name, {})

    def session(self, token_hash: str) -> dict | None:
        """The live session with this token hash, joined with its user (name, role, csrf)."""
        with self.engine.connect() as db:
            row = db.execute(sa.select(sessions.c.csrf, sessions.c.expires_at, users.c.name, users.c.role)
                             .join(users, users.c.name == sessions.c.user_name)
                             .where(sessions.c.token_hash == token_hash, users.c.disabled_at.is_(None))).first()
        row = _row(row)
        return row if row and row["expires_at"] > now() else None

    def end_session(self, token_hash: str, user_name: str) -> None:
        with self.engine.begin() as db:
            db.execute(sa.delete(sessions).where(sessions.c.token_hash == token_hash))
            self._audit(db, user_name, "logout", user_name, {})

    def record(self, actor: str, action: str, target: str, **detail) -> None:
        """An audit row on its own (a refused login, say)."""
        with self.engine.begin() as db:
            self._audit(db, actor, action, target, detail)

    def audit_log(self, limit: int = 100) -> list[dict]:
        with self.engine.connect() as db:
            return [_row(r) for r in db.execute(sa.select(audit).order_by(audit.c.id.desc()).limit(limit))]

    @staticmethod
    def _audit(db, actor: str, action: str, target: str, detail: dict) -> None:
        db.execute(sa.insert(audit).values(at=now(), actor=actor, action=action, target=target,
                                           detail=json.dumps(detail, ensure_ascii=False, default=str)))

    # ------------------------------------------------------------ cases

    def act(self, case_id: str, uscc: str, action: str, actor: str, rule: str | None = None, **given) -> dict:
        """Take ``action`` on the case of alert ``case_id`` (an alert of ``rule``): one transaction
        writing the case, its history, the audit log and the outbox. Returns the published case event."""
        detail = _check(action, given)
        at = now()
        with self.engine.begin() as db:
            row = _row(db.execute(sa.select(cases).where(cases.c.case_id == case_id).with_for_update()).first())
            case = row or {"case_id": case_id, "uscc": uscc, "rule": rule, "state": "new", "assignee": None, "due_on": None,
                           "outcome": None, "version": 0}
            if case["state"] == "resolved":
                raise CaseError("action", "the case is resolved")
            changed = dict(case, updated_at=at, version=case["version"] + 1)
            if action == "acknowledge":
                changed["state"] = "acknowledged"
            elif action == "assign":
                changed.update(assignee=detail["assignee"], state="acknowledged")
            elif action == "due":
                changed["due_on"] = detail["due_on"]
            elif action == "resolve":
                changed.update(state="resolved", outcome=detail["outcome"])
            if row is None:
                db.execute(sa.insert(cases).values(**changed))
            else:
                db.execute(sa.update(cases).where(cases.c.case_id == case_id).values(**changed))
            return self._publish(db, changed, action, actor, at, detail)

    def _publish(self, db, case: dict, action: str, actor: str, at: datetime, detail: dict,
                 muted_until: date | None = None) -> dict:
        """The history, audit and outbox rows of one case action (in the caller's transaction)."""
        event_id = str(uuid.uuid4())
        text = json.dumps(detail, ensure_ascii=False, default=str)
        db.execute(sa.insert(case_events).values(event_id=event_id, case_id=case["case_id"], version=case["version"],
                                                 action=action, actor=actor, at=at, detail=text))
        self._audit(db, actor, action, case["case_id"], detail)
        event = {"schema_version": SCHEMA_VERSION, "event_id": event_id, "case_id": case["case_id"],
                 "alert_id": case["case_id"], "uscc": case["uscc"], "rule": case["rule"], "version": case["version"],
                 "action": action, "actor": actor, "at": at.isoformat(), "state": case["state"],
                 "assignee": case["assignee"], "outcome": case["outcome"],
                 "due_on": case["due_on"].isoformat() if case["due_on"] else None, "note": detail.get("note")}
        if action in MUTE_ACTIONS:
            event["muted_until"] = muted_until.isoformat() if muted_until else None
        db.execute(sa.insert(outbox).values(event_id=event_id, key=case["uscc"], created_at=at,
                                            payload=json.dumps(event, ensure_ascii=False)))
        return event

    # ------------------------------------------------------------ mutes (after an explained outcome)

    def mute(self, case_id: str, actor: str, until, today: date | None = None) -> dict:
        """Mute the rule of case ``case_id`` (resolved ``explained``) for its enterprise until the
        end of ``until`` (a local day, after today, at most ``MUTE_MAX_DAYS`` ahead).  A mute of
        the same rule and enterprise still in force is replaced.  One transaction: the mute, the
        case's history, the audit log and a ``mute`` case event in the outbox."""
        today = today or city_today()
        until = _day("until", until)
        if not today < until <= today + timedelta(days=MUTE_MAX_DAYS):
            raise CaseError("until", f"give a day after today and at most {MUTE_MAX_DAYS} days ahead")
        at = now()
        with self.engine.begin() as db:
            case = _row(db.execute(sa.select(cases).where(cases.c.case_id == case_id).with_for_update()).first())
            if case is None or case["state"] != "resolved" or case["outcome"] != "explained":
                raise CaseError("action", "only a case resolved as explained can mute its rule")
            if not case["rule"]:
                raise CaseError("rule", "the case does not say which rule it is about")
            for old in self._in_force(db, today, case["uscc"], case["rule"]):
                db.execute(sa.update(mutes).where(mutes.c.id == old["id"]).values(lifted_by=actor, lifted_at=at))
            db.execute(sa.insert(mutes).values(uscc=case["uscc"], rule=case["rule"], until=until, case_id=case_id,
                                               muted_by=actor, muted_at=at))
            changed = dict(case, updated_at=at, version=case["version"] + 1)
            db.execute(sa.update(cases).where(cases.c.case_id == case_id).values(updated_at=at,
                                                                                  version=changed["version"]))
            return self._publish(db, changed, "mute", actor, at, {"rule": case["rule"], "until": until}, until)

    def unmute(self, mute_id: int, actor: str, today: date | None = None) -> dict:
        """Lift a mute in force (reversible): a ``unmute`` event on the case that set it."""
        today = today or city_today()
        at = now()
        with self.engine.begin() as db:
            found = _row(db.execute(sa.select(mutes).where(mutes.c.id == mute_id).with_for_update()).first())
            if found is None or found["lifted_at"] is not None or found["until"] < today:
                raise CaseError("mute", "no such mute in force")
            db.execute(sa.update(mutes).where(mutes.c.id == mute_id).values(lifted_by=actor, lifted_at=at))
            case = _row(db.execute(sa.select(cases).where(cases.c.case_id == found["case_id"]).with_for_update())
                        .first())
            changed = dict(case, updated_at=at, version=case["version"] + 1)
            db.execute(sa.update(cases).where(cases.c.case_id == case["case_id"]).values(updated_at=at,
                                                                                        version=changed["version"]))
            return self._publish(db, changed, "unmute", actor, at, {"rule": found["rule"], "until": found["until"]})

    def mutes_in_force(self, uscc: str | None = None, today: date | None = None) -> list[dict]:
        """The mutes in force today (of one enterprise, or all), by enterprise and rule."""
        with self.engine.connect() as db:
            return self._in_force(db, today or city_today(), uscc)

    @staticmethod
    def _in_force(db, today: date, uscc: str | None = None, rule: str | None = None) -> list[dict]:
        query = sa.select(mutes).where(mutes.c.lifted_at.is_(None), mutes.c.until >= today)
        if uscc is not None:
            query = query.where(mutes.c.uscc == uscc)
        if rule is not None:
            query = query.where(mutes.c.rule == rule)
        return [_row(r) for r in db.execute(query.order_by(mutes.c.uscc, mutes.c.rule, mutes.c.id))]

    def case(self, case_id: str) -> dict | None:
        with self.engine.connect() as db:
            return _row(db.execute(sa.select(cases).where(cases.c.case_id == case_id)).first())

    def cases_for(self, uscc: str) -> list[dict]:
        with self.engine.connect() as db:
            return [_row(r) for r in db.execute(sa.select(cases).where(cases.c.uscc == uscc)
                                                .order_by(cases.c.updated_at.desc()))]

    def states(self, case_ids: list[str]) -> dict[str, str]:
        """Each listed case's state (alerts without a case are absent)."""
        if not case_ids:
            return {}
        with self.engine.connect() as db:
            rows = db.execute(sa.select(cases.c.case_id, cases.c.state).where(cases.c.case_id.in_(case_ids)))
            return {r.case_id: r.state for r in rows}

    def enterprise_states(self, usccs: list[str]) -> dict[str, str]:
        """Per enterprise with cases: ``acknowledged`` while any case is unresolved, else ``resolved``."""
        if not usccs:
            return {}
        with self.engine.connect() as db:
            rows = db.execute(sa.select(cases.c.uscc, cases.c.state).where(cases.c.uscc.in_(usccs)))
            found: dict[str, str] = {}
            for row in rows:
                if row.state != "resolved" or row.uscc not in found:
                    found[row.uscc] = "acknowledged" if row.state != "resolved" else "resolved"
            return found

    def history(self, case_id: str) -> list[dict]:
        """The case's actions, oldest first, with their details parsed."""
        with self.engine.connect() as db:
            rows = db.execute(sa.select(case_events).where(case_events.c.case_id == case_id)
                              .order_by(case_events.c.version))
            return [dict(_row(r), detail=json.loads(r.detail)) for r in rows]

    def precision(self) -> list[dict]:
        """Per rule, the outcomes analysts recorded: how many resolved cases were ``confirmed``,
        ``explained`` and ``false_alarm``, and the precision (confirmed / resolved) and the share
        that were real anomalies ((confirmed + explained) / resolved)."""
        with self.engine.connect() as db:
            rows = db.execute(sa.select(cases.c.rule, cases.c.outcome, sa.func.count().label("n"))
                              .where(cases.c.state == "resolved").group_by(cases.c.rule, cases.c.outcome))
            by_rule: dict[str, dict] = {}
            for row in rows:
                counts = by_rule.setdefault(row.rule or "?", {o: 0 for o in OUTCOMES})
                counts[row.outcome] = row.n
        report = []
        for rule, counts in sorted(by_rule.items()):
            resolved = sum(counts.values())
            report.append({"rule": rule, **counts, "resolved": resolved,
                           "precision": counts["confirmed"] / resolved,
                           "real": (counts["confirmed"] + counts["explained"]) / resolved})
        return report

    # ------------------------------------------------------------ outbox

    def unsent(self, limit: int = 100) -> list[dict]:
        """Outbox rows the broker has not acknowledged yet, in the order they were written."""
        with self.engine.connect() as db:
            return [_row(r) for r in db.execute(sa.select(outbox).where(outbox.c.sent_at.is_(None))
                                                .order_by(outbox.c.id).limit(limit))]

    def mark_sent(self, row_id: int) -> None:
        with self.engine.begin() as db:
            db.execute(sa.update(outbox).where(outbox.c.id == row_id).values(sent_at=now()))


def _check(action: str, given: dict) -> dict:
    """The action's details, checked: ``CaseError`` names the field that is wrong."""
    if action not in ACTIONS:
        raise CaseError("action", f"must be one of {', '.join(ACTIONS)}")
    need = {"assign": "assignee", "note": "note", "due": "due_on", "resolve": "outcome"}.get(action)
    detail = {k: v for k, v in given.items() if v not in (None, "")}
    unknown = set(detail) - {need, "note"}
    if unknown:
        raise CaseError(sorted(unknown)[0], f"not a detail of {action}")
    if need and need not in detail:
        raise CaseError(need, "required")
    for field_name in ("assignee", "note"):
        if field_name in detail:
            value = str(detail[field_name]).strip()
            limit = 64 if field_name == "assignee" else 2000
            if not 1 <= len(value) <= limit or any(ord(c) < 32 and c not in "\n\t" for c in value):
                raise CaseError(field_name, f"give 1 to {limit} characters of text")
            detail[field_name] = mask_pii(value) if field_name == "note" else value  # stored and published
    if "due_on" in detail:
        detail["due_on"] = _day("due_on", detail["due_on"])
    if "outcome" in detail and detail["outcome"] not in OUTCOMES:
        raise CaseError("outcome", f"must be one of {', '.join(OUTCOMES)}")
    return detail


def _day(field_name: str, value) -> date:
    """``value`` as a date (a ``date`` or ``YYYY-MM-DD``), or ``CaseError`` naming the field."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise CaseError(field_name, "give a date, YYYY-MM-DD") from None


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise CaseError("role", f"must be one of {', '.join(ROLES)}")


def _check_password(password: str) -> None:
    if not isinstance(password, str) or not 8 <= len(password) <= 256:
        raise CaseError("password", "give 8 to 256 characters")

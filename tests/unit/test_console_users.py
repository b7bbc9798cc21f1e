"""User administration (the admin role), in process (the fixtures of test_console: FastAPI's
test client, SQLite in memory)."""

from __future__ import annotations

import json

import pytest

from tests.unit import test_console
from tests.unit.test_console import csrf_of, log_in, started_console


@pytest.fixture
def console():
    return started_console()


def test_an_admin_creates_users_changes_a_role_disables_and_resets_a_password_all_audited(console):
    client, store, _ = console
    store.add_user("root", "admin password", "admin")
    log_in(client, "root", "admin password")
    page = client.get("/admin/users").text
    assert 'data-user="li" data-role="analyst"' in page and "password_hash" not in page
    token = csrf_of(page)
    assert client.post("/admin/users", data={"csrf": token, "name": "zhao", "role": "viewer",
                                             "password": "zhao password"}, follow_redirects=False).status_code == 303
    client.post("/admin/users/zhao/role", data={"csrf": token, "role": "analyst"})
    assert store.user("zhao")["role"] == "analyst"
    other = test_console.TestClient(client.app)
    assert log_in(other, "li", "analyst password").status_code == 303
    client.post("/admin/users/li/disable", data={"csrf": token})
    assert other.get("/supervision", follow_redirects=False).status_code == 303  # the session ended
    assert log_in(other, "li", "analyst password").status_code == 401
    client.post("/admin/users/li/enable", data={"csrf": token})
    client.post("/admin/users/li/password", data={"csrf": token, "password": "a new password"})
    assert log_in(other, "li", "analyst password").status_code == 401
    assert log_in(other, "li", "a new password").status_code == 303
    audited = [(r["actor"], r["action"], r["target"]) for r in store.audit_log() if r["actor"] == "root"]
    assert {("root", "adduser", "zhao"), ("root", "set_role", "zhao"), ("root", "disable_user", "li"),
            ("root", "enable_user", "li"), ("root", "reset_password", "li")} <= set(audited)
    assert "a new password" not in json.dumps([r["detail"] for r in store.audit_log()])


def test_an_admin_cannot_lock_themselves_out_and_bad_values_are_refused(console):
    client, store, _ = console
    store.add_user("root", "admin password", "admin")
    log_in(client, "root", "admin password")
    token = csrf_of(client.get("/admin/users").text)
    answer = client.post("/admin/users/root/disable", data={"csrf": token})
    assert "own account" in answer.text and store.user("root")["disabled_at"] is None
    assert "role: must be one of" in client.post("/admin/users/li/role", data={"csrf": token, "role": "root"}).text
    assert "password: give 8" in client.post("/admin/users", data={"csrf": token, "name": "x", "role": "viewer",
                                                                  "password": "short"}).text
    assert "exists already" in client.post("/admin/users", data={"csrf": token, "name": "li", "role": "admin",
                                                                 "password": "long enough"}).text
    assert store.user("li")["role"] == "analyst"


@pytest.mark.parametrize("user, password", [("li", "analyst password"), ("wang", "viewer password")])
def test_a_non_admin_gets_403_on_every_user_page_and_form(console, user, password):
    client, store, _ = console
    log_in(client, user, password)
    token = csrf_of(client.get("/supervision").text)
    assert 'id="nav-users"' not in client.get("/supervision").text
    assert client.get("/admin/users").status_code == 403
    for path, data in (("/admin/users", {"name": "x", "role": "admin", "password": "long enough"}),
                       ("/admin/users/wang/role", {"role": "admin"}), ("/admin/users/wang/disable", {}),
                       ("/admin/users/wang/password", {"password": "long enough"})):
        assert client.post(path, data={"csrf": token, **data}).status_code == 403
    assert store.user("x") is None and store.user("wang")["role"] == "viewer"
    assert "admin_refused" in {r["action"] for r in store.audit_log()}


def test_a_user_form_without_its_csrf_token_is_refused(console):
    client, store, _ = console
    store.add_user("root", "admin password", "admin")
    log_in(client, "root", "admin password")
    assert client.post("/admin/users/li/disable", data={}).status_code == 403
    assert store.user("li")["disabled_at"] is None


def test_a_case_store_from_before_user_administration_gains_the_disabled_column(tmp_path):
    import sqlalchemy as sa

    from console.store import CaseStore

    url = f"sqlite:///{tmp_path / 'console.db'}"
    with sa.create_engine(url).begin() as db:  # the users table as the first console created it
        db.execute(sa.text("CREATE TABLE console_users (name VARCHAR(64) PRIMARY KEY, password_hash VARCHAR(256) "
                           "NOT NULL, role VARCHAR(16) NOT NULL, created_at DATETIME NOT NULL)"))
    store = CaseStore(url)
    store.add_user("li", "analyst password", "analyst")
    store.change_user("li", "root", disabled=True)
    assert store.user("li")["disabled_at"] is not None
    assert CaseStore(url).users()[0]["name"] == "li"  # a second start adds nothing

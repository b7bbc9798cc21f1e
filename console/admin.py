"""User administration pages (the ``admin`` role): list the users, create one, change a role,
disable or enable, reset a password.  Every change is a POST with the session's CSRF token,
written to the audit log with who did it; anyone else gets 403 (and an audit row).  An admin
cannot disable or demote their own account (the centre would lock itself out)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from console.errors import Refused
from console.store import ROLES, CaseError, CaseStore


def add_user_admin(app: FastAPI, store: CaseStore, render, signed_in, checked_form, login_redirect) -> None:
    """Add ``/admin/users`` and its forms to the console ``app``."""

    def admin(request: Request, attempted: str) -> dict:
        user = signed_in(request)
        if user["role"] != "admin":
            store.record(user["name"], "admin_refused", attempted, reason=user["role"])
            raise Refused(403, "only an admin can manage users")
        return user

    def done(message: str = "", error: str = "") -> RedirectResponse:
        query = f"?done={quote(message)}" if message else f"?error={quote(error)}" if error else ""
        return RedirectResponse(f"/admin/users{query}", status_code=303)

    @app.get("/admin/users", response_class=HTMLResponse)
    async def users_page(request: Request):
        if request.state.user is None:
            return login_redirect(request)
        admin(request, "list users")
        return render(request, "users.html", people=store.users(), roles=ROLES,
                      done=request.query_params.get("done"), error=request.query_params.get("error"))

    @app.post("/admin/users")
    async def create_user(request: Request):
        user = admin(request, "create user")
        form = await checked_form(request)
        name = str(form.get("name") or "").strip()
        if store.user(name) is not None:
            return done(error=f"name: {name} exists already")
        try:
            store.add_user(name, str(form.get("password") or ""), str(form.get("role") or ""), actor=user["name"])
        except CaseError as exc:
            return done(error=str(exc))
        return done(f"{name}: created")

    @app.post("/admin/users/{name}/{change}")
    async def change_user(request: Request, name: str, change: str):
        user = admin(request, f"{change} {name}")
        form = await checked_form(request)
        if change not in ("role", "disable", "enable", "password"):
            raise Refused(404, f"no change {change}")
        if name == user["name"] and change in ("role", "disable"):
            return done(error="you cannot disable or demote your own account")
        try:
            if change == "role":
                store.change_user(name, user["name"], role=str(form.get("role") or ""))
            elif change == "password":
                store.change_user(name, user["name"], password=str(form.get("password") or ""))
            else:
                store.change_user(name, user["name"], disabled=change == "disable")
        except CaseError as exc:
            return done(error=str(exc))
        return done(f"{name}: {change}")

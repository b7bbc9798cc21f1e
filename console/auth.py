"""Passwords, sessions, CSRF tokens and the login rate limit.

Passwords are kept as argon2id hashes (argon2-cffi).  A session is a random token in an
HttpOnly, SameSite=Strict cookie; the store keeps only its SHA-256.  Every form carries the
session's CSRF token (before login: a double-submit token in its own cookie), compared in
constant time.

>>> h = hash_password("correct horse")
>>> h.startswith("$argon2id$"), verify_password(h, "correct horse"), verify_password(h, "wrong")
(True, True, False)
>>> limiter = LoginLimiter(attempts=2, seconds=60)
>>> limiter.failed("li", now=0); limiter.failed("li", now=1); limiter.blocked("li", now=2)
True
>>> limiter.blocked("li", now=61.5)
False
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import defaultdict, deque

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()
SESSION_COOKIE = "entwatch_session"
LOGIN_CSRF_COOKIE = "entwatch_login_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salted; never the password itself)."""
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``."""
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the store keeps of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_token(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; a missing token never matches."""
    return bool(expected) and bool(given) and hmac.compare_digest(expected.encode(), given.encode())


class LoginLimiter:
    """At most ``attempts`` failed logins per user name (and per client address) in ``seconds``."""

    def __init__(self, attempts: int = 5, seconds: float = 300.0):
        self.attempts, self.seconds = attempts, seconds
        self._failures: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque:
        times = self._failures[key]
        while times and times[0] <= now - self.seconds:
            times.popleft()
        return times

    def blocked(self, key: str, now: float) -> bool:
        """True while ``key`` has used up its failed attempts."""
        with self._lock:
            return len(self._recent(key, now)) >= self.attempts

    def failed(self, key: str, now: float) -> None:
        with self._lock:
            self._recent(key, now).append(now)

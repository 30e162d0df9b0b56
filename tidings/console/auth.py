"""Who may use the console, and as what: tokens, roles, sessions and CSRF tokens.

Two roles. A *viewer* sees every page and may plan (planning changes nothing); an
*operator* may also redrive, purge, replay, undo and apply. Each role has one token:

* ``TIDINGS_CONSOLE_TOKEN``: the operator token;
* ``TIDINGS_CONSOLE_VIEWER_TOKEN``: the viewer token.

A token that is not set is generated at start and printed once. A browser signs in
with a token (and, for the audit log, a name) and gets a session cookie (HttpOnly,
SameSite=Strict); scripts may send ``Authorization: Bearer <token>`` instead. Every
form a session posts carries the session's CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

OPERATOR_ENV = "TIDINGS_CONSOLE_TOKEN"
VIEWER_ENV = "TIDINGS_CONSOLE_VIEWER_TOKEN"
SESSION_COOKIE = "tidings_session"
LOGIN_COOKIE = "tidings_login"
SESSION_SECONDS = 12 * 3600


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Session:
    """A signed-in browser (or a bearer-token request, which has no CSRF token)."""

    id: str
    role: Role
    who: str
    csrf: str
    token_hint: str  # the first characters of the token's hash, for the audit log
    expires: float = 0.0

    @property
    def is_operator(self) -> bool:
        return self.role is Role.OPERATOR


@dataclass
class Tokens:
    """The two tokens, and whether each was generated (so it is printed once)."""

    operator: str
    viewer: str
    generated: list[Role] = field(default_factory=list)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Tokens:
        environ = os.environ if environ is None else environ
        generated: list[Role] = []
        operator = environ.get(OPERATOR_ENV, "").strip()
        if not operator:
            operator = secrets.token_urlsafe(24)
            generated.append(Role.OPERATOR)
        viewer = environ.get(VIEWER_ENV, "").strip()
        if not viewer:
            viewer = secrets.token_urlsafe(24)
            generated.append(Role.VIEWER)
        if hmac.compare_digest(operator, viewer):
            raise ValueError(f"{OPERATOR_ENV} and {VIEWER_ENV} must differ")
        return cls(operator, viewer, generated)

    def role_of(self, token: str) -> Role | None:
        """The role a token grants; None for a wrong token (compared in constant time)."""
        given = token.strip().encode()
        if hmac.compare_digest(given, self.operator.encode()):
            return Role.OPERATOR
        if hmac.compare_digest(given, self.viewer.encode()):
            return Role.VIEWER
        return None


def token_hint(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()[:8]


class Sessions:
    """Signed-in sessions, in memory: a restart of the console signs everyone out."""

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def sign_in(self, token: str, who: str) -> Session | None:
        role = self.tokens.role_of(token)
        if role is None:
            return None
        name = " ".join(who.split())[:60] or role.value
        session = Session(secrets.token_urlsafe(24), role, name, secrets.token_urlsafe(24),
                          token_hint(token), time.time() + SESSION_SECONDS)
        with self._lock:
            self._sessions = {k: s for k, s in self._sessions.items()
                              if s.expires > time.time()}
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None or session.expires < time.time():
            return None
        return session

    def sign_out(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def bearer(self, header: str | None) -> Session | None:
        """A session for one request carrying ``Authorization: Bearer <token>``."""
        if not header or not header.lower().startswith("bearer "):
            return None
        token = header[7:].strip()
        role = self.tokens.role_of(token)
        if role is None:
            return None
        return Session("bearer", role, f"{role.value} (bearer)", "", token_hint(token))


def csrf_matches(expected: str, given: str | None) -> bool:
    """A form's CSRF token against the session's (constant time; empty never matches)."""
    return bool(expected) and given is not None and hmac.compare_digest(expected, given)

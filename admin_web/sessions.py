"""Server-side sessions of the web consoles and the sign-in throttle.

Owns: sessions kept in memory, keyed by a random id (the cookie holds nothing else), their
idle expiry, the CSRF token of each session, the account stamp a signed-in session was
opened for (``WebAccount.stamp``: compared with the account on every request), an admin's
sign-in between password and second factor (``PendingSignIn``), the plaintext that must
outlive one response for a few minutes (the codes of a set just issued, the URI of a token
just generated), the stateless CSRF tokens of the sign-in forms (``SignInTokens``), and
the count of failed sign-ins per account, per account and address, and per address.

Time is the injected clock (``IReactorTime.seconds``), randomness the injected
``RandomSource``: tests use ``task.Clock`` and a seeded fake.

Must not import: sqlalchemy, pyrad, twisted.web. Must not know: HTTP, cookies, templates.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime

from radiusd.model import RandomSource, Secret

IDLE_TIMEOUT = 15 * 60.0
# The plaintext codes of a set just issued stay this long, for "Export to File" and "Print".
CODES_KEPT_FOR = 10 * 60.0
# A token's provisioning URI (it holds the seed) is shown on the next page view only.
PROVISIONING_KEPT_FOR = 5 * 60.0
# Anonymous visitors can open sign-in pages (each one a session): cap memory.
MAX_SESSIONS = 10_000

ADMIN = "admin"
SELF_SERVICE = "self-service"
AREAS = (ADMIN, SELF_SERVICE)


@dataclass(frozen=True, slots=True)
class PendingCodes:
    """A set just issued, in plaintext, for its issuer's session only: never in the DB."""

    user_name: str
    set_id: str
    codes: tuple[Secret, ...]
    export_text: str
    has_pin: bool
    issued_at: datetime
    valid_until: datetime
    kept_until: float  # clock seconds

    def __repr__(self) -> str:  # holds codes: never print them
        return f"PendingCodes(user={self.user_name!r}, set={self.set_id!r})"


@dataclass(frozen=True, slots=True)
class PendingToken:
    """A token just generated: its ``otpauth://`` URI (with the seed) until first shown."""

    user_name: str
    serial: str
    uri: Secret
    kept_until: float

    def __repr__(self) -> str:
        return f"PendingToken(user={self.user_name!r}, serial={self.serial!r})"


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    """An admin whose password was right, before her second factor (issue 20, 13).

    ``enrol_seed``: the TOTP seed offered for enrolment (stored only once a first code
    confirms it), None when the admin is enrolled and must type her current code.
    """

    account_id: int
    name: str
    stamp: tuple
    enrol_seed: Secret | None
    until: float  # clock seconds: the second step must be done by then

    def __repr__(self) -> str:  # may hold a seed
        return f"PendingSignIn(name={self.name!r})"


@dataclass(slots=True, eq=False)
class Session:
    """One browser's session in one console (``area``); ``principal`` None: not signed in."""

    id: str
    area: str
    csrf: str
    last_seen: float
    principal: str | None = None
    # WebAccount.stamp of the principal at sign-in (None: the session predates it).
    stamp: tuple | None = None
    pending: PendingSignIn | None = None
    notices: list[str] = field(default_factory=list)
    codes: dict[str, PendingCodes] = field(default_factory=dict)
    tokens: dict[str, PendingToken] = field(default_factory=dict)

    @property
    def is_signed_in(self) -> bool:
        return self.principal is not None

    def is_csrf_valid(self, token: str | None) -> bool:
        """Constant-time check of the CSRF token a form sent."""
        return token is not None and hmac.compare_digest(token.encode("utf-8", "replace"),
                                                         self.csrf.encode("ascii"))


class SessionStore:
    """Sessions in memory (one process: a restart signs everyone out, by design).

    Args:
        clock: ``seconds()`` gives the time.
        random: randomness for session ids and CSRF tokens.
        idle_timeout: seconds without a request after which a session is gone.
    """

    def __init__(self, clock, random: RandomSource, *, idle_timeout: float = IDLE_TIMEOUT,
                 max_sessions: int = MAX_SESSIONS):
        self.clock = clock
        self.random = random
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def _token(self) -> str:
        return self.random(32).hex()

    def new(self, area: str) -> Session:
        """A fresh, anonymous session in ``area`` (its CSRF token protects the sign-in)."""
        if area not in AREAS:
            raise ValueError(f"unknown area {area!r}")
        now = self.clock.seconds()
        self._expire(now)
        while len(self._sessions) >= self.max_sessions:
            # The least recently seen anonymous session goes first (dicts keep insertion
            # order and get() re-inserts), so a flood of sign-in page views cannot push
            # signed-in people out; only then the least recently seen of all.
            victim = next((s for s in self._sessions.values() if not s.is_signed_in),
                          next(iter(self._sessions.values())))
            self.end(victim)
        session = Session(id=self._token(), area=area, csrf=self._token(), last_seen=now)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None, area: str) -> Session | None:
        """The live session of ``area`` with this id, touched; None if unknown or idle."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None or session.area != area:
            return None
        now = self.clock.seconds()
        if now - session.last_seen >= self.idle_timeout:
            self.end(session)
            return None
        session.last_seen = now
        # Move to the end: the oldest-seen session is evicted first under pressure.
        del self._sessions[session_id]
        self._sessions[session_id] = session
        return session

    def sign_in(self, session: Session | None, principal: str, area: str | None = None,
                *, stamp: tuple | None = None) -> Session:
        """A new session (new id and CSRF token) for ``principal``; the old one ends.

        A new id at sign-in defeats session fixation (OWASP Session Management).
        ``stamp``: the account's ``WebAccount.stamp``, compared on every request.
        """
        if session is not None:
            self.end(session)
            area = session.area
        assert area is not None
        signed_in = self.new(area)
        signed_in.principal = principal
        signed_in.stamp = stamp
        return signed_in

    def start_second_factor(self, session: Session | None, area: str,
                            pending: PendingSignIn) -> Session:
        """A new session, not signed in yet, that waits for ``pending``'s second factor."""
        if session is not None:
            self.end(session)
        waiting = self.new(area)
        waiting.pending = pending
        return waiting

    def end(self, session: Session) -> None:
        session.codes.clear()
        session.tokens.clear()
        session.pending = None
        self._sessions.pop(session.id, None)

    def end_all(self, area: str, principal: str, *, keep: Session | None = None) -> None:
        """End every session of ``principal`` in ``area`` but ``keep``."""
        for other in [s for s in self._sessions.values()
                      if s.area == area and s.principal == principal and s is not keep]:
            self.end(other)

    def _expire(self, now: float) -> None:
        for session_id in [sid for sid, s in self._sessions.items()
                           if now - s.last_seen >= self.idle_timeout]:
            self.end(self._sessions[session_id])

    # --- plaintext kept for a few minutes -----------------------------------------------

    def keep_codes(self, session: Session, pending: PendingCodes) -> None:
        session.codes[pending.user_name] = pending

    def codes(self, session: Session, user_name: str) -> PendingCodes | None:
        """The codes this session issued for ``user_name``, if still kept."""
        pending = session.codes.get(user_name)
        if pending is not None and self.clock.seconds() >= pending.kept_until:
            del session.codes[user_name]
            return None
        return pending

    def drop_codes(self, session: Session, user_name: str) -> None:
        session.codes.pop(user_name, None)

    def keep_token(self, session: Session, pending: PendingToken) -> None:
        session.tokens[pending.user_name] = pending

    def pop_token(self, session: Session, user_name: str) -> PendingToken | None:
        """The URI of the token just generated for ``user_name``: once, then gone."""
        pending = session.tokens.pop(user_name, None)
        if pending is not None and self.clock.seconds() >= pending.kept_until:
            return None
        return pending


# --- sign-in forms without server-side state (issue 20, 11) ---------------------------------

SIGN_IN_TOKEN_LIFETIME = 60 * 60.0


class SignInTokens:
    """CSRF tokens of the sign-in forms that need no server-side session.

    A token is ``NONCE.TIME.HMAC(key, AREA|NONCE|TIME)``, sent both as a cookie and as the
    form's ``csrf`` field; a sign-in POST must carry the same valid token in both (a
    "signed double-submit cookie", OWASP CSRF Prevention Cheat Sheet). Nothing is stored
    per visitor, so no number of sign-in page views can push an open form out. The key is
    random per process, like the sessions, which a restart ends too.
    """

    def __init__(self, clock, random: RandomSource, *,
                 lifetime: float = SIGN_IN_TOKEN_LIFETIME):
        self.clock = clock
        self.random = random
        self.lifetime = lifetime
        self._key = random(32)

    def _mac(self, area: str, nonce: str, at: str) -> str:
        return hmac.new(self._key, f"{area}|{nonce}|{at}".encode("ascii"),
                        hashlib.sha256).hexdigest()

    def issue(self, area: str) -> str:
        nonce, at = self.random(16).hex(), str(int(self.clock.seconds()))
        return f"{nonce}.{at}.{self._mac(area, nonce, at)}"

    def is_valid(self, area: str, field_token: str | None, cookie_token: str | None) -> bool:
        """Both tokens present and equal, made here for ``area``, and not too old."""
        if not field_token or not cookie_token:
            return False
        if not hmac.compare_digest(field_token.encode("utf-8", "replace"),
                                   cookie_token.encode("utf-8", "replace")):
            return False
        parts = field_token.split(".")
        if len(parts) != 3 or not parts[1].isdigit() or not parts[0].isalnum():
            return False
        nonce, at, mac = parts
        if not hmac.compare_digest(mac.encode("utf-8", "replace"),
                                   self._mac(area, nonce, at).encode("ascii")):
            return False
        age = self.clock.seconds() - int(at)
        return 0 <= age < self.lifetime


# --- sign-in throttling ------------------------------------------------------------------

# Issue 20 (11): wrong passwords first block the pair account + address, so that a guesser
# elsewhere cannot lock the owner out; the account-wide limit stops a guesser who spreads
# over many addresses, and is high enough not to be an easy way to lock someone out.
PAIR_MAX_FAILURES = 5
ACCOUNT_MAX_FAILURES = 50
ADDRESS_MAX_FAILURES = 20  # many people may share one address (NAT)
FAILURE_WINDOW = 5 * 60.0
BLOCKED_FOR = 5 * 60.0


@dataclass(slots=True)
class _Count:
    failures: int
    first_at: float
    blocked_until: float = 0.0


class SignInThrottle:
    """Failed sign-ins per account and address, per account, and per address; too many
    block for a while.

    ``*_max_failures`` failures within ``window`` seconds block that key for ``blocked_for``
    seconds. While blocked, sign-in is refused without checking the password, so guessing
    gains nothing. Accounts of both consoles are keyed apart (``("admin", name)``).
    """

    def __init__(self, clock, *, pair_max_failures: int = PAIR_MAX_FAILURES,
                 account_max_failures: int = ACCOUNT_MAX_FAILURES,
                 address_max_failures: int = ADDRESS_MAX_FAILURES,
                 window: float = FAILURE_WINDOW, blocked_for: float = BLOCKED_FOR):
        self.clock = clock
        self.pair_max_failures = pair_max_failures
        self.account_max_failures = account_max_failures
        self.address_max_failures = address_max_failures
        self.window = window
        self.blocked_for = blocked_for
        self._counts: dict[tuple[str, ...], _Count] = {}

    @staticmethod
    def _keys(area: str, account: str, address: str) -> tuple[tuple[str, ...], ...]:
        return (("pair", area, account, address), ("account", area, account),
                ("address", address))

    def is_blocked(self, area: str, account: str, address: str) -> bool:
        now = self.clock.seconds()
        return any(count is not None and now < count.blocked_until
                   for count in map(self._counts.get, self._keys(area, account, address)))

    def record_failure(self, area: str, account: str, address: str) -> None:
        now = self.clock.seconds()
        self._prune(now)
        limits = (self.pair_max_failures, self.account_max_failures,
                  self.address_max_failures)
        for key, limit in zip(self._keys(area, account, address), limits):
            count = self._counts.get(key)
            if count is None or now - count.first_at >= self.window:
                count = self._counts[key] = _Count(failures=0, first_at=now)
            count.failures += 1
            if count.failures >= limit:
                count.blocked_until = now + self.blocked_for
                count.failures, count.first_at = 0, now

    def record_success(self, area: str, account: str, address: str) -> None:
        """The owner's own mistypes from ``address`` are forgiven; the account-wide count
        is not (it caps guessing from everywhere, whoever else signs in meanwhile)."""
        self._counts.pop(("pair", area, account, address), None)

    def _prune(self, now: float) -> None:
        stale = [key for key, count in self._counts.items()
                 if now >= count.blocked_until and now - count.first_at >= self.window]
        for key in stale:
            del self._counts[key]

"""The admin console (``/``) and the self-service console (``/self-service/``): one Klein
app class whose dependencies come in through ``__init__`` (Klein's "nonglobalstate").

Owns: the routes, who may call them (``authorize``: every route needs a signed-in session
of its console whose account is unchanged since sign-in, except the explicit
``PUBLIC_ENDPOINTS``; every POST needs the CSRF token in its body: the session's, or on the
sign-in forms the stateless ``SignInTokens`` one), the admins' second sign-in step (their
own TOTP, enrolled at the first sign-in), the one ``handle_errors`` that turns domain
errors into pages, the security headers, and the page templates' context.

Every action calls the same ``radiusd.accounts`` / ``radiusd.emergency.issuing`` functions
as the CLI (so both write the same audit rows, with actor ``admin:NAME`` or
``self-service:NAME``), and every Store call runs through ``run_db`` in the DB thread pool:
never on the reactor thread.

Must not import: sqlalchemy, pyrad. Must not know: SQL, sockets (``server.py`` listens).
"""

from __future__ import annotations

import base64
import csv
import inspect
import io
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import segno
from jinja2 import Environment, PackageLoader, select_autoescape
from klein import Klein
from klein.interfaces import IKleinRequest
from twisted.internet.defer import Deferred
from markupsafe import Markup
from twisted.logger import Logger
from twisted.web.resource import IResource, Resource
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as NoRoute
from werkzeug.routing import BaseConverter, RequestRedirect, ValidationError

from admin_web import forms
from admin_web.sessions import (ADMIN, CODES_KEPT_FOR, PROVISIONING_KEPT_FOR, SELF_SERVICE,
                                PendingCodes, PendingSignIn, PendingToken, Session,
                                SessionStore, SignInThrottle, SignInTokens)
from radiusd import otp
from radiusd.accounts import Accounts, check_admin_password
from radiusd.crypto import Keys, hash_password, verify_password
from radiusd.duration import format_duration
from radiusd.passwords import ADMIN_MIN_LENGTH
from radiusd.emergency import issuing
from radiusd.emergency.rules import SetStatus, set_status
from radiusd.errors import NotFound, NotInitialised, StoreUnavailable, UsageError
from radiusd.model import AuditEvent, RandomSource, Secret
from radiusd.model import ADMIN_ACCOUNT, USER_ACCOUNT, WebAccount
from radiusd.settings import Settings

RunDb = Callable[..., Awaitable[Any]]

# Content-Security-Policy: no script at all, no inline style, no framing (issue 4).
SECURITY_HEADERS: Mapping[bytes, bytes] = {
    # Replaces Twisted's "TwistedWeb/<version>": no version for a scanner to match.
    b"Server": b"radiusd",
    b"Content-Security-Policy": (b"default-src 'self'; img-src 'self' data:; "
                                 b"style-src 'self'; script-src 'none'; "
                                 b"frame-ancestors 'none'; form-action 'self'; "
                                 b"base-uri 'none'"),
    b"X-Frame-Options": b"DENY",
    b"Referrer-Policy": b"no-referrer",
    b"X-Content-Type-Options": b"nosniff",
    # Pages show codes, seeds, user data: no page is kept by a browser or a proxy.
    b"Cache-Control": b"no-store",
}

# The routes anyone may open. Everything else needs a signed-in session: a new route is
# protected unless it is added here (fail closed).
PUBLIC_ENDPOINTS = frozenset({
    "sign_in_page", "sign_in", "stylesheet",
    "self_service_sign_in_page", "self_service_sign_in",
    # An admin's second sign-in step: each needs the session a right password opened
    # (``_pending_sign_in``), which is not signed in yet.
    "sign_in_code_page", "sign_in_code", "sign_in_enrol_page", "sign_in_enrol",
})
# An admin has this long, after her password, to type her code or enrol her TOTP.
SECOND_FACTOR_WITHIN = 10 * 60.0
SELF_SERVICE_PREFIX = "self_service"  # endpoints of the self-service console
SIGN_IN_URL = {ADMIN: "/sign-in", SELF_SERVICE: "/self-service/sign-in"}
HOME_URL = {ADMIN: "/", SELF_SERVICE: "/self-service/"}
COOKIE = {ADMIN: (b"radiusd_admin", b"/"),
          SELF_SERVICE: (b"radiusd_self_service", b"/self-service/")}
# The sign-in forms' stateless CSRF token (SignInTokens), only sent back to the sign-in POST.
SIGN_IN_COOKIE = {ADMIN: (b"radiusd_admin_sign_in", b"/sign-in"),
                  SELF_SERVICE: (b"radiusd_self_service_sign_in", b"/self-service/sign-in")}
SIGN_IN_ENDPOINTS = frozenset({"sign_in", "self_service_sign_in"})

# The form each endpoint re-renders when a field is not UTF-8 (a key of the app's form
# pages), so the error lands next to that field; other endpoints answer a 400 page.
TEXT_FORM_PAGES: Mapping[str, str] = {
    "sign_in": "admin_sign_in", "self_service_sign_in": "self_sign_in",
    "create_user": "users", "set_pin": "user", "set_password": "user",
    "add_token": "user", "issue_set": "user", "save_settings": "settings",
    "audit_page": "audit",
}

STATIC = Path(__file__).resolve().parent / "static"
AUDIT_CSV_LIMIT = 100_000
REJECTS_SINCE = timedelta(hours=24)

# What happens when the real token is used while a set is active (settings on_token_use).
ON_TOKEN_USE_LABELS: Mapping[str, str] = {
    "revoke": "End emergency access: the remaining codes stop working",
    "keep": "Keep emergency access: the token and the codes both work",
    "deny": "Refuse the token until emergency access ends",
}


class SignInRequired(Exception):
    """The route needs a signed-in session of ``area``: redirect to its sign-in page."""

    def __init__(self, area: str):
        super().__init__(area)
        self.area = area


class Forbidden(Exception):
    """A POST without the session's CSRF token (or no session to check it against)."""


class SelfServiceOff(Exception):
    """The policy turns the self-service console (or users' own requests) off."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class _GuardedKlein(Klein):
    """Klein that shows every matched request to the app's ``authorize`` before its route.

    One policy hook (as twisted.names' controller has one), not a decorator per route: a
    route cannot forget it, and the order of decorators does not matter.
    """

    def __init__(self) -> None:
        super().__init__()
        self.url_map.converters["user"] = UserNameConverter

    def execute_endpoint(self, endpoint: str, request, *args: Any, **kwargs: Any):
        async def guarded():
            # authorize re-reads the session's account through run_db (issue 20, 4).
            await self._instance.authorize(endpoint, request)
            self._instance.refuse_bad_text(endpoint, request, kwargs)
            result = Klein.execute_endpoint(self, endpoint, request, *args, **kwargs)
            return (await result) if inspect.isawaitable(result) else result

        return Deferred.fromCoroutine(guarded())


# Over HTTPS only (RFC 6797 §7.2: not over plain HTTP): browsers keep to HTTPS for this
# host for a year. No includeSubDomains: the console's host name says nothing about the
# other services of its domain.
STRICT_TRANSPORT_SECURITY = b"max-age=31536000"


class _SecurityHeaders(Resource):
    """Wraps the Klein resource: the security headers go on every response, errors and
    unknown URLs included (and, served over TLS, ``Strict-Transport-Security``)."""

    isLeaf = True

    def __init__(self, wrapped: IResource, is_tls: bool = False):
        super().__init__()
        self._wrapped = wrapped
        self._is_tls = is_tls

    def render(self, request):
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        if self._is_tls:
            request.setHeader(b"Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)
        return self._wrapped.render(request)


@dataclass(frozen=True, slots=True)
class _SetView:
    """An emergency set as the pages show it: never the codes."""

    status: str
    issued_at: datetime | None = None
    issued_by: str | None = None
    reason: str | None = None
    valid_until: datetime | None = None
    codes_left: int = 0
    codes_total: int = 0
    revoked_at: datetime | None = None
    revoked_reason: str | None = None
    last_used_at: datetime | None = None
    last_used_client: str | None = None

    @property
    def is_active(self) -> bool:
        return self.status in (SetStatus.ACTIVE, SetStatus.USED_UP)


def _set_view(emergency, now: datetime) -> _SetView:
    status = set_status(emergency, now)
    if emergency is None:
        return _SetView(status=status)
    return _SetView(status=status, issued_at=emergency.issued_at,
                    issued_by=emergency.issued_by, reason=emergency.reason or None,
                    valid_until=emergency.expires_at, codes_left=emergency.codes_left,
                    codes_total=len(emergency.codes), revoked_at=emergency.revoked_at,
                    revoked_reason=emergency.revoked_reason,
                    last_used_at=emergency.last_used_at,
                    last_used_client=emergency.last_used_client)


def _is_locked(user, settings: Settings, now: datetime) -> bool:
    """Locked now (as ``decide`` sees it: a lockout of duration 0 lasts until unlocked)."""
    return user.locked_at is not None and (not settings.lockout_duration
                                           or now < user.locked_at + settings.lockout_duration)


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _exact_time(moment: datetime) -> Markup:
    """``<time>`` to the second, in UTC, with its machine-readable form (audit rows)."""
    moment = moment.astimezone(UTC)
    return Markup('<time datetime="{}">{}</time>').format(
        moment.strftime("%Y-%m-%dT%H:%M:%SZ"), moment.strftime("%Y-%m-%d %H:%M:%S UTC"))


def _plain(message: str) -> str:
    """A domain message for a page: without the CLI's ``--option:`` prefix, capitalised."""
    if message.startswith("--") and ": " in message:
        message = message.split(": ", 1)[1]
    return message[:1].upper() + message[1:]


def csv_cell(value: object) -> str:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula.

    A cell starting with ``= + - @`` (or tab / carriage return, which some spreadsheets
    skip before reading one) gets a leading apostrophe (OWASP "CSV Injection").
    """
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def _args(request) -> dict[str, str]:
    """The request's form and query fields, first value of each, as text.

    A route never sees a replaced character: ``refuse_bad_text`` refuses a request with
    invalid UTF-8 before its route runs (only ``authorize`` reads the fields earlier).
    """
    values: dict[str, str] = {}
    for key, items in (request.args or {}).items():
        if items:
            values[key.decode("utf-8", "replace")] = items[0].decode("utf-8", "replace")
    return values


def _body_field(request, name: str) -> str | None:
    """A field of the POST body, never of the query string (Twisted's ``request.args``
    merges both): a CSRF token in a URL leaks through logs and Referer (issue 20, 11)."""
    content_type = (request.getHeader(b"content-type") or "")
    if isinstance(content_type, bytes):
        content_type = content_type.decode("latin-1")
    if content_type.split(";", 1)[0].strip().lower() != "application/x-www-form-urlencoded":
        return None
    content = request.content
    if content is None:
        return None
    content.seek(0)
    body = content.read()
    content.seek(0)
    # latin-1 maps bytes 1:1, so a field that is not UTF-8 decodes here without raising
    # (refuse_bad_text answers it).
    values = parse_qs(body.decode("latin-1"), keep_blank_values=True,
                      encoding="latin-1").get(name)
    return values[0].encode("latin-1").decode("utf-8", "replace") if values else None


def _client(request) -> str:
    address = request.getClientAddress()
    return getattr(address, "host", None) or "unknown"


def _redirect(request, url: str) -> bytes:
    request.setResponseCode(303)  # See Other: the browser GETs the page after a POST
    request.setHeader(b"Location", url.encode("utf-8"))
    return b""


def _local_redirect(request, url: str) -> str:
    """The path and query of a redirect werkzeug built as an absolute URL from the Host
    header: a redirect never names a host the client sent (issue 20, 11)."""
    mapper = IKleinRequest(request).mapper
    prefix = f"{mapper.url_scheme}://{mapper.get_host(None)}"
    rest = url[len(prefix):] if url.startswith(prefix) else urlsplit(url).path
    return "/" + rest.lstrip("/")  # never "//host": that would be another site


def name_segment(name: str) -> str:
    """``name`` as one URL path segment, whatever it holds (issue 20, 10).

    Twisted percent-decodes each path segment before Klein matches a route
    (``Request.postpath``), so a ``/`` encoded once would split the name again
    (``a%2Fcodes`` would open the codes page of ``a``): the name is encoded twice, and
    ``UserNameConverter`` decodes it the second time. A name of dots only gets its dots
    encoded as well: browsers drop ``.`` and ``..`` segments (``%2E`` too) before sending.
    """
    once = quote(name, safe="")
    if once in (".", ".."):
        once = once.replace(".", "%2E")
    return quote(once, safe="")


def qr_svg(text: str, title: str) -> Markup:
    """``text`` as an inline SVG QR code (``class="qr"``) that scales to any size.

    A ``viewBox`` and no ``width``/``height``: the stylesheet sizes it, and the whole symbol
    scales, its quiet zone (the 4 light modules around it, ISO/IEC 18004) included. A fixed
    pixel size with CSS forcing another one clipped two of the three finder patterns, and no
    reader found the code (issue 20, 2).
    """
    return Markup(segno.make(text, error="m").svg_inline(
        scale=1, border=4, dark="#000", light="#fff", title=title, svgclass="qr",
        omitsize=True))


def user_url(name: str, action: str = "") -> str:
    """``/users/NAME[/ACTION]``, the name one segment (``name_segment``). Every link and
    form to a user's pages is built here."""
    return f"/users/{name_segment(name)}" + (f"/{action}" if action else "")


class UserNameConverter(BaseConverter):
    """``<user:name>``: the one path segment ``name_segment`` made, decoded back to the
    name. ``/users/NAME`` as written before (a name without ``/`` or ``%``) still
    matches. A segment that is not UTF-8 once decoded matches no route (404)."""

    def to_python(self, value: str) -> str:
        try:
            return unquote(value, errors="strict")
        except UnicodeDecodeError:
            raise ValidationError() from None

    def to_url(self, value: str) -> str:
        return name_segment(value)


class AdminWeb:
    """The web consoles of one ``radiusd serve`` process.

    Args:
        store: the ``radiusd.store.Store``; only ever called through ``run_db``.
        keys: the server keys. accounts: the admin operations (shared with the CLI).
        run_db: ``run_db(fn, *args) -> Deferred``, runs ``fn`` in the DB thread pool.
        clock: ``seconds()`` (the reactor; tests a ``task.Clock``).
        random: randomness for session ids, CSRF tokens, codes and seeds.
        node: this server's name in audit rows.
        is_tls: served over HTTPS: cookies get ``Secure``, responses
            ``Strict-Transport-Security``.
        require_totp: admins sign in with password and their own TOTP
            (``[admin_web] require_totp``).
    """

    app = _GuardedKlein()
    log = Logger(namespace="radiusd.admin_web")

    def __init__(self, *, store, keys: Keys, accounts: Accounts, run_db: RunDb, clock,
                 random: RandomSource, node: str, is_tls: bool = False,
                 run_cpu: RunDb | None = None, require_totp: bool = True):
        self.store = store
        self.keys = keys
        self.accounts = accounts
        self.run_db = run_db
        # Password hashing (scrypt, ~50 ms) runs here, never in the DB pool: on SQLite that
        # pool is one thread, which RADIUS requests share.
        self.run_cpu = run_cpu if run_cpu is not None else run_db
        self.clock = clock
        self.random = random
        self.node = node
        self.is_tls = is_tls
        self.require_totp = require_totp
        self.sessions = SessionStore(clock, random)
        self.sign_in_tokens = SignInTokens(clock, random)
        self.throttle = SignInThrottle(clock)
        self._stylesheet = (STATIC / "style.css").read_bytes()
        self._dummy_hash: str | None = None
        self.templates = Environment(
            loader=PackageLoader("admin_web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True, lstrip_blocks=True)
        self.templates.filters.update(when=_when, exact_time=_exact_time,
                                      duration=format_duration, urlname=name_segment)
        self.templates.globals.update(user_url=user_url, on_token_use=ON_TOKEN_USE_LABELS)
        # Pages a FormInvalid re-renders, by FormInvalid.page.
        self._form_pages: Mapping[str, Callable[..., Awaitable[str]]] = {
            "admin_sign_in": self._admin_sign_in_form,
            "self_sign_in": self._self_sign_in_form,
            "users": self._users_form,
            "user": self._user_form,
            "settings": self._settings_form,
            "audit": self._audit_form,
            "self_home": self._self_home_form,
            "admin_code": self._sign_in_code_form,
            "admin_enrol": self._sign_in_enrol_form,
            "account": self._account_form,
        }

    def resource(self) -> IResource:
        """The ``IResource`` to serve (the Klein resource inside the security headers)."""
        return _SecurityHeaders(self.app.resource(), is_tls=self.is_tls)

    # --- who may call what ---------------------------------------------------------------

    @staticmethod
    def area_of(endpoint: str) -> str:
        return SELF_SERVICE if endpoint.startswith(SELF_SERVICE_PREFIX) else ADMIN

    async def authorize(self, endpoint: str, request) -> None:
        """Let the request reach ``endpoint`` or raise.

        A signed-in session is valid only while its account is: it still exists (the same
        account, not a re-created name), is not disabled, and has the generation it had at
        sign-in (a password change, a disable, a reset second factor change it). One small
        query per request, in the DB pool (issue 20, 4). A session that fails ends here.

        Raises:
            SignInRequired: no signed-in session of the endpoint's console.
            Forbidden: a POST whose ``csrf`` field is not the session's token.
        """
        area = self.area_of(endpoint)
        session = self._session(request, area)
        if session is not None and session.is_signed_in \
                and not await self._is_account_current(session):
            self.sessions.end(session)
            self._clear_cookie(request, area)
            session = None
        if endpoint not in PUBLIC_ENDPOINTS and (session is None or not session.is_signed_in):
            raise SignInRequired(area)
        if request.method == b"POST":
            token = _body_field(request, "csrf")
            if endpoint in SIGN_IN_ENDPOINTS:
                # The sign-in form is protected too (login CSRF), by a token that needs no
                # server-side session: a flood of sign-in page views evicts nothing.
                name, _path = SIGN_IN_COOKIE[area]
                cookie = request.getCookie(name)
                if not self.sign_in_tokens.is_valid(
                        area, token, cookie.decode("ascii", "replace") if cookie else None):
                    raise Forbidden()
            elif session is None or not session.is_csrf_valid(token):
                raise Forbidden()

    def refuse_bad_text(self, endpoint: str, request, route_args: Mapping[str, Any]) -> None:
        """Refuse a request whose fields are not UTF-8 (after ``authorize``).

        Raises:
            FormInvalid: a field's value is not UTF-8 and the endpoint has a form page
                (``TEXT_FORM_PAGES``): the error goes next to that field.
            UsageError: any other request with invalid UTF-8 (a 400 page).
        """
        text = forms.submitted_text(request.args or {})
        if text.is_text:
            return
        page = TEXT_FORM_PAGES.get(endpoint)
        if page is None or text.has_bad_name:
            raise UsageError("The address or the form holds text that is not valid UTF-8: "
                             "nothing was done.")
        raise forms.FormInvalid(page, {name: forms.NOT_UTF8 for name in text.bad_values},
                                text.values, route_args.get("name"))

    async def _is_account_current(self, session: Session) -> bool:
        if session.stamp is None:
            return False
        kind = ADMIN_ACCOUNT if session.area == ADMIN else USER_ACCOUNT
        account = await self.run_db(lambda: self.store.find_web_account(
            kind, account_id=session.stamp[0]))
        return (account is not None and not account.is_disabled
                and account.stamp == session.stamp)

    def _session(self, request, area: str) -> Session | None:
        name, _path = COOKIE[area]
        cookie = request.getCookie(name)
        return self.sessions.get(cookie.decode("ascii", "replace") if cookie else None, area)

    def _signed_in(self, request, area: str) -> Session:
        session = self._session(request, area)
        if session is None or not session.is_signed_in:
            raise SignInRequired(area)
        return session

    def _set_cookie(self, request, session: Session) -> None:
        name, path = COOKIE[session.area]
        request.addCookie(name, session.id.encode("ascii"), path=path, httpOnly=True,
                          secure=self.is_tls or None, sameSite="strict")

    def _clear_cookie(self, request, area: str) -> None:
        name, path = COOKIE[area]
        request.addCookie(name, b"", path=path, max_age=b"0", httpOnly=True,
                          secure=self.is_tls or None, sameSite="strict")

    def _sign_in_token(self, request, area: str) -> str:
        """A new stateless CSRF token for a sign-in form, also set as its cookie."""
        token = self.sign_in_tokens.issue(area)
        name, path = SIGN_IN_COOKIE[area]
        request.addCookie(name, token.encode("ascii"), path=path, httpOnly=True,
                          secure=self.is_tls or None, sameSite="strict")
        return token

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), UTC)

    # --- rendering -----------------------------------------------------------------------

    def _render(self, request, template: str, *, area: str = ADMIN, status: int = 200,
                session: Session | None = None, **context: Any) -> str:
        request.setResponseCode(status)
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        notices: list[str] = []
        if session is not None:
            notices, session.notices = session.notices, []
        context.setdefault("errors", {})
        context.setdefault("values", {})
        return self.templates.get_template(template).render(
            area=area, session=session, notices=notices, **context)

    def _page_of_error(self, request, status: int, title: str, message: str) -> str:
        area = SELF_SERVICE if request.path.startswith(b"/self-service") else ADMIN
        session = self._session(request, area)
        if session is not None and not session.is_signed_in:
            session = None
        return self._render(request, "error.html", area=area, status=status,
                            session=session, title=title, message=message)

    # --- the one place errors become responses -------------------------------------------

    @app.handle_errors(Exception)
    async def _errors(self, request, failure):
        error = failure.value
        match error:
            case SignInRequired(area=area):
                return _redirect(request, SIGN_IN_URL[area])
            case Forbidden():
                return self._page_of_error(
                    request, 403, "Request refused",
                    "This form has expired or did not come from this site. Go back, reload "
                    "the page and try again.")
            case SelfServiceOff(message=message):
                session = self._session(request, SELF_SERVICE)
                return self._render(request, "self_off.html", area=SELF_SERVICE, status=403,
                                    session=session if session and session.is_signed_in
                                    else None, message=message)
            case forms.FormInvalid():
                try:
                    request.setResponseCode(400)
                    return await self._form_pages[error.page](request, error)
                except NotFound as missing:  # e.g. a form about a user who is not there
                    return self._page_of_error(request, 404, "Not found", _plain(str(missing)))
                except Exception:
                    self.log.failure("cannot render the form page {page}",
                                     page=error.page)
                    return self._page_of_error(request, 500, "Something went wrong",
                                               "The server could not show this page.")
            case NotFound():
                return self._page_of_error(request, 404, "Not found", _plain(str(error)))
            case UsageError():
                return self._page_of_error(request, 400, "Cannot do that", _plain(str(error)))
            case StoreUnavailable() | NotInitialised():
                self.log.error("admin web: database unavailable: {error}", error=str(error))
                return self._page_of_error(
                    request, 503, "Service unavailable",
                    "The database cannot be reached right now. Try again in a minute.")
            case RequestRedirect():
                request.setResponseCode(error.code)
                request.setHeader(b"Location",
                                  _local_redirect(request, error.new_url).encode("utf-8"))
                return b""
            case NoRoute():
                return self._page_of_error(request, 404, "Not found",
                                           "There is no page at this address.")
            case MethodNotAllowed():
                if error.valid_methods:  # RFC 9110 §15.5.6: a 405 says what is allowed
                    request.setHeader(b"Allow",
                                      ", ".join(sorted(error.valid_methods)).encode("ascii"))
                return self._page_of_error(request, 405, "Not allowed",
                                           "This page cannot be used that way.")
            case HTTPException():
                return self._page_of_error(request, error.code or 400, "Cannot do that",
                                           error.name)
            case _:
                self.log.failure("admin web: unexpected error on {path}", failure,
                                 path=request.path.decode("utf-8", "replace"))
                return self._page_of_error(request, 500, "Something went wrong",
                                           "The server could not complete this request. "
                                           "It has been logged.")

    # --- shared --------------------------------------------------------------------------

    @app.route("/static/style.css", methods=["GET"], endpoint="stylesheet")
    def stylesheet(self, request):
        request.setHeader(b"Content-Type", b"text/css; charset=utf-8")
        request.setHeader(b"Cache-Control", b"public, max-age=300")
        return self._stylesheet

    def _dummy(self) -> str:
        # Unknown names cost as much as wrong passwords: no timing oracle for names.
        if self._dummy_hash is None:
            self._dummy_hash = hash_password(Secret(b"not-a-password"), self.random)
        return self._dummy_hash

    def _has_admin(self) -> bool:
        return self.store.count_admins() > 0

    def _find_account(self, area: str, name: str) -> WebAccount | None:
        """In the DB pool: the account signing in (None: no such account)."""
        return self.store.find_web_account(ADMIN_ACCOUNT if area == ADMIN else USER_ACCOUNT,
                                           name=name)

    def _audit_sign_in(self, area: str, name: str, reason: str | None, client: str,
                       now: datetime, step: str | None = None) -> None:
        """In the DB pool: the audit row of one sign-in attempt (``step``: ``totp`` or
        ``enrol_totp`` for an admin's second step)."""
        if area == ADMIN:
            event = AuditEvent(at=now, action="admin.sign_in",
                               result="ok" if reason is None else "reject",
                               actor=f"admin:{name}" if reason is None else "web",
                               reason=reason, client=client, node=self.node,
                               detail={"admin": name, **({"step": step} if step else {})})
        else:
            event = AuditEvent(at=now, action="self_service.sign_in",
                               result="ok" if reason is None else "reject",
                               actor=f"self-service:{name}" if reason is None else "web",
                               user_name=name, reason=reason, client=client, node=self.node)
        self.store.write_audit(event)

    async def _check_sign_in(self, area: str, name: str, password: Secret, client: str,
                             now: datetime, is_throttled: bool, *, is_last_step: bool = True
                             ) -> tuple[str | None, WebAccount | None]:
        """Verify the password and write the audit row (a right password writes none when
        a second step follows: that step writes it).

        Returns:
            ``(None, account)`` when the password is right, else the reason
            (``throttled``, ``bad_credentials``, ``disabled``) as written to the audit row.
        """
        reason: str | None = "throttled"
        account = None
        if not is_throttled:
            account = await self.run_db(self._find_account, area, name)
            stored = account.password_hash if account is not None else None
            # Unknown names cost as much as wrong passwords: no timing oracle for names.
            is_valid = await self.run_cpu(verify_password, password,
                                          stored or self._dummy()) and stored is not None
            reason = None if is_valid else "bad_credentials"
            if is_valid and account.is_disabled:
                reason = "disabled"
        if reason is not None or is_last_step:
            await self.run_db(self._audit_sign_in, area, name, reason, client, now)
        return reason, account if reason is None else None

    async def _sign_in(self, request, area: str, page: str) -> bytes:
        session = self._session(request, area)
        values = _args(request)
        form = forms.sign_in(values, page)
        client = _client(request)
        is_throttled = self.throttle.is_blocked(area, form.name, client)
        has_second_step = area == ADMIN and self.require_totp
        reason, account = await self._check_sign_in(area, form.name, form.password, client,
                                                    self._now(), is_throttled,
                                                    is_last_step=not has_second_step)
        if reason == "throttled":
            raise forms.FormInvalid(page, {"": "Too many failed sign-ins. Wait five minutes "
                                               "and try again."}, values)
        if reason == "disabled":
            raise forms.FormInvalid(page, {"": "Your account is disabled. Contact your "
                                               "help desk."}, values)
        if reason is not None:
            self.throttle.record_failure(area, form.name, client)
            raise forms.FormInvalid(page, {"": "Wrong user name or password."}, values)
        if has_second_step:
            return self._start_second_step(request, session, account)
        return self._finish_sign_in(request, session, area, account, client)

    def _finish_sign_in(self, request, session: Session | None, area: str,
                        account: WebAccount, client: str) -> bytes:
        self.throttle.record_success(area, account.name, client)
        signed_in = self.sessions.sign_in(session, account.name, area, stamp=account.stamp)
        self._set_cookie(request, signed_in)
        return _redirect(request, HOME_URL[area])

    def _sign_out(self, request, area: str) -> bytes:
        self.sessions.end(self._signed_in(request, area))
        self._clear_cookie(request, area)
        return _redirect(request, SIGN_IN_URL[area])

    def _export(self, request, pending: PendingCodes | None, back: str) -> bytes:
        """The ``.txt`` download: ``export_text`` exactly as ``prepare_set`` rendered it."""
        if pending is None:
            return _redirect(request, back)
        filename = issuing.export_filename(pending.user_name)
        fallback = filename.encode("ascii", "replace").decode("ascii").replace("?", "_")
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Content-Disposition",
                          f"attachment; filename=\"{fallback}\"; "
                          f"filename*=UTF-8''{quote(filename, safe='')}".encode("ascii"))
        return pending.export_text.encode("utf-8")

    async def _download(self, request, pending: PendingCodes | None, back: str,
                        actor: str) -> bytes:
        """``_export``, with its ``emergency.export destination=download`` audit row
        written now that the file is actually downloaded (issue 20, 12)."""
        if pending is not None:
            now = self._now()
            await self.run_db(lambda: issuing.record_export(
                self.store, user_name=pending.user_name, set_id=pending.set_id, actor=actor,
                destination="download", node=self.node, now=now))
        return self._export(request, pending, back)

    def _keep_codes(self, session: Session, prepared: issuing.PreparedSet,
                    has_pin: bool) -> None:
        self.sessions.keep_codes(session, PendingCodes(
            user_name=prepared.user_name, set_id=prepared.emergency.id,
            codes=prepared.codes, export_text=prepared.export_text, has_pin=has_pin,
            issued_at=prepared.emergency.issued_at,
            valid_until=prepared.emergency.expires_at,
            kept_until=self.clock.seconds() + CODES_KEPT_FOR))

    def _issue(self, user_name: str, *, count: int | None, lifetime: timedelta | None,
               actor: str, reason: str, now: datetime) -> tuple[issuing.PreparedSet, bool]:
        """In the DB pool: prepare and commit a set exactly as the CLI does."""
        settings = self.store.load_settings()
        prepared = issuing.prepare_set(self.store, self.keys, self.random, settings,
                                       user_name=user_name, count=count, lifetime=lifetime,
                                       issued_by=actor, reason=reason, now=now)
        # No export row yet: it is written when the file is downloaded (_download).
        issuing.commit_set(self.store, prepared, actor=actor, destination=None,
                           node=self.node, now=now)
        return prepared, self.store.get_user(user_name).has_pin

    # =====================================================================================
    # Admin console
    # =====================================================================================

    def _actor(self, session: Session) -> str:
        return f"admin:{session.principal}"

    @app.route("/sign-in", methods=["GET"], endpoint="sign_in_page")
    async def sign_in_page(self, request):
        session = self._session(request, ADMIN)
        if session is not None and session.is_signed_in:
            return _redirect(request, "/")
        return await self._admin_sign_in_form(request, None)

    async def _admin_sign_in_form(self, request, form: forms.FormInvalid | None) -> str:
        has_admin = await self.run_db(self._has_admin)
        return self._render(request, "sign_in.html", area=ADMIN,
                            csrf_token=self._sign_in_token(request, ADMIN),
                            status=400 if form else 200, has_admin=has_admin,
                            action=SIGN_IN_URL[ADMIN], title="Sign in",
                            errors=form.errors if form else {},
                            values=form.values if form else {})

    @app.route("/sign-in", methods=["POST"], endpoint="sign_in")
    async def sign_in(self, request):
        return await self._sign_in(request, ADMIN, "admin_sign_in")

    @app.route("/sign-out", methods=["POST"], endpoint="sign_out")
    def sign_out(self, request):
        return self._sign_out(request, ADMIN)

    @app.route("/", methods=["GET"], endpoint="dashboard")
    async def dashboard(self, request):
        session = self._signed_in(request, ADMIN)
        now = self._now()

        def load():
            rejects = self.store.list_audit(action="auth", result="reject",
                                            since=now - REJECTS_SINCE, limit=AUDIT_CSV_LIMIT)
            return (self.store.count_users(), self.store.count_active_emergency_sets(now),
                    self.store.count_emergency_uses(now - REJECTS_SINCE),
                    Counter(r.event.reason or "unknown" for r in rejects).most_common())

        users, active_sets, uses, rejects = await self.run_db(load)
        return self._render(request, "dashboard.html", session=session, title="Dashboard",
                            users=users, active_sets=active_sets, uses=uses,
                            rejects=rejects, nav="dashboard")

    # --- users ---------------------------------------------------------------------------

    @app.route("/users", methods=["GET"], endpoint="users")
    async def users(self, request):
        return await self._users_form(request, None)

    async def _users_form(self, request, form: forms.FormInvalid | None) -> str:
        session = self._signed_in(request, ADMIN)
        query = _args(request) if form is None else {}
        search = (query.get("q") or "").strip() or None
        wanted_page = forms.page_number(query)

        def load():
            total = self.store.count_users(search)
            # Past the last page: the last page, never "Page 999 of 49".
            page = min(wanted_page, max(1, -(-total // forms.PAGE_SIZE)))
            return (total, page, self.store.list_users(search, forms.PAGE_SIZE,
                                                       (page - 1) * forms.PAGE_SIZE),
                    self.store.load_settings())

        total, page, users, settings = await self.run_db(load)
        now = self._now()
        pages = max(1, -(-total // forms.PAGE_SIZE))
        return self._render(request, "users.html", session=session, title="Users",
                            nav="users", status=400 if form else 200, users=users,
                            total=total, page=page, pages=pages, search=search or "",
                            page_url=lambda n: "/users?" + urlencode(
                                {**({"q": search} if search else {}), "page": n}),
                            errors=form.errors if form else {},
                            values=form.values if form else {},
                            locked={u.name for u in users
                                    if _is_locked(u, settings, now)})

    @app.route("/users", methods=["POST"], endpoint="create_user")
    async def create_user(self, request):
        session = self._signed_in(request, ADMIN)
        now = self._now()
        values = _args(request)
        new = forms.new_user(values)
        try:
            await self.run_db(lambda: self.accounts.add_user(
                new.name, pin=new.pin, password=new.password, actor=self._actor(session),
                now=now))
        except UsageError as exc:  # AlreadyExists, or a rule the form does not know
            field = "password" if "password" in str(exc) else "name"
            raise forms.FormInvalid("users", {field: _plain(str(exc))}, values) from None
        session.notices.append(f"User {new.name} created.")
        return _redirect(request, user_url(new.name))

    @app.route("/users/<user:name>", methods=["GET"], endpoint="user_page")
    async def user_page(self, request, name: str):
        return await self._user_form(request, None, name)

    async def _user_form(self, request, form: forms.FormInvalid | None,
                         name: str | None = None) -> str:
        session = self._signed_in(request, ADMIN)
        name = name if form is None else form.target
        now = self._now()

        def load():
            user = self.store.get_user(name)
            return (user, self.store.list_tokens(name), self.store.get_emergency_set(name),
                    self.store.load_settings())

        user, tokens, emergency, settings = await self.run_db(load)
        locked = _is_locked(user, settings, now)
        pending = self.sessions.codes(session, name)
        return self._render(request, "user.html", session=session, title=f"User {name}",
                            nav="users", status=400 if form else 200, user=user,
                            tokens=tokens, emergency=_set_view(emergency, now),
                            settings=settings, is_locked=locked, pending=pending,
                            errors=form.errors if form else {},
                            values=form.values if form else {})

    async def _user_action(self, request, name: str,
                           work: Callable[[str, datetime], Any], notice: str,
                           field: str = "") -> bytes:
        """Run one account operation (``work(actor, now)``, in the DB pool) for ``name`` and
        come back to the user page."""
        session = self._signed_in(request, ADMIN)
        try:
            await self.run_db(work, self._actor(session), self._now())
        except NotFound:
            raise
        except UsageError as exc:
            raise forms.FormInvalid("user", {field: _plain(str(exc))}, _args(request),
                                    name) from None
        session.notices.append(notice)
        return _redirect(request, user_url(name))

    @app.route("/users/<user:name>/pin", methods=["POST"], endpoint="set_pin")
    async def set_pin(self, request, name: str):
        pin = forms.pin(_args(request), name)
        return await self._user_action(request, name, lambda actor, now: self.accounts.set_pin(
            name, pin, actor=actor, now=now), "PIN set.", "pin")

    @app.route("/users/<user:name>/clear-pin", methods=["POST"], endpoint="clear_pin")
    async def clear_pin(self, request, name: str):
        forms.confirmed(_args(request), "confirm_clear_pin", "user", target=name,
                        kept="The PIN was not cleared.")
        return await self._user_action(request, name, lambda actor, now: self.accounts.set_pin(
            name, None, actor=actor, now=now), "PIN cleared.", "pin")

    @app.route("/users/<user:name>/unlock", methods=["POST"], endpoint="unlock_user")
    async def unlock_user(self, request, name: str):
        return await self._user_action(request, name, lambda actor, now: self.accounts.unlock(
            name, actor=actor, now=now), "User unlocked.")

    @app.route("/users/<user:name>/disable", methods=["POST"], endpoint="disable_user")
    async def disable_user(self, request, name: str):
        return await self._user_action(request, name, lambda actor, now: self.accounts.set_disabled(
            name, True, actor=actor, now=now), "User disabled.")

    @app.route("/users/<user:name>/enable", methods=["POST"], endpoint="enable_user")
    async def enable_user(self, request, name: str):
        return await self._user_action(request, name, lambda actor, now: self.accounts.set_disabled(
            name, False, actor=actor, now=now), "User enabled.")

    @app.route("/users/<user:name>/password", methods=["POST"], endpoint="set_password")
    async def set_password(self, request, name: str):
        password = forms.password(_args(request), name)
        return await self._user_action(request, name, lambda actor, now: self.accounts.set_password(
            name, password, actor=actor, now=now),
            "Self-service password set.", "password")

    @app.route("/users/<user:name>/delete", methods=["POST"], endpoint="delete_user")
    async def delete_user(self, request, name: str):
        session = self._signed_in(request, ADMIN)
        values = _args(request)
        if values.get("confirm") != "yes":
            raise forms.FormInvalid("user", {"confirm": "Tick the box to confirm."}, values,
                                    name)
        now = self._now()
        await self.run_db(lambda: self.accounts.delete_user(name, actor=self._actor(session),
                                                            now=now))
        self.sessions.drop_codes(session, name)
        session.notices.append(f"User {name} deleted.")
        return _redirect(request, "/users")

    # --- tokens --------------------------------------------------------------------------

    @app.route("/users/<user:name>/tokens", methods=["POST"], endpoint="add_token")
    async def add_token(self, request, name: str):
        session = self._signed_in(request, ADMIN)
        now = self._now()
        values = _args(request)
        token = forms.new_token(values, name)
        try:
            new = await self.run_db(lambda: self.accounts.add_token(
                name, kind=token.kind, secret=token.secret, digits=token.digits,
                period=token.period, serial=token.serial, actor=self._actor(session),
                now=now))
        except NotFound:
            raise
        except UsageError as exc:
            field = "seed" if token.secret is not None and "secret" in str(exc) else "serial"
            raise forms.FormInvalid("user", {field: _plain(str(exc))}, values,
                                    name) from None
        if token.secret is not None:
            session.notices.append(f"Token {new.info.serial} added.")
            return _redirect(request, user_url(name))
        self.sessions.keep_token(session, PendingToken(
            user_name=name, serial=new.info.serial, uri=Secret(new.uri),
            kept_until=self.clock.seconds() + PROVISIONING_KEPT_FOR))
        return _redirect(request, user_url(name, "new-token"))

    @app.route("/users/<user:name>/new-token", methods=["GET"], endpoint="new_token")
    def new_token(self, request, name: str):
        session = self._signed_in(request, ADMIN)
        pending = self.sessions.pop_token(session, name)
        if pending is None:
            session.notices.append("The token's QR code is shown only once.")
            return _redirect(request, user_url(name))
        uri = pending.uri.reveal().decode("utf-8")
        return self._render(request, "new_token.html", session=session,
                            title=f"New token for {name}", nav="users", user_name=name,
                            serial=pending.serial, uri=uri,
                            qr=qr_svg(uri, f"QR code of token {pending.serial}"))

    @app.route("/users/<user:name>/delete-token", methods=["POST"], endpoint="delete_token")
    async def delete_token(self, request, name: str):
        values = _args(request)
        serial = values.get("serial", "")
        # The error goes next to that token's box; the add-token form is not refilled.
        forms.confirmed(values, "confirm_delete_token", "user", target=name,
                        kept=f"Token {serial} was not deleted.",
                        refill={"delete_serial": serial})
        return await self._user_action(request, name, lambda actor, now: self.accounts.delete_token(
            name, serial, actor=actor, now=now),
            f"Token {serial} deleted.")

    # --- emergency access ----------------------------------------------------------------

    @app.route("/users/<user:name>/emergency", methods=["POST"], endpoint="issue_set")
    async def issue_set(self, request, name: str):
        session = self._signed_in(request, ADMIN)
        now = self._now()
        values = _args(request)
        settings = await self.run_db(self.store.load_settings)
        wanted = forms.issue_request(values, settings, name)
        reason = (values.get("reason") or "").strip()[:200]
        prepared, has_pin = await self.run_db(lambda: self._issue(
            name, count=wanted.count, lifetime=wanted.lifetime, actor=self._actor(session),
            reason=reason, now=now))
        self._keep_codes(session, prepared, has_pin)
        return _redirect(request, user_url(name, "codes"))

    @app.route("/users/<user:name>/codes", methods=["GET"], endpoint="codes_page")
    def codes_page(self, request, name: str):
        session = self._signed_in(request, ADMIN)
        pending = self.sessions.codes(session, name)
        if pending is None:
            return _redirect(request, user_url(name))
        return self._render(request, "codes.html", session=session, nav="users",
                            title=f"Emergency codes for {name}", pending=pending,
                            export_url=user_url(name, "export"),
                            print_url=user_url(name, "print"),
                            done_url=user_url(name, "done"), back_url=user_url(name))

    @app.route("/users/<user:name>/print", methods=["GET"], endpoint="print_codes")
    def print_codes(self, request, name: str):
        session = self._signed_in(request, ADMIN)
        pending = self.sessions.codes(session, name)
        if pending is None:
            return _redirect(request, user_url(name))
        return self._render(request, "print.html", session=session, pending=pending,
                            title=f"Emergency codes for {name}", back_url=user_url(name, "codes"))

    @app.route("/users/<user:name>/export", methods=["POST"], endpoint="export_codes")
    async def export_codes(self, request, name: str):
        session = self._signed_in(request, ADMIN)
        return await self._download(request, self.sessions.codes(session, name),
                                    user_url(name), self._actor(session))

    @app.route("/users/<user:name>/done", methods=["POST"], endpoint="forget_codes")
    def forget_codes(self, request, name: str):
        session = self._signed_in(request, ADMIN)
        self.sessions.drop_codes(session, name)
        return _redirect(request, user_url(name))

    @app.route("/users/<user:name>/revoke", methods=["POST"], endpoint="revoke_set")
    async def revoke_set(self, request, name: str):
        session = self._signed_in(request, ADMIN)
        forms.confirmed(_args(request), "confirm_revoke", "user", target=name,
                        kept="Emergency access is still on.")
        now = self._now()
        await self.run_db(lambda: issuing.revoke_set(
            self.store, user_name=name, actor=self._actor(session),
            reason="revoked by an admin", node=self.node, now=now))
        self.sessions.drop_codes(session, name)
        session.notices.append("Emergency access ended: the remaining codes no longer work.")
        return _redirect(request, user_url(name))

    # --- self-service settings -----------------------------------------------------------

    @app.route("/settings", methods=["GET"], endpoint="settings_page")
    async def settings_page(self, request):
        return await self._settings_form(request, None)

    async def _settings_form(self, request, form: forms.FormInvalid | None) -> str:
        session = self._signed_in(request, ADMIN)
        settings, stored = await self.run_db(
            lambda: (self.store.load_settings(), self.accounts.settings_problems()))
        current = {name: settings.as_text()[key] for name, key in forms.SETTINGS_FIELDS.items()}
        # A stored value out of bounds reads as its default: say so next to its field.
        stored_problems = {name: forms.stored_problem(stored[key])
                           for name, key in forms.SETTINGS_FIELDS.items() if key in stored}
        if form is not None:
            current.update({name: form.values.get(name, "")
                            for name in forms.SETTINGS_FIELDS})
            stored_problems = {}
        return self._render(request, "settings.html", session=session,
                            title="Self-Service Settings", nav="settings",
                            status=400 if form else 200, current=current,
                            errors=form.errors if form else stored_problems,
                            stored_problems=stored_problems)

    @app.route("/settings", methods=["POST"], endpoint="save_settings")
    async def save_settings(self, request):
        session = self._signed_in(request, ADMIN)
        now = self._now()
        values = _args(request)

        def save() -> int:
            # Every field is checked before the first is saved: nothing half-saved.
            changes = forms.settings_changes(values, self.store.load_settings(),
                                             rewrite=self.accounts.settings_problems())
            for key, text in changes.items():
                self.accounts.set_setting(key, text, actor=self._actor(session),
                                          now=now)
            return len(changes)

        changed = await self.run_db(save)
        session.notices.append("Settings saved." if changed else "Nothing to change.")
        return _redirect(request, "/settings")

    # --- audit log -----------------------------------------------------------------------

    @app.route("/audit", methods=["GET"], endpoint="audit_page")
    async def audit_page(self, request):
        return await self._audit_form(request, None)

    async def _audit_form(self, request, form: forms.FormInvalid | None) -> str:
        session = self._signed_in(request, ADMIN)
        values = _args(request)
        wanted = forms.audit_filter({} if form else values)
        offset = (wanted.page - 1) * forms.PAGE_SIZE
        since = self._now() - wanted.since if wanted.since is not None else None
        records = await self.run_db(lambda: self.store.list_audit(
            user_name=wanted.user, since=since, action=wanted.action, result=wanted.result,
            limit=forms.PAGE_SIZE + 1, offset=offset))
        has_next = len(records) > forms.PAGE_SIZE
        if not records and wanted.page > 1:
            raise NotFound(f"Page {wanted.page} is past the end of the audit log.")
        return self._render(
            request, "audit.html", session=session, title="Audit log", nav="audit",
            status=400 if form else 200, records=records[:forms.PAGE_SIZE],
            page=wanted.page, has_next=has_next, filters=form.values if form else values,
            results=forms.AUDIT_RESULTS, errors=form.errors if form else {},
            page_url=lambda n: "/audit?" + urlencode({**wanted.query, "page": n}),
            csv_url="/audit.csv" + ("?" + urlencode(wanted.query) if wanted.query else ""),
            detail_text=lambda detail: ", ".join(f"{k}={v}" for k, v in sorted(detail.items())))

    @app.route("/audit.csv", methods=["GET"], endpoint="audit_csv")
    async def audit_csv(self, request):
        self._signed_in(request, ADMIN)
        wanted = forms.audit_filter(_args(request))
        since = self._now() - wanted.since if wanted.since is not None else None
        records = await self.run_db(lambda: self.store.list_audit(
            user_name=wanted.user, since=since, action=wanted.action, result=wanted.result,
            limit=AUDIT_CSV_LIMIT))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
        writer.writerow(["id", "at", "action", "result", "actor", "user", "reason", "client",
                         "nas_address", "node", "detail"])
        for record in records:
            event = record.event
            writer.writerow([csv_cell(v) for v in (
                record.id, event.at.astimezone(UTC).isoformat(), event.action, event.result,
                event.actor, event.user_name, event.reason, event.client, event.nas_address,
                event.node, json.dumps(dict(event.detail), sort_keys=True, default=str))])
        request.setHeader(b"Content-Type", b"text/csv; charset=utf-8")
        request.setHeader(b"Content-Disposition", b'attachment; filename="radiusd-audit.csv"')
        return out.getvalue().encode("utf-8")

    # =====================================================================================
    # Self-service console
    # =====================================================================================

    async def _policy(self) -> Settings:
        """The policy, refusing when the console is off.

        Raises:
            SelfServiceOff: ``self_service.enabled`` is false.
        """
        settings = await self.run_db(self.store.load_settings)
        if not settings.self_service_enabled:
            raise SelfServiceOff("Self-service is turned off. Contact your help desk for "
                                 "help with your token.")
        return settings

    async def _user_may_request(self) -> Settings:
        """Raises SelfServiceOff: the console is off, or users may not request codes."""
        settings = await self._policy()
        if not settings.allow_user_request:
            raise SelfServiceOff("Your administrator must issue emergency codes for you: "
                                 "contact your help desk. Nothing was issued.")
        return settings

    def _self_actor(self, session: Session) -> str:
        return f"self-service:{session.principal}"

    @app.route("/self-service/sign-in", methods=["GET"], endpoint="self_service_sign_in_page")
    async def self_service_sign_in_page(self, request):
        session = self._session(request, SELF_SERVICE)
        if session is not None and session.is_signed_in:
            return _redirect(request, HOME_URL[SELF_SERVICE])
        return await self._self_sign_in_form(request, None)

    async def _self_sign_in_form(self, request, form: forms.FormInvalid | None) -> str:
        await self._policy()
        return self._render(request, "sign_in.html", area=SELF_SERVICE,
                            csrf_token=self._sign_in_token(request, SELF_SERVICE),
                            status=400 if form else 200, has_admin=True,
                            action=SIGN_IN_URL[SELF_SERVICE], title="Self-Service sign in",
                            errors=form.errors if form else {},
                            values=form.values if form else {})

    @app.route("/self-service/sign-in", methods=["POST"], endpoint="self_service_sign_in")
    async def self_service_sign_in(self, request):
        await self._policy()
        return await self._sign_in(request, SELF_SERVICE, "self_sign_in")

    @app.route("/self-service/sign-out", methods=["POST"], endpoint="self_service_sign_out")
    def self_service_sign_out(self, request):
        return self._sign_out(request, SELF_SERVICE)

    @app.route("/self-service/", methods=["GET"], endpoint="self_service_home")
    async def self_service_home(self, request):
        return await self._self_home_form(request, None)

    async def _self_home_form(self, request, form: forms.FormInvalid | None) -> str:
        session = self._signed_in(request, SELF_SERVICE)
        settings = await self._policy()
        name = session.principal

        def load():
            return self.store.get_user(name), self.store.get_emergency_set(name)

        user, emergency = await self.run_db(load)
        return self._render(request, "self_home.html", area=SELF_SERVICE, session=session,
                            title="My token", user=user,
                            emergency=_set_view(emergency, self._now()), settings=settings,
                            has_codes=self.sessions.codes(session, name) is not None,
                            status=400 if form else 200,
                            errors=form.errors if form else {})

    @app.route("/self-service/troubleshoot", methods=["GET"],
               endpoint="self_service_troubleshoot")
    async def self_service_troubleshoot(self, request):
        session = self._signed_in(request, SELF_SERVICE)
        settings = await self._policy()
        return self._render(request, "self_troubleshoot.html", area=SELF_SERVICE,
                            session=session, title="Troubleshoot", settings=settings)

    @app.route("/self-service/emergency", methods=["GET"], endpoint="self_service_confirm")
    async def self_service_confirm(self, request):
        session = self._signed_in(request, SELF_SERVICE)
        settings = await self._user_may_request()
        name = session.principal
        user, emergency = await self.run_db(
            lambda: (self.store.get_user(name), self.store.get_emergency_set(name)))
        now = self._now()
        return self._render(request, "self_confirm.html", area=SELF_SERVICE,
                            session=session, title="Emergency access", settings=settings,
                            user=user, valid_until=now + settings.lifetime,
                            emergency=_set_view(emergency, now))

    @app.route("/self-service/emergency", methods=["POST"], endpoint="self_service_issue")
    async def self_service_issue(self, request):
        session = self._signed_in(request, SELF_SERVICE)
        now = self._now()
        await self._user_may_request()
        prepared, has_pin = await self.run_db(lambda: self._issue(
            session.principal, count=None, lifetime=None, actor=self._self_actor(session),
            reason="token unavailable or misplaced", now=now))
        self._keep_codes(session, prepared, has_pin)
        return _redirect(request, "/self-service/codes")

    @app.route("/self-service/codes", methods=["GET"], endpoint="self_service_codes")
    async def self_service_codes(self, request):
        session = self._signed_in(request, SELF_SERVICE)
        await self._policy()
        pending = self.sessions.codes(session, session.principal)
        if pending is None:
            return _redirect(request, HOME_URL[SELF_SERVICE])
        return self._render(request, "codes.html", area=SELF_SERVICE, session=session,
                            title="Your emergency codes", pending=pending,
                            export_url="/self-service/export", print_url="/self-service/print",
                            done_url="/self-service/done", back_url="/self-service/")

    @app.route("/self-service/print", methods=["GET"], endpoint="self_service_print")
    async def self_service_print(self, request):
        session = self._signed_in(request, SELF_SERVICE)
        await self._policy()
        pending = self.sessions.codes(session, session.principal)
        if pending is None:
            return _redirect(request, HOME_URL[SELF_SERVICE])
        return self._render(request, "print.html", area=SELF_SERVICE, session=session,
                            pending=pending, title="Your emergency codes",
                            back_url="/self-service/codes")

    @app.route("/self-service/export", methods=["POST"], endpoint="self_service_export")
    async def self_service_export(self, request):
        session = self._signed_in(request, SELF_SERVICE)
        await self._policy()
        return await self._download(request, self.sessions.codes(session, session.principal),
                                    HOME_URL[SELF_SERVICE], self._self_actor(session))

    @app.route("/self-service/done", methods=["POST"], endpoint="self_service_done")
    def self_service_done(self, request):
        session = self._signed_in(request, SELF_SERVICE)
        self.sessions.drop_codes(session, session.principal)
        return _redirect(request, HOME_URL[SELF_SERVICE])

    @app.route("/self-service/found", methods=["POST"], endpoint="self_service_found")
    async def self_service_found(self, request):
        session = self._signed_in(request, SELF_SERVICE)
        now = self._now()
        await self._policy()
        forms.confirmed(_args(request), "confirm_found", "self_home",
                        kept="Emergency access is still on: your codes still work.")
        try:
            await self.run_db(lambda: issuing.revoke_set(
                self.store, user_name=session.principal, actor=self._self_actor(session),
                reason="token found", node=self.node, now=now))
        except NotFound:
            session.notices.append("Emergency access was not on: nothing to end.")
        else:
            session.notices.append("Welcome back. Emergency access has ended: your codes no "
                                   "longer work. Sign in with your PIN and your token.")
        self.sessions.drop_codes(session, session.principal)
        return _redirect(request, HOME_URL[SELF_SERVICE])

    # =====================================================================================
    # Admins: the second sign-in step (their own TOTP) and their account (issue 20, 13)
    # =====================================================================================

    def _start_second_step(self, request, session: Session | None,
                           account: WebAccount) -> bytes:
        """After a right password: a session that waits for the admin's code (or for her
        TOTP enrolment, with a new seed kept in the session until a first code confirms
        it). It opens no page but the second step."""
        seed = None if account.has_totp else Secret(otp.generate_seed(self.random))
        waiting = self.sessions.start_second_factor(session, ADMIN, PendingSignIn(
            account_id=account.id, name=account.name, stamp=account.stamp, enrol_seed=seed,
            until=self.clock.seconds() + SECOND_FACTOR_WITHIN))
        self._set_cookie(request, waiting)
        return _redirect(request, "/sign-in/enrol" if seed is not None else "/sign-in/code")

    def _pending_sign_in(self, request) -> tuple[Session, PendingSignIn]:
        """Raises SignInRequired: no second step under way (or it took too long)."""
        session = self._session(request, ADMIN)
        if session is None or session.pending is None:
            raise SignInRequired(ADMIN)
        if self.clock.seconds() >= session.pending.until:
            self.sessions.end(session)
            raise SignInRequired(ADMIN)
        return session, session.pending

    async def _second_step_account(self, request, session: Session,
                                   pending: PendingSignIn) -> WebAccount:
        """The admin as she is now; her sign-in starts over if she changed since her
        password was checked (deleted, new password, reset second factor).

        Raises:
            forms.FormInvalid: (the sign-in page) too many failures from this address.
            SignInRequired: the admin changed.
        """
        if self.throttle.is_blocked(ADMIN, pending.name, _client(request)):
            self.sessions.end(session)
            await self.run_db(self._audit_sign_in, ADMIN, pending.name, "throttled",
                              _client(request), self._now())
            raise forms.FormInvalid("admin_sign_in", {"": "Too many failed sign-ins. Wait "
                                                          "five minutes and try again."},
                                    {"name": pending.name})
        account = await self.run_db(lambda: self.store.find_web_account(
            ADMIN_ACCOUNT, account_id=pending.account_id))
        if account is None or account.stamp != pending.stamp:
            self.sessions.end(session)
            raise SignInRequired(ADMIN)
        return account

    @app.route("/sign-in/code", methods=["GET"], endpoint="sign_in_code_page")
    async def sign_in_code_page(self, request):
        return await self._sign_in_code_form(request, None)

    async def _sign_in_code_form(self, request, form: forms.FormInvalid | None) -> str:
        session, pending = self._pending_sign_in(request)
        if pending.enrol_seed is not None:
            return _redirect(request, "/sign-in/enrol")
        return self._render(request, "sign_in_code.html", session=session,
                            title="Sign in: your code", name=pending.name,
                            status=400 if form else 200,
                            errors=form.errors if form else {})

    @app.route("/sign-in/code", methods=["POST"], endpoint="sign_in_code")
    async def sign_in_code(self, request):
        session, pending = self._pending_sign_in(request)
        if pending.enrol_seed is not None:
            return _redirect(request, "/sign-in/enrol")
        client, now = _client(request), self._now()
        account = await self._second_step_account(request, session, pending)
        reason = await self.run_db(self.accounts.check_admin_code, account,
                                   _args(request).get("code", ""), now)
        await self.run_db(self._audit_sign_in, ADMIN, account.name, reason, client, now,
                          "totp")
        if reason is not None:
            self.throttle.record_failure(ADMIN, account.name, client)
            raise forms.FormInvalid("admin_code", {"code": "Wrong or already used code. "
                                                           "Type the code the app shows now "
                                                           "(or wait for the next one)."}, {})
        return self._finish_sign_in(request, session, ADMIN, account, client)

    @app.route("/sign-in/enrol", methods=["GET"], endpoint="sign_in_enrol_page")
    async def sign_in_enrol_page(self, request):
        return await self._sign_in_enrol_form(request, None)

    async def _sign_in_enrol_form(self, request, form: forms.FormInvalid | None) -> str:
        session, pending = self._pending_sign_in(request)
        if pending.enrol_seed is None:
            return _redirect(request, "/sign-in/code")
        uri = self.accounts.admin_totp_uri(pending.name, pending.enrol_seed)
        # omitsize: a viewBox instead of a fixed size, so the page's CSS scales it whole.
        svg = segno.make(uri, error="m").svg_inline(
            scale=5, dark="#000", light="#fff", omitsize=True,
            title="QR code of your sign-in authenticator", svgclass="qr")
        secret = base64.b32encode(pending.enrol_seed.reveal()).decode("ascii").rstrip("=")
        return self._render(request, "sign_in_enrol.html", session=session,
                            title="Set up your second factor", name=pending.name, uri=uri,
                            qr=Markup(svg),
                            secret=" ".join(secret[i:i + 4] for i in range(0, len(secret), 4)),
                            status=400 if form else 200,
                            errors=form.errors if form else {})

    @app.route("/sign-in/enrol", methods=["POST"], endpoint="sign_in_enrol")
    async def sign_in_enrol(self, request):
        session, pending = self._pending_sign_in(request)
        if pending.enrol_seed is None:
            return _redirect(request, "/sign-in/code")
        client, now = _client(request), self._now()
        account = await self._second_step_account(request, session, pending)
        enrolled = await self.run_db(lambda: self.accounts.enrol_admin_totp(
            account, pending.enrol_seed, _args(request).get("code", ""), client=client,
            now=now))
        if enrolled is None:  # enrolled or changed meanwhile: start again
            self.sessions.end(session)
            raise SignInRequired(ADMIN)
        await self.run_db(self._audit_sign_in, ADMIN, account.name,
                          None if enrolled else "bad_code", client, now, "enrol_totp")
        if not enrolled:
            self.throttle.record_failure(ADMIN, account.name, client)
            raise forms.FormInvalid("admin_enrol", {"code": "That is not the app's current "
                                                            "code. Check that the app shows "
                                                            "radiusd admin and try again."},
                                    {})
        return self._finish_sign_in(request, session, ADMIN, account, client)

    @app.route("/account", methods=["GET"], endpoint="account_page")
    async def account_page(self, request):
        return await self._account_form(request, None)

    async def _account_form(self, request, form: forms.FormInvalid | None) -> str:
        session = self._signed_in(request, ADMIN)
        admins = await self.run_db(self.accounts.list_admins)
        return self._render(request, "account.html", session=session, title="My account",
                            admins=admins, min_length=ADMIN_MIN_LENGTH,
                            status=400 if form else 200,
                            errors=form.errors if form else {})

    @app.route("/account/password", methods=["POST"], endpoint="change_password")
    async def change_password(self, request):
        session = self._signed_in(request, ADMIN)
        values, client = _args(request), _client(request)
        current = Secret(values.get("current_password") or "")
        new = Secret(values.get("new_password") or "")
        name = session.principal
        if self.throttle.is_blocked(ADMIN, name, client):
            raise forms.FormInvalid("account", {"": "Too many wrong passwords. Wait five "
                                                    "minutes and try again."}, {})
        account = await self.run_db(lambda: self.store.find_web_account(
            ADMIN_ACCOUNT, account_id=session.stamp[0]))
        if account is None or not await self.run_cpu(verify_password, current,
                                                     account.password_hash):
            self.throttle.record_failure(ADMIN, name, client)
            raise forms.FormInvalid("account", {"current_password": "Wrong password."}, {})
        if (values.get("repeat_password") or "") != (values.get("new_password") or ""):
            raise forms.FormInvalid("account", {"repeat_password": "The two new passwords "
                                                                   "differ."}, {})
        try:
            check_admin_password(new, name)
        except UsageError as exc:
            raise forms.FormInvalid("account", {"new_password": _plain(str(exc)) + "."},
                                    {}) from None
        hashed = await self.run_cpu(hash_password, new, self.random)
        generation = await self.run_db(lambda: self.accounts.set_admin_password_hash(
            name, hashed, actor=self._actor(session), now=self._now()))
        # This session stays signed in; the admin's others end (their generation is old).
        session.stamp = (account.id, account.created_at, generation)
        self.sessions.end_all(ADMIN, name, keep=session)
        session.notices.append("Password changed. Your other sessions are signed out.")
        return _redirect(request, "/account")

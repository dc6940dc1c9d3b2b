"""In-memory harness for the web consoles (like ``treq.testing`` and structlog's
``testing.py``): the real ``AdminWeb`` on a real Store, driven through
``treq.testing.StubTreq`` with a synchronous ``run_db`` and a ``task.Clock``.

For tests only (needs the ``test`` extra: treq).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Callable, Mapping

from treq.testing import StubTreq
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.python.failure import Failure
from twisted.web.resource import Resource

from admin_web.app import AdminWeb
from radiusd import otp
from radiusd.accounts import ADMIN_TOTP_PERIOD, Accounts
from radiusd.crypto import Keys
from radiusd.model import RandomSource, Secret

START = 1_800_000_000.0  # 2027-01-15: a fixed "now" for every test
_CSRF = re.compile(r'name="csrf" value="([0-9a-f.]+)"')
_TOTP_URI = re.compile(r'<code id="uri" class="uri">(otpauth://[^<]+)</code>')


def synchronous_run_db(fn: Callable[..., Any], *args: Any) -> defer.Deferred:
    """``run_db`` for tests: runs ``fn`` at once (STYLE §5)."""
    return defer.maybeDeferred(fn, *args)


@dataclass
class Page:
    """One response: status, headers, body."""

    code: int
    headers: Mapping[str, list[str]]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8")

    @property
    def location(self) -> str | None:
        values = self.headers.get("location")
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def csrf(self) -> str:
        match = _CSRF.search(self.text)
        assert match is not None, "no CSRF token on this page"
        return match.group(1)


class _FromAddress(Resource):
    """The wrapped resource, seen from another client address (StubTreq always uses
    127.0.0.1)."""

    isLeaf = True

    def __init__(self, wrapped: Any, address: str):
        super().__init__()
        self._wrapped, self._address = wrapped, address

    def render(self, request):
        request.client = IPv4Address("TCP", self._address, 40000)
        return self._wrapped.render(request)


@dataclass
class WebClient:
    """A cookie-keeping client of one resource; every call returns a ``Page`` at once.

    ``address``: the client address the server sees (default StubTreq's 127.0.0.1).
    """

    resource: Any
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str | None = None  # the last CSRF token seen on a page
    address: str | None = None

    def __post_init__(self):
        resource = self.resource if self.address is None else _FromAddress(self.resource,
                                                                           self.address)
        self.stub = StubTreq(resource)

    def _wait(self, d: defer.Deferred) -> Any:
        results: list = []
        d.addBoth(results.append)
        self.stub.flush()
        assert results, "the request did not finish"
        if isinstance(results[0], Failure):
            results[0].raiseException()
        return results[0]

    def request(self, method: str, path: str, data: Mapping[str, str] | None = None,
                *, csrf: bool | str = True, follow: bool = False) -> Page:
        """Send; for a POST, ``csrf=True`` adds the last token seen, a str sends that."""
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = dict(data or {})
        if method == "POST" and csrf is not False:
            body.setdefault("csrf", self.csrf if csrf is True else csrf)
            body = {k: v for k, v in body.items() if v is not None}
        response = self._wait(self.stub.request(
            method, "http://localhost" + path, headers=headers,
            data=body if method == "POST" else None, allow_redirects=False))
        content = self._wait(response.content())
        raw = {k.decode().lower(): [v.decode("latin-1") for v in vs]
               for k, vs in response.headers.getAllRawHeaders()}
        for cookie in raw.get("set-cookie", []):
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if "max-age=0" in cookie.lower() or not value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        page = Page(code=response.code, headers=raw, content=content)
        match = _CSRF.search(content.decode("utf-8", "replace"))
        if match:
            self.csrf = match.group(1)
        if follow and page.location:
            return self.get(page.location)
        return page

    def get(self, path: str, *, follow: bool = False) -> Page:
        return self.request("GET", path, follow=follow)

    def post(self, path: str, data: Mapping[str, str] | None = None, *,
             csrf: bool | str = True, follow: bool = False) -> Page:
        return self.request("POST", path, data, csrf=csrf, follow=follow)


def secret_of_uri(uri: str) -> bytes:
    """The seed in an ``otpauth://`` URI (as an authenticator app reads it)."""
    from urllib.parse import parse_qs, urlsplit
    secret = parse_qs(urlsplit(uri.replace("&amp;", "&")).query)["secret"][0]
    return otp.parse_base32_seed(secret)


@dataclass
class Console:
    """The consoles on a Store, with the pieces a test needs to look behind them.

    ``totp_seeds``: each admin's TOTP seed, as her authenticator app holds it after she
    enrolled at her first sign-in (``signed_in`` enrols and then types its codes).
    """

    web: AdminWeb
    store: Any
    accounts: Accounts
    clock: task.Clock
    totp_seeds: dict[str, bytes] = field(default_factory=dict)
    _last_steps: dict[str, int] = field(default_factory=dict)

    def totp_code(self, name: str) -> str:
        """A code of ``name``'s app that has not been used yet (a code works once): of
        the current step, else the next (accepted within ±1 step), else the clock is
        moved on a step, as a person waits for the next code."""
        while True:
            current = otp.totp_step(self.now(), ADMIN_TOTP_PERIOD)
            step = max(current - 1, self._last_steps.get(name, -1) + 1)
            if step <= current + 1:
                break
            self.clock.advance(ADMIN_TOTP_PERIOD)
        self._last_steps[name] = step
        return otp.hotp(self.totp_seeds[name], step)

    def client(self, address: str | None = None) -> WebClient:
        return WebClient(self.web.resource(), address=address)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), UTC)

    def add_admin(self, name: str = "root", password: str = "correct horse battery") -> None:
        self.accounts.add_admin(name, Secret(password), actor="cli", now=self.now())

    def signed_in(self, name: str = "root", password: str = "correct horse battery",
                  area: str = "admin", *, client: WebClient | None = None) -> WebClient:
        """A client (new, or ``client``) signed in as ``name`` (admin, or self-service
        user)."""
        client = client or self.client()
        prefix = "/self-service" if area != "admin" else ""
        client.get(f"{prefix}/sign-in")
        page = client.post(f"{prefix}/sign-in", {"name": name, "password": password})
        assert page.code == 303, page.text
        page = self.second_step(client, name, page)
        client.get(page.location)
        return client

    def second_step(self, client: WebClient, name: str, page: Page) -> Page:
        """After an admin's right password: enrol her TOTP (first sign-in) or type her
        code; returns the redirect to the console (other pages pass through)."""
        if page.location == "/sign-in/enrol":
            enrol = client.get("/sign-in/enrol")
            match = _TOTP_URI.search(enrol.text)
            assert match is not None, enrol.text
            self.totp_seeds[name] = secret_of_uri(match.group(1))
            self._last_steps.pop(name, None)
            page = client.post("/sign-in/enrol", {"code": self.totp_code(name)})
            assert page.code == 303, page.text
        elif page.location == "/sign-in/code":
            client.get("/sign-in/code")
            page = client.post("/sign-in/code", {"code": self.totp_code(name)})
            assert page.code == 303, page.text
        return page


def make_console(store, *, random: RandomSource = secrets.token_bytes,
                 run_db: Callable[..., defer.Deferred] = synchronous_run_db,
                 master_key: bytes = b"\x07" * 32, node: str = "test-node",
                 is_tls: bool = False, require_totp: bool = True) -> Console:
    """The consoles on ``store`` (already migrated) at a fixed time."""
    clock = task.Clock()
    clock.advance(START)
    keys = Keys.from_master(master_key)
    accounts = Accounts(store, keys, random, node)
    web = AdminWeb(store=store, keys=keys, accounts=accounts, run_db=run_db, clock=clock,
                   random=random, node=node, is_tls=is_tls, require_totp=require_totp)
    return Console(web=web, store=store, accounts=accounts, clock=clock)

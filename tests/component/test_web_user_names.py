"""Every valid user name opens its own page in the admin console, and every action on that
page reaches that user (issue 20, 10): names that end in a route's own word (``a/codes``),
hold ``/``, ``%``, ``?``, ``#``, ``+``, dots only, or non-ASCII letters.

The real Klein app through ``treq.testing.StubTreq`` (``admin_web.testing``); each name
has a decoy user, the name a wrong decoding would reach (``a`` for ``a/codes``, ``A`` for
``%41``), so a request that lands on the wrong user is seen.
"""

from __future__ import annotations

import html
import re

import pytest

from admin_web.app import user_url
from admin_web.testing import make_console
from radiusd.accounts import validate_user_name
from radiusd.errors import UsageError

ADMIN_PASSWORD = "correct horse battery"

# name -> the decoy a wrong decoding or a route swallowing its end would reach.
NAMES = {
    "a/codes": "a",
    "b/print": "b",
    "c/new-token": "c",
    "d/e": "d",
    "%41": "A",
    "%2F": "/",
    "Zoë/ünïcødé": "Zoë",
    "..": "dots",
    ".": "dot",
    "x+y": "x y+",
    "q?x=1#f": "q",
    "/lead": "lead",
    "trail/": "trail",
    "a//b": "a/b",
    "u/a/codes": "u",
}


@pytest.fixture()
def console(sqlite_store):
    console = make_console(sqlite_store)
    console.add_admin("root", ADMIN_PASSWORD)
    return console


@pytest.fixture()
def admin(console):
    return console.signed_in("root", ADMIN_PASSWORD)


def _add(console, *names: str) -> None:
    for name in names:
        try:
            console.accounts.add_user(name, pin=None, password=None, actor="cli",
                                      now=console.now())
        except UsageError:  # a decoy the name rule refuses (it has a space): nothing to reach
            pass


def test_the_names_under_test_are_valid_names():
    """Issue 20 (10): the CLI creates every one of them (and refuses a space)."""
    for name in NAMES:
        validate_user_name(name)
    with pytest.raises(UsageError):
        validate_user_name("x y")


@pytest.mark.parametrize("name", list(NAMES))
def test_each_name_opens_its_own_page(console, admin, name):
    """Issue 20 (10): the user page of ``name`` shows ``name``, not a route of another."""
    _add(console, name, NAMES[name])
    # A browser removes dot segments (also spelled %2E) before sending: none is left.
    segments = user_url(name).split("/")
    assert not {s.lower().replace("%2e", ".") for s in segments} & {".", ".."}, segments
    page = admin.get(user_url(name))
    assert page.code == 200, (name, page.code, page.location)
    assert f"<h1>{html.escape(name)}</h1>" in page.text
    # Every form and link of the page that acts on a user acts on this one.
    targets = re.findall(r'(?:action|href)="(/users/[^"]*)"', page.text)
    assert targets and all(html.unescape(t).startswith(user_url(name) + "/")
                           for t in targets if html.unescape(t) != user_url(name)), targets
    # The users list links to the same page.
    listed = admin.get("/users")
    assert f'href="{html.escape(user_url(name))}"' in listed.text


def _form_actions(page) -> set[str]:
    return {html.unescape(a) for a in re.findall(r'action="(/users/[^"]+)"', page.text)}


@pytest.mark.parametrize("name", list(NAMES))
def test_each_action_of_the_page_reaches_its_own_user(console, admin, name):
    """Issue 20 (10): PIN, unlock, tokens, emergency issue, codes, print, export, revoke,
    token delete and user delete, each through the URL its page links to, change ``name``
    and never its decoy."""
    decoy = NAMES[name]
    _add(console, name, decoy)
    store = console.store
    actions = _form_actions(admin.get(user_url(name)))
    for action in ("pin", "password", "disable", "emergency", "tokens", "delete"):
        assert user_url(name, action) in actions, (action, actions)

    assert admin.post(user_url(name, "pin"), {"pin": "4821"}).location == user_url(name)
    assert store.get_user(name).has_pin
    assert admin.post(user_url(name, "unlock")).location == user_url(name)
    assert [e.user_name for e in (r.event for r in store.list_audit(action="user.unlock"))] \
        == [name]
    page = admin.get(user_url(name))
    assert user_url(name, "clear-pin") in _form_actions(page)
    assert admin.post(user_url(name, "clear-pin"),
                      {"confirm": "yes"}).location == user_url(name)
    assert not store.get_user(name).has_pin

    # A software token: its QR page, then delete it.
    page = admin.post(user_url(name, "tokens"), {"mode": "generate", "type": "totp",
                                                 "digits": "6", "period": "30"})
    assert page.location == user_url(name, "new-token")
    shown = admin.get(page.location)
    assert shown.code == 200 and "otpauth://totp/" in shown.text
    [token] = store.list_tokens(name)
    page = admin.get(user_url(name))
    assert user_url(name, "delete-token") in _form_actions(page)
    assert admin.post(user_url(name, "delete-token"),
                      {"serial": token.serial, "confirm": "yes"}).location == user_url(name)
    assert store.list_tokens(name) == []

    # Emergency codes: issue, show, print, export, revoke.
    page = admin.post(user_url(name, "emergency"), {"count": "3", "lifetime": "8h"})
    assert page.location == user_url(name, "codes")
    codes = admin.get(page.location)
    assert codes.code == 200 and f"Emergency codes for {html.escape(name)}" in codes.text
    assert {user_url(name, "export"), user_url(name, "done")} <= _form_actions(codes)
    assert admin.get(user_url(name, "print")).code == 200
    download = admin.post(user_url(name, "export"))
    assert download.code == 200 and download.header("content-type").startswith("text/plain")
    assert name in download.text
    assert store.get_emergency_set(name) is not None
    page = admin.get(user_url(name))
    assert user_url(name, "revoke") in _form_actions(page)
    assert admin.post(user_url(name, "revoke"),
                      {"confirm": "yes"}).location == user_url(name)
    assert store.get_emergency_set(name).revoked_at is not None

    assert admin.post(user_url(name, "disable")).location == user_url(name)
    assert store.get_user(name).is_disabled
    assert admin.post(user_url(name, "enable")).location == user_url(name)
    assert not store.get_user(name).is_disabled

    # The decoy was never touched.
    try:
        other = store.get_user(decoy)
    except Exception:
        other = None
    if other is not None:
        assert not other.has_pin and not other.is_disabled
        assert store.list_tokens(decoy) == [] and store.get_emergency_set(decoy) is None

    assert admin.post(user_url(name, "delete"), {"confirm": "yes"}).location == "/users"
    assert name not in {u.name for u in store.list_users(None, 100, 0)}
    if other is not None:
        assert store.get_user(decoy).name == decoy


def test_old_plain_urls_keep_working(console, admin):
    """Issue 20 (10): ``/users/NAME/ACTION`` as written before still reaches plain names."""
    _add(console, "carol", "zoë.doe")
    assert admin.get("/users/carol").code == 200
    assert admin.post("/users/carol/pin", {"pin": "9876"}).location == "/users/carol"
    assert console.store.get_user("carol").has_pin
    page = admin.get("/users/zo%C3%AB.doe")
    assert page.code == 200 and "<h1>zoë.doe</h1>" in page.text


def test_a_name_segment_that_is_not_utf8_is_not_found(console, admin):
    """Issue 20 (10): a hand-made URL whose name is not UTF-8 is a 404 page, not a 500."""
    page = admin.get("/users/%25FF")
    assert page.code == 404 and "Not found" in page.text

"""Accounts of the web consoles in memory (``admin_web.testing``): sessions that end with
their account (issue 20, 4), the sign-in forms and their throttle (issue 20, 11), admins'
management and their own TOTP (issue 20, 13)."""

from __future__ import annotations

import pytest

from admin_web.testing import make_console
from radiusd.model import Secret

ADMIN_PASSWORD = "correct horse battery"
PASSWORD = "alice-self-service"


@pytest.fixture()
def store(sqlite_store):
    return sqlite_store


@pytest.fixture()
def console(store):
    console = make_console(store)
    console.add_admin("root", ADMIN_PASSWORD)
    console.accounts.add_user("alice", pin="4821", password=Secret(PASSWORD), actor="cli",
                              now=console.now())
    return console


@pytest.fixture()
def alice(console):
    return console.signed_in("alice", PASSWORD, area="self-service")


@pytest.fixture()
def admin(console):
    return console.signed_in("root", ADMIN_PASSWORD)


def _is_signed_in(client, area="admin") -> bool:
    page = client.get("/self-service/" if area != "admin" else "/")
    return page.code == 200


# --- issue 20 (4): sessions end with their account ------------------------------------------


def test_disabling_a_user_ends_her_open_self_service_session(console, alice):
    """Issue 20 (4): a disabled user's open session stops working at once."""
    assert _is_signed_in(alice, "self-service")
    console.accounts.set_disabled("alice", True, actor="cli", now=console.now())
    page = alice.get("/self-service/")
    assert page.code == 303 and page.location == "/self-service/sign-in"
    # Enabled again, the old session is still gone: she signs in anew.
    console.accounts.set_disabled("alice", False, actor="cli", now=console.now())
    assert not _is_signed_in(alice, "self-service")
    assert alice.post("/self-service/emergency").code in (303, 403)
    assert console.store.get_emergency_set("alice") is None


def test_resetting_a_users_password_ends_her_open_sessions(console, alice):
    """Issue 20 (4): a new self-service password ends the sessions opened with the old."""
    other = console.signed_in("alice", PASSWORD, area="self-service")
    console.accounts.set_password("alice", Secret("a-new-password-9"), actor="cli",
                                  now=console.now())
    assert not _is_signed_in(alice, "self-service")
    assert not _is_signed_in(other, "self-service")
    fresh = console.signed_in("alice", "a-new-password-9", area="self-service")
    assert _is_signed_in(fresh, "self-service")


def test_a_deleted_and_recreated_user_does_not_inherit_the_old_session(console, alice):
    """Issue 20 (4): the session belongs to the account, not to the name."""
    console.accounts.delete_user("alice", actor="cli", now=console.now())
    console.accounts.add_user("alice", pin=None, password=Secret(PASSWORD), actor="cli",
                              now=console.now())
    assert not _is_signed_in(alice, "self-service")


def test_changing_an_admins_password_ends_her_open_sessions(console, admin):
    """Issue 20 (4): an admin's sessions end when her password is changed."""
    assert _is_signed_in(admin)
    console.accounts.set_admin_password("root", Secret("another long password"),
                                        actor="cli", now=console.now())
    page = admin.get("/")
    assert page.code == 303 and page.location == "/sign-in"


def test_a_deleted_and_recreated_admin_does_not_inherit_the_old_session(console, admin):
    """Issue 20 (4): an admin deleted and created again under her name is another account."""
    console.add_admin("spare", "spare admin password")
    console.accounts.delete_admin("root", actor="cli", now=console.now())
    assert not _is_signed_in(admin)
    console.add_admin("root", ADMIN_PASSWORD)
    assert not _is_signed_in(admin)


def test_the_account_check_runs_in_the_database_pool(store):
    """Issue 20 (4): every signed-in request re-reads its account, through ``run_db``."""
    calls = []

    def run_db(fn, *args):
        calls.append(fn)
        from admin_web.testing import synchronous_run_db
        return synchronous_run_db(fn, *args)

    console = make_console(store, run_db=run_db)
    console.add_admin("root", ADMIN_PASSWORD)
    admin = console.signed_in("root", ADMIN_PASSWORD)
    calls.clear()
    admin.get("/users/nobody/print")  # a page that itself needs no database
    assert len(calls) == 1


# --- issue 20 (11): the sign-in forms and their throttle ------------------------------------


def test_a_csrf_token_in_the_query_string_is_refused(console, admin):
    """Issue 20 (11): the CSRF token counts only in the POST body."""
    token = admin.csrf
    page = admin.post(f"/users/alice/unlock?csrf={token}", {}, csrf=False)
    assert page.code == 403
    page = admin.post(f"/sign-out?csrf={token}", {}, csrf=False)
    assert page.code == 403 and _is_signed_in(admin)
    anonymous = console.client()
    form = anonymous.get("/sign-in")
    page = anonymous.post(f"/sign-in?csrf={form.csrf}",
                          {"name": "root", "password": ADMIN_PASSWORD}, csrf=False)
    assert page.code == 403


def test_ten_thousand_anonymous_sign_in_pages_do_not_break_an_open_form(console):
    """Issue 20 (11): the sign-in form's token needs no server-side session, so a flood of
    sign-in page views evicts nothing."""
    early = console.client()
    early.get("/sign-in")
    flood = console.client()
    for _ in range(10_000):
        flood.cookies.clear()
        flood.get("/sign-in")
    assert len(console.web.sessions) == 0
    page = early.post("/sign-in", {"name": "root", "password": ADMIN_PASSWORD})
    assert page.code == 303, page.text


def test_a_sign_in_token_works_only_with_its_own_cookie_and_console(console):
    """Issue 20 (11): the stateless token is a double submit: field and cookie agree."""
    one, other = console.client(), console.client()
    one.get("/sign-in")
    other.get("/sign-in")
    page = other.post("/sign-in", {"name": "root", "password": ADMIN_PASSWORD},
                      csrf=one.csrf)
    assert page.code == 403
    user = console.client()
    user.get("/self-service/sign-in")
    user.cookies["radiusd_admin_sign_in"] = user.cookies["radiusd_self_service_sign_in"]
    page = user.post("/sign-in", {"name": "root", "password": ADMIN_PASSWORD})
    assert page.code == 403
    console.clock.advance(3600)  # an hour-old form has expired
    page = one.post("/sign-in", {"name": "root", "password": ADMIN_PASSWORD})
    assert page.code == 403


def _fail(client, path, name, times):
    client.get(path)
    for _ in range(times):
        page = client.post(path, {"name": name, "password": "a wrong password"})
        assert page.code == 400


@pytest.mark.parametrize(("path", "name", "password"), [
    ("/sign-in", "root", ADMIN_PASSWORD),
    ("/self-service/sign-in", "alice", PASSWORD),
], ids=["admin", "self-service"])
def test_wrong_passwords_from_one_address_do_not_lock_the_owner_out_elsewhere(
        console, path, name, password):
    """Issue 20 (11): five failures block the pair account + address only."""
    guesser = console.client("192.0.2.66")
    _fail(guesser, path, name, 5)
    page = guesser.post(path, {"name": name, "password": password})
    assert "Too many failed sign-ins" in page.text
    owner = console.client("198.51.100.7")
    owner.get(path)
    page = owner.post(path, {"name": name, "password": password})
    assert page.code == 303, page.text


@pytest.mark.parametrize(("path", "name", "password"), [
    ("/sign-in", "root", ADMIN_PASSWORD),
    ("/self-service/sign-in", "alice", PASSWORD),
], ids=["admin", "self-service"])
def test_fifty_failures_from_many_addresses_block_the_account(console, path, name,
                                                              password):
    """Issue 20 (11): the account-wide limit (50 in five minutes) stops spread guessing."""
    for number in range(12):
        _fail(console.client(f"203.0.113.{number}"), path, name, 4)
    owner = console.client("198.51.100.7")
    owner.get(path)
    assert owner.post(path, {"name": name, "password": password}).code == 303
    for number in range(12, 13):
        _fail(console.client(f"203.0.113.{number}"), path, name, 2)  # 50 in all
    late = console.client("198.51.100.8")
    late.get(path)
    page = late.post(path, {"name": name, "password": password})
    assert "Too many failed sign-ins" in page.text

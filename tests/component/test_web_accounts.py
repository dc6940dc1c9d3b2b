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

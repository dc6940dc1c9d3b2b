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


# --- issue 20 (13): admins sign in with password and their own TOTP -------------------------

import re  # noqa: E402

from radiusd import otp  # noqa: E402
from radiusd.accounts import ADMIN_TOTP_PERIOD  # noqa: E402
from admin_web.testing import secret_of_uri  # noqa: E402


def _audit(console, **filters):
    return [r.event for r in console.store.list_audit(**filters)]


def _code(console, seed: bytes, steps_ahead: int = 0) -> str:
    return otp.hotp(seed, otp.totp_step(console.now(), ADMIN_TOTP_PERIOD) + steps_ahead)


def _password_step(console, client, password=ADMIN_PASSWORD, name="root"):
    """The password; on to the second step's page (its form's CSRF token) if it was right."""
    client.get("/sign-in")
    page = client.post("/sign-in", {"name": name, "password": password})
    if page.location == "/sign-in/code":
        client.get(page.location)
    return page


def test_first_sign_in_enrols_the_admins_totp_then_password_and_code_sign_in(console):
    """Issue 20 (13): at her first sign-in the admin scans a QR code (or types the URI or
    the base32 secret) and confirms it with a first code; then every sign-in asks for her
    password and then her current code, computed here by radiusd.otp from that secret."""
    client = console.client()
    page = _password_step(console, client)
    assert (page.code, page.location) == (303, "/sign-in/enrol")
    assert client.get("/").location == "/sign-in"  # a password alone opens nothing
    enrol = client.get("/sign-in/enrol")
    assert enrol.code == 200
    assert "<svg" in enrol.text and "viewBox" in enrol.text  # the QR code scales whole
    uri = re.search(r'id="uri" class="uri">(otpauth://[^<]+)<', enrol.text).group(1)
    assert uri.startswith("otpauth://totp/radiusd%20admin:root?secret=")
    seed = secret_of_uri(uri)
    shown = re.search(r'id="secret" class="uri">([A-Z2-7 ]+)<', enrol.text).group(1)
    assert otp.parse_base32_seed(shown) == seed
    # A wrong first code: the form again, the error next to the field, nothing stored.
    wrong = client.post("/sign-in/enrol", {"code": "000000" if _code(console, seed) != "000000"
                                           else "111111"})
    assert wrong.code == 400 and 'id="f-code-error"' in wrong.text
    assert console.store.find_web_account("admin", name="root").totp_sealed_seed is None
    page = client.post("/sign-in/enrol", {"code": _code(console, seed)})
    assert (page.code, page.location) == (303, "/")
    assert client.get("/").code == 200
    stored = console.store.find_web_account("admin", name="root")
    assert stored.has_totp and seed not in stored.totp_sealed_seed  # sealed, not plain
    enrolled = _audit(console, action="admin.enrol_totp")
    assert [(e.actor, e.detail) for e in enrolled] == [("admin:root", {"admin": "root"})]
    assert client.post("/sign-out").location == "/sign-in"

    console.clock.advance(ADMIN_TOTP_PERIOD)
    again = console.client()
    page = _password_step(console, again)
    assert (page.code, page.location) == (303, "/sign-in/code")
    assert again.get("/").location == "/sign-in"
    form = again.get("/sign-in/code")
    assert form.code == 200 and 'name="code"' in form.text
    page = again.post("/sign-in/code", {"code": _code(console, seed)})
    assert (page.code, page.location) == (303, "/")
    assert again.get("/").code == 200
    rows = [(e.result, e.reason, e.detail.get("step")) for e in
            reversed(_audit(console, action="admin.sign_in"))]
    assert rows == [("reject", "bad_code", "enrol_totp"), ("ok", None, "enrol_totp"),
                    ("ok", None, "totp")]


def test_an_admins_code_is_accepted_once(console):
    """Issue 20 (13): a code that signed in once never signs in again (no replay)."""
    console.signed_in("root", ADMIN_PASSWORD)  # enrols
    seed = console.totp_seeds["root"]
    console.clock.advance(ADMIN_TOTP_PERIOD)
    code = _code(console, seed)
    first, second = console.client(), console.client()
    _password_step(console, first)
    _password_step(console, second)
    assert first.post("/sign-in/code", {"code": code}).location == "/"
    page = second.post("/sign-in/code", {"code": code})
    assert page.code == 400 and "already used" in page.text
    assert second.get("/").location == "/sign-in"
    assert _audit(console, action="admin.sign_in", limit=1)[0].reason == "replayed_code"


def test_wrong_codes_count_toward_the_sign_in_throttle(console):
    """Issue 20 (13, 11): guessing codes is throttled like guessing passwords."""
    console.signed_in("root", ADMIN_PASSWORD)
    seed = console.totp_seeds["root"]
    client = console.client("192.0.2.9")
    _password_step(console, client)
    bad = "999999" if _code(console, seed, 1) != "999999" else "888888"
    for _ in range(5):
        assert client.post("/sign-in/code", {"code": bad}).code == 400
    page = client.post("/sign-in/code", {"code": _code(console, seed, 1)})
    assert "Too many failed sign-ins" in page.text
    assert client.get("/").location == "/sign-in"


def test_the_second_step_must_follow_within_ten_minutes(console):
    console.signed_in("root", ADMIN_PASSWORD)
    client = console.client()
    _password_step(console, client)
    console.clock.advance(10 * 60)
    page = client.post("/sign-in/code", {"code": _code(console, console.totp_seeds["root"])})
    assert page.location == "/sign-in"


def test_resetting_an_admins_totp_ends_her_sessions_and_she_enrols_again(console):
    """Issue 20 (13, 4): ``radiusd admin reset-totp`` (Accounts.reset_admin_totp)."""
    admin = console.signed_in("root", ADMIN_PASSWORD)
    console.accounts.reset_admin_totp("root", actor="cli", now=console.now())
    assert admin.get("/").location == "/sign-in"
    page = _password_step(console, console.client())
    assert page.location == "/sign-in/enrol"
    assert [e.detail for e in _audit(console, action="admin.reset_totp")] == [
        {"admin": "root"}]


def test_require_totp_false_lets_admins_sign_in_with_a_password(store):
    """Issue 20 (13): the lab switch ``[admin_web] require_totp = false``."""
    console = make_console(store, require_totp=False)
    console.add_admin("root", ADMIN_PASSWORD)
    client = console.client()
    page = _password_step(console, client)
    assert (page.code, page.location) == (303, "/")


def test_change_my_password(console):
    """Issue 20 (13): "change my password" in the console: errors next to their fields;
    afterwards this session stays, her other sessions end, the new password signs in."""
    admin = console.signed_in("root", ADMIN_PASSWORD)
    other = console.signed_in("root", ADMIN_PASSWORD)
    page = admin.get("/account")
    assert page.code == 200 and "Change my password" in page.text and "root" in page.text

    def change(current, new, repeat=None):
        return admin.post("/account/password", {
            "current_password": current, "new_password": new,
            "repeat_password": new if repeat is None else repeat})

    page = change("not my password", "a fine new password")
    assert page.code == 400 and 'id="f-current_password-error"' in page.text
    page = change(ADMIN_PASSWORD, "password1234")
    assert page.code == 400 and 'id="f-new_password-error"' in page.text
    assert "most common" in page.text
    page = change(ADMIN_PASSWORD, "zzzzzzzzzzzzzz")
    assert page.code == 400 and "one character repeated" in page.text
    page = change(ADMIN_PASSWORD, "a fine new password", "a fine new passwor")
    assert page.code == 400 and 'id="f-repeat_password-error"' in page.text
    assert all("a fine new password" not in repr(e) for e in _audit(console))
    page = change(ADMIN_PASSWORD, "a fine new password")
    assert (page.code, page.location) == (303, "/account")
    assert "Password changed" in admin.get("/account").text
    assert admin.get("/").code == 200
    assert other.get("/").location == "/sign-in"
    assert [(e.actor, e.detail) for e in _audit(console, action="admin.set_password")] == [
        ("admin:root", {"admin": "root"})]
    client = console.client()
    assert _password_step(console, client).code == 400  # the old password no longer works
    console.signed_in("root", "a fine new password")


def test_the_account_page_lists_the_admins(console, admin):
    """Issue 20 (13): the console shows who can administer it."""
    console.add_admin("backup", "backup admin password")
    page = admin.get("/account")
    assert "backup" in page.text and "not set up yet" in page.text and "TOTP" in page.text


# --- issue 20 (13): the same password rules for self-service passwords --------------------


@pytest.mark.parametrize(("password", "needle"), [
    ("password1", "most common"), ("Qwerty123!", "most common"),
    ("xxxxxxxxxx", "one character repeated"), ("short", "at least 8 characters"),
])
def test_common_or_repeated_self_service_passwords_are_refused(console, admin, password,
                                                               needle):
    """Issue 20 (13): self-service passwords: 8 characters at least, and the same deny-list
    and one-character rule as admins' passwords; the error is next to its field."""
    page = admin.post("/users", {"name": "bob", "password": password})
    assert page.code == 400 and 'id="f-password-error"' in page.text and needle in page.text
    page = admin.post("/users/alice/password", {"password": password})
    assert page.code == 400 and needle in page.text
    assert console.store.find_web_account("user", name="bob") is None

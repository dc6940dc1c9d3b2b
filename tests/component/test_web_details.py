"""Details of both web consoles (issue 20, 11 and 12): redirects that never name the Host,
form text that must be UTF-8, page numbers past the end, the ``Server`` and ``Allow``
headers, a confirmation step before every one-click destructive action, and audit times to
the second.

The real Klein app on a real SQLite Store, through ``treq.testing.StubTreq``
(``admin_web.testing``), with a synchronous ``run_db`` and a ``task.Clock``.
"""

from __future__ import annotations

import pytest

from admin_web import forms
from admin_web.testing import make_console
from radiusd.model import Secret

ADMIN_PASSWORD = "correct horse battery"
ALICE_PASSWORD = "alice-self-service"


@pytest.fixture()
def console(sqlite_store):
    console = make_console(sqlite_store)
    console.add_admin("root", ADMIN_PASSWORD)
    console.accounts.add_user("alice", pin="4821", password=Secret(ALICE_PASSWORD),
                              actor="cli", now=console.now())
    return console


@pytest.fixture()
def admin(console):
    return console.signed_in("root", ADMIN_PASSWORD)


@pytest.fixture()
def alice(console):
    return console.signed_in("alice", ALICE_PASSWORD, area="self-service")


def _raw(client, method: str, url: str):
    """``method url`` exactly as given (any Host), with the client's cookies: (code,
    headers by lower-case name)."""
    headers = {}
    if client.cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    response = client._wait(client.stub.request(method, url, headers=headers,
                                                allow_redirects=False))
    client._wait(response.content())
    return response.code, {k.decode().lower(): [v.decode("latin-1") for v in vs]
                           for k, vs in response.headers.getAllRawHeaders()}


def _rows(console, **filters):
    return [r.event for r in console.store.list_audit(**filters)]


# --- redirects ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/self-service", "///self-service", "/self-service//",
                                  "/users//alice"])
def test_redirects_are_relative_and_never_name_the_host_header(admin, path):
    """Issue 20 (11): the Host header is not reflected in a redirect."""
    code, headers = _raw(admin, "GET", "http://evil.example:8443" + path)
    assert code in (301, 302, 303, 307, 308)
    [location] = headers["location"]
    assert location.startswith("/") and not location.startswith("//"), location
    assert "evil.example" not in location
    assert location in ("/self-service/", "/users/alice")


def test_every_redirect_of_a_flow_is_a_path_on_this_site(console, admin, alice):
    """Issue 20 (11): the app's own redirects (after a POST, to sign in) are paths too."""
    locations = [
        _raw(console.client(), "GET", "http://evil.example/users")[1]["location"][0],
        admin.post("/users", {"name": "bob"}).location,
        admin.post("/users/bob/disable").location,
        alice.post("/self-service/done").location,
        _raw(console.client(), "GET", "http://evil.example/self-service/")[1]["location"][0],
    ]
    assert locations == ["/sign-in", "/users/bob", "/users/bob", "/self-service/",
                         "/self-service/sign-in"]


# --- form text must be UTF-8 -------------------------------------------------------------


def test_a_user_name_that_is_not_utf8_is_refused_next_to_its_field(console, admin):
    """Issue 20 (11): invalid UTF-8 is refused, never stored as U+FFFD."""
    page = admin.post("/users", {"name": b"\xffbob", "pin": "4821"})
    assert page.code == 400
    assert 'id="f-name-error">Not valid UTF-8 text' in page.text
    assert 'value="4821"' in page.text  # the valid fields are kept
    assert [u.name for u in console.store.list_users()] == ["alice"]
    assert "\ufffd" not in page.text


def test_text_that_is_not_utf8_changes_nothing_in_any_form(console, admin):
    """Issue 20 (11): the user page, the settings and the audit filter refuse it too."""
    page = admin.post("/users/alice/pin", {"pin": b"12\xfe4"})
    assert page.code == 400 and 'id="f-pin-error">Not valid UTF-8 text' in page.text
    assert console.store.get_user("alice").has_pin
    before = console.store.load_settings()
    page = admin.post("/settings", {"lifetime": b"\xc3(", "codes_per_set": "10"})
    assert page.code == 400 and 'id="f-lifetime-error">Not valid UTF-8 text' in page.text
    assert console.store.load_settings() == before
    page = admin.get("/audit?user=%FF")
    assert page.code == 400 and 'id="f-user-error">Not valid UTF-8 text' in page.text
    page = admin.get("/users?q=%FF")
    assert page.code == 400 and "not valid UTF-8" in page.text


def test_a_field_name_that_is_not_utf8_is_refused(console, admin):
    """Issue 20 (11)."""
    page = admin.post("/users", {b"na\xffme": "bob"})
    assert page.code == 400 and "not valid UTF-8" in page.text
    assert [u.name for u in console.store.list_users()] == ["alice"]


@pytest.mark.parametrize("raw", [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"ab\xe2\x82"])
def test_submitted_text_names_every_value_that_is_not_utf8(raw):
    """Issue 20 (11): stray bytes, overlong forms, surrogates, a cut sequence."""
    text = forms.submitted_text({b"name": ["z\u00fcrich".encode()], b"pin": [raw],
                                 b"empty": []})
    assert text.values == {"name": "z\u00fcrich"} and text.bad_values == ("pin",)
    assert not text.is_text and not text.has_bad_name
    assert forms.submitted_text({b"\xff": [b"x"]}).has_bad_name


def test_self_service_sign_in_with_a_name_that_is_not_utf8_is_refused(console):
    """Issue 20 (11)."""
    client = console.client()
    client.get("/self-service/sign-in")
    page = client.post("/self-service/sign-in", {"name": b"al\xffice",
                                                 "password": ALICE_PASSWORD})
    assert page.code == 400 and 'id="f-name-error">Not valid UTF-8 text' in page.text


# --- page numbers ------------------------------------------------------------------------


@pytest.fixture()
def many_users(console):
    for number in range(30):
        console.accounts.add_user(f"bob{number:02d}", pin=None, password=None, actor="cli",
                                  now=console.now())


def test_a_page_past_the_end_shows_the_last_page(admin, many_users):
    """Issue 20 (11): "?page=999" is not "Page 999 of 2"."""
    page = admin.get("/users?page=999")
    assert page.code == 200
    assert "Page 2 of 2" in page.text and "Page 999" not in page.text
    assert "bob29" in page.text and "bob23" not in page.text  # 31 users: the last 6
    assert 'rel="next"' not in page.text and "page=1" in page.text


@pytest.mark.parametrize("number", ["abc", "-3", "0", "1.5", ""])
def test_a_page_number_that_is_not_a_positive_whole_number_shows_the_first_page(
        admin, many_users, number):
    """Issue 20 (11)."""
    page = admin.get(f"/users?page={number}")
    assert page.code == 200 and "Page 1 of 2" in page.text and "alice" in page.text


def test_an_audit_page_past_the_end_is_not_found(admin, many_users):
    """Issue 20 (11): the audit log has no "Page 999" of nothing."""
    assert admin.get("/audit?page=2").code == 200
    page = admin.get("/audit?page=999")
    assert page.code == 404 and "Page 999 is past the end of the audit log" in page.text
    assert admin.get("/audit?page=-1").code == 200


# --- headers -----------------------------------------------------------------------------


def test_the_server_header_names_no_version(console, admin):
    """Issue 20 (11): no "TwistedWeb/26.x" in ``Server``."""
    anonymous = console.client()
    for page in (anonymous.get("/sign-in"), anonymous.get("/static/style.css"),
                 anonymous.get("/no/such/page"), admin.get("/users"),
                 admin.post("/users", csrf="bad"), alice_page(console)):
        assert page.header("server") == "radiusd", page.code


def alice_page(console):
    return console.signed_in("alice", ALICE_PASSWORD, area="self-service").get(
        "/self-service/")


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PUT", "/users", {"GET", "HEAD", "POST"}),
    ("DELETE", "/users/alice", {"GET", "HEAD"}),
    ("GET", "/sign-out", {"POST"}),
    ("GET", "/self-service/found", {"POST"}),
    ("POST", "/self-service/", {"GET", "HEAD"}),
])
def test_method_not_allowed_says_which_methods_are(admin, method, path, allowed):
    """Issue 20 (11): 405 carries ``Allow`` (RFC 9110 §15.5.6)."""
    code, headers = _raw(admin, method, "http://localhost" + path)
    assert code == 405
    [allow] = headers["allow"]
    assert set(allow.split(", ")) == allowed


# --- confirmation before destructive actions ---------------------------------------------


def test_revoke_needs_the_box_ticked(console, admin):
    """Issue 20 (11): without the confirmation nothing happens and the page says why."""
    admin.post("/users/alice/emergency", {"count": "3"})
    page = admin.get("/users/alice")
    assert 'name="confirm" value="yes"' in page.text.split('/revoke"')[1][:400]
    assert "Yes, end emergency access for alice" in page.text
    page = admin.post("/users/alice/revoke")
    assert page.code == 400
    assert 'id="f-confirm_revoke-error">Tick the box to confirm' in page.text
    assert console.store.get_emergency_set("alice").revoked_at is None
    assert _rows(console, action="emergency.revoke") == []
    page = admin.post("/users/alice/revoke", {"confirm": "yes"})
    assert page.code == 303
    assert console.store.get_emergency_set("alice").revoked_reason == "revoked by an admin"


def test_clear_pin_needs_the_box_ticked(console, admin):
    """Issue 20 (11)."""
    assert "Yes, clear the PIN of alice" in admin.get("/users/alice").text
    page = admin.post("/users/alice/clear-pin")
    assert page.code == 400
    assert 'id="f-confirm_clear_pin-error">Tick the box to confirm' in page.text
    assert console.store.get_user("alice").has_pin
    assert admin.post("/users/alice/clear-pin", {"confirm": "yes"}).code == 303
    assert not console.store.get_user("alice").has_pin


def test_delete_token_needs_the_box_of_that_token_ticked(console, admin):
    """Issue 20 (11): the error lands next to the token that was not deleted."""
    for serial in ("HW-1", "HW-2"):
        admin.post("/users/alice/tokens", {"mode": "import", "type": "hotp", "serial": serial,
                                           "seed": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"})
    page = admin.get("/users/alice")
    assert "Yes, delete token HW-1" in page.text and "Yes, delete token HW-2" in page.text
    page = admin.post("/users/alice/delete-token", {"serial": "HW-2"})
    assert page.code == 400
    row = page.text.split('value="HW-2"')[1].split("</tr>")[0]
    assert 'class="error"' in row and "Tick the box to confirm" in row
    assert "Tick the box" not in page.text.split('value="HW-1"')[1].split("</tr>")[0]
    assert [t.serial for t in console.store.list_tokens("alice")] == ["HW-1", "HW-2"]
    page = admin.post("/users/alice/delete-token", {"serial": "HW-2", "confirm": "yes"})
    assert page.code == 303
    assert [t.serial for t in console.store.list_tokens("alice")] == ["HW-1"]


def test_delete_user_needs_the_box_ticked(console, admin):
    """Issue 20 (11): the user (with or without tokens) is deleted only when confirmed."""
    page = admin.post("/users/alice/delete")
    assert page.code == 400 and 'id="f-confirm-error">Tick the box' in page.text
    assert console.store.count_users() == 1
    assert admin.post("/users/alice/delete", {"confirm": "yes"}).location == "/users"
    assert console.store.count_users() == 0


def test_i_found_my_token_needs_the_box_ticked(console, alice):
    """Issue 20 (11): the self-service "I found my token" asks first."""
    alice.post("/self-service/emergency")
    home = alice.get("/self-service/")
    assert "Yes, end emergency access: my remaining codes stop working" in home.text
    page = alice.post("/self-service/found")
    assert page.code == 400
    assert 'id="f-confirm_found-error">Tick the box to confirm' in page.text
    assert "Hello, alice" in page.text
    assert console.store.get_emergency_set("alice").revoked_at is None
    page = alice.post("/self-service/found", {"confirm": "yes"})
    assert page.location == "/self-service/"
    assert console.store.get_emergency_set("alice").revoked_reason == "token found"


# --- audit times -------------------------------------------------------------------------


def test_the_audit_page_shows_seconds_and_the_time_zone(console, admin):
    """Issue 20 (12): two rows in one minute are told apart."""
    console.clock.advance(7)
    console.accounts.add_user("bob", pin=None, password=None, actor="cli", now=console.now())
    console.clock.advance(30)
    console.accounts.add_user("carol", pin=None, password=None, actor="cli", now=console.now())
    page = admin.get("/audit?action=user.add")
    assert '<time datetime="2027-01-15T08:00:07Z">2027-01-15 08:00:07 UTC</time>' in page.text
    assert '<time datetime="2027-01-15T08:00:37Z">2027-01-15 08:00:37 UTC</time>' in page.text


def test_an_unconfirmed_action_on_a_user_who_is_not_there_is_not_found(admin):
    """Issue 20 (11): the re-rendered page of an unknown user is a 404, not a 500."""
    for action in ("clear-pin", "revoke", "delete-token"):
        page = admin.post(f"/users/nobody/{action}", {"serial": "X"})
        assert page.code == 404 and "no user" in page.text.lower(), (action, page.code)

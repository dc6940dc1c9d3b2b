"""The admin console in memory: the real Klein app on a real SQLite Store, through
``treq.testing.StubTreq`` (``admin_web.testing``), with a synchronous ``run_db`` and a
``task.Clock``."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
from twisted.internet import defer
from twisted.logger import LogLevel, capturedLogs

from admin_web import app as web_app
from admin_web.app import PUBLIC_ENDPOINTS, SECURITY_HEADERS, AdminWeb, csv_cell
from admin_web.app import user_url
from admin_web.testing import make_console
from radiusd.emergency import issuing
from radiusd.errors import StoreUnavailable
from radiusd.model import Secret

ADMIN_PASSWORD = "correct horse battery"


@pytest.fixture()
def store(sqlite_store):
    return sqlite_store


@pytest.fixture()
def console(store):
    console = make_console(store)
    console.add_admin("root", ADMIN_PASSWORD)
    return console


@pytest.fixture()
def admin(console):
    return console.signed_in("root", ADMIN_PASSWORD)


def _audit(console, **filters):
    return [r.event for r in console.store.list_audit(**filters)]


# --- access control ------------------------------------------------------------------------


def _routes():
    """Every (endpoint, method, url) of the app, from Klein's werkzeug url_map."""
    for rule in AdminWeb.app.url_map.iter_rules():
        url = rule.rule
        for argument in rule.arguments:
            url = re.sub(rf"<(?:[a-z]+:)?{argument}>", "alice", url)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield pytest.param(rule.endpoint, method, url, id=f"{method} {rule.rule}")


ROUTES = list(_routes())


def test_the_route_table_has_both_consoles():
    endpoints = {param.values[0] for param in ROUTES}
    assert {"dashboard", "users", "user_page", "issue_set", "settings_page", "audit_csv",
            "self_service_home", "self_service_issue"} <= endpoints
    assert PUBLIC_ENDPOINTS <= endpoints  # the allow-list names real routes only


@pytest.mark.parametrize(("endpoint", "method", "url"), ROUTES)
def test_every_route_sends_an_anonymous_visitor_to_sign_in(console, endpoint, method, url):
    client = console.client()
    page = client.request(method, url, {"csrf": "x"} if method == "POST" else None)
    if endpoint in PUBLIC_ENDPOINTS:
        # Public pages answer (a sign-in POST without a session's token is refused); an
        # admin's second sign-in step sends a visitor without a right password to sign in.
        assert page.code in (200, 403) or (page.code, page.location) == (303, "/sign-in"), \
            (url, page.code)
        return
    assert page.code == 303, (url, page.code)
    expected = "/self-service/sign-in" if url.startswith("/self-service") else "/sign-in"
    assert page.location == expected


def test_a_post_without_the_sessions_csrf_token_is_refused(console, admin):
    for token in (False, "", "0" * 64):
        page = admin.post("/users", {"name": "mallory"}, csrf=token)
        assert page.code == 403
        assert "Request refused" in page.text
    assert console.store.count_users() == 0
    assert admin.post("/users", {"name": "mallory"}).code == 303  # with the token: works


def test_sign_in_post_needs_the_sign_in_pages_token(console):
    client = console.client()
    page = client.post("/sign-in", {"name": "root", "password": ADMIN_PASSWORD}, csrf=False)
    assert page.code == 403


def test_cookies_are_httponly_samesite_strict(console):
    page = console.client().get("/sign-in")
    cookie = page.header("set-cookie")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here; TLS adds it (is_tls)


def test_sign_in_gets_a_new_session_id(console):
    """A session id planted before sign-in is never the signed-in one (no fixation)."""
    client = console.client()
    client.cookies["radiusd_admin"] = "chosen-by-an-attacker"
    client = console.signed_in(client=client)
    assert client.cookies["radiusd_admin"] != "chosen-by-an-attacker"
    planted = console.client()
    planted.cookies["radiusd_admin"] = "chosen-by-an-attacker"
    assert planted.get("/").code == 303


def test_a_flood_of_anonymous_sign_in_pages_keeps_no_session(store):
    """Issue 20 (11): the sign-in page opens no server-side session."""
    console = make_console(store)
    console.add_admin()
    admin = console.signed_in()
    for _ in range(20):
        console.client().get("/sign-in")
    assert len(console.web.sessions) == 1
    assert admin.get("/").code == 200


def test_sign_out_ends_the_session(console, admin):
    cookies = dict(admin.cookies)
    assert admin.post("/sign-out").location == "/sign-in"
    replay = console.client()
    replay.cookies = cookies
    assert replay.get("/").location == "/sign-in"


def test_session_expires_after_15_idle_minutes(console, admin):
    console.clock.advance(14 * 60)
    assert admin.get("/").code == 200  # activity restarts the idle clock
    console.clock.advance(14 * 60)
    assert admin.get("/users").code == 200
    console.clock.advance(15 * 60)
    page = admin.get("/")
    assert page.code == 303 and page.location == "/sign-in"


def test_sign_in_page_says_how_to_create_the_first_admin(store):
    console = make_console(store)
    page = console.client().get("/sign-in")
    assert "There is no admin yet" in page.text
    assert "radiusd admin add NAME --password-stdin" in page.text
    console.add_admin()
    assert "There is no admin yet" not in console.client().get("/sign-in").text


def test_repeated_bad_passwords_block_sign_in_for_five_minutes_and_are_audited(console):
    client = console.client()
    client.get("/sign-in")
    for _ in range(5):
        page = client.post("/sign-in", {"name": "root", "password": "wrong password!"})
        assert page.code == 400
        assert "Wrong user name or password." in page.text
    # Blocked: even the right password is refused, without being checked.
    page = client.post("/sign-in", {"name": "root", "password": ADMIN_PASSWORD})
    assert page.code == 400 and "Too many failed sign-ins" in page.text
    rows = _audit(console, action="admin.sign_in")
    assert [(r.result, r.reason) for r in reversed(rows)] == (
        [("reject", "bad_credentials")] * 5 + [("reject", "throttled")])
    assert all(r.client == "127.0.0.1" and r.detail == {"admin": "root"} for r in rows)
    assert all(ADMIN_PASSWORD not in repr(r) and "wrong password" not in repr(r)
               for r in rows)
    console.clock.advance(5 * 60)
    page = client.post("/sign-in", {"name": "root", "password": ADMIN_PASSWORD})
    assert page.code == 303 and page.location == "/sign-in/enrol"  # then her own TOTP
    page = console.second_step(client, "root", page)
    assert page.code == 303 and page.location == "/"
    latest = _audit(console, action="admin.sign_in", limit=1)[0]
    assert (latest.result, latest.actor) == ("ok", "admin:root")


def test_unknown_admin_name_fails_like_a_wrong_password(console):
    client = console.client()
    client.get("/sign-in")
    page = client.post("/sign-in", {"name": "nobody", "password": ADMIN_PASSWORD})
    assert page.code == 400 and "Wrong user name or password." in page.text
    assert _audit(console, action="admin.sign_in")[0].reason == "bad_credentials"


def test_throttling_also_counts_per_client_address(console):
    client = console.client()
    client.get("/sign-in")
    for number in range(20):  # a different name each time: no account reaches 5
        client.post("/sign-in", {"name": f"guess{number}", "password": "nope nope"})
    page = client.post("/sign-in", {"name": "root", "password": ADMIN_PASSWORD})
    assert "Too many failed sign-ins" in page.text


# --- pages and errors ------------------------------------------------------------------------


def test_security_headers_on_every_response(console, admin):
    anonymous = console.client()
    pages = [anonymous.get("/sign-in"), anonymous.get("/static/style.css"),
             anonymous.get("/no/such/page"), anonymous.get("/users"), admin.get("/"),
             admin.get("/users/nobody"), admin.post("/users", csrf="bad")]
    for page in pages:
        for name, value in SECURITY_HEADERS.items():
            if name == b"Cache-Control" and page.header("content-type").startswith("text/css"):
                continue
            assert page.header(name.decode()) == value.decode(), (name, page.code)
    csp = pages[0].header("content-security-policy")
    assert "script-src 'none'" in csp and "frame-ancestors 'none'" in csp


def test_pages_have_no_script_and_no_inline_style(admin):
    for path in ("/", "/users", "/settings", "/audit"):
        text = admin.get(path).text
        assert "<script" not in text and "style=\"" not in text
        assert not re.search(r"\son[a-z]+=", text)  # no inline event handlers


def test_unknown_user_gets_a_404_page_in_the_consoles_style(admin):
    page = admin.get("/users/nobody")
    assert page.code == 404
    assert "Not found" in page.text and "no user &#39;nobody&#39;" in page.text.lower()
    assert 'href="/static/style.css"' in page.text and "Sign out" in page.text


def test_unknown_url_gets_a_404_page(admin):
    page = admin.get("/no/such/page")
    assert page.code == 404 and "There is no page at this address." in page.text


def test_unexpected_error_is_a_500_page_without_stack_trace_and_is_logged(store):
    def failing_run_db(fn, *args):
        return defer.fail(RuntimeError("internal detail /etc/secret"))

    console = make_console(store, run_db=failing_run_db)
    client = console.client()
    with capturedLogs() as events:
        page = client.get("/sign-in")
    assert page.code == 500
    assert "Something went wrong" in page.text
    assert "Traceback" not in page.text and "internal detail" not in page.text
    assert any(e["log_level"] is LogLevel.critical and "internal detail" in str(
        e.get("log_failure").value) for e in events if "log_failure" in e)


def test_database_down_is_a_503_page(store):
    def down(fn, *args):
        return defer.fail(StoreUnavailable("database unavailable: locked"))

    console = make_console(store, run_db=down)
    page = console.client().get("/sign-in")
    assert page.code == 503 and "The database cannot be reached" in page.text


def test_user_named_script_renders_escaped(console, admin):
    name = "<script>alert(1)</script>"
    console.accounts.add_user(name, pin=None, password=None, actor="cli", now=console.now())
    for page in (admin.get("/users"), admin.get(user_url(name)),
                 admin.get("/audit")):
        assert page.code == 200
        assert "<script>alert(1)</script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_names_with_slashes_and_question_marks_reach_their_page(console, admin):
    name = "dom/ann?x=1"
    console.accounts.add_user(name, pin=None, password=None, actor="cli", now=console.now())
    page = admin.get(user_url(name))
    assert page.code == 200 and "<h1>dom/ann?x=1</h1>" in page.text
    assert admin.post(user_url(name, "disable")).code == 303
    assert console.store.get_user(name).is_disabled


# --- users -------------------------------------------------------------------------------------


def test_create_user_then_search_and_page(console, admin):
    page = admin.post("/users", {"name": "alice", "pin": "4821", "password": "s3lf-service"})
    assert page.code == 303 and page.location == "/users/alice"
    detail = admin.get("/users/alice")
    assert "User alice created." in detail.text and "set" in detail.text
    user = console.store.get_user("alice")
    assert user.has_pin and user.has_self_service_password
    for number in range(30):
        console.accounts.add_user(f"bob{number:02d}", pin=None, password=None, actor="cli",
                                  now=console.now())
    first = admin.get("/users?q=BOB")
    assert "30 users matching" in first.text and "bob24" in first.text
    assert "bob25" not in first.text and "Page 1 of 2" in first.text
    second = admin.get("/users?q=bob&page=2")
    assert "bob25" in second.text and "bob24" not in second.text


def test_create_user_errors_are_shown_next_to_their_fields(console, admin):
    page = admin.post("/users", {"name": "has space", "pin": "12", "password": "short"})
    assert page.code == 400
    assert re.search(r'id="f-name-error">invalid user name', page.text)
    assert 'id="f-pin-error">PIN must be 4–8 letters or digits' in page.text
    assert 'id="f-password-error">The password must have at least 8' in page.text
    assert 'value="has space"' in page.text and "short" not in page.text.split(
        'id="f-password"')[1][:80]
    assert console.store.count_users() == 0
    console.accounts.add_user("taken", pin=None, password=None, actor="cli",
                              now=console.now())
    page = admin.post("/users", {"name": "taken"})
    assert page.code == 400 and "already exists" in page.text


def test_user_page_actions_change_the_user(console, admin):
    admin.post("/users", {"name": "carol"})
    assert admin.post("/users/carol/pin", {"pin": "123"}).code == 400
    assert admin.post("/users/carol/pin", {"pin": "9876"}).code == 303
    assert console.store.get_user("carol").has_pin
    admin.post("/users/carol/clear-pin", {"confirm": "yes"})
    assert not console.store.get_user("carol").has_pin
    admin.post("/users/carol/disable")
    assert console.store.get_user("carol").is_disabled
    admin.post("/users/carol/enable")
    assert not console.store.get_user("carol").is_disabled
    admin.post("/users/carol/password", {"password": "carols-password"})
    assert console.store.get_user("carol").has_self_service_password
    admin.post("/users/carol/unlock")
    actions = [e.action for e in reversed(_audit(console, user_name="carol"))]
    assert actions == ["user.add", "user.set_pin", "user.clear_pin", "user.disable",
                       "user.enable", "user.set_password", "user.unlock"]
    page = admin.post("/users/carol/delete")
    assert page.code == 400 and 'id="f-confirm-error">Tick the box' in page.text
    assert admin.post("/users/carol/delete", {"confirm": "yes"}).location == "/users"
    assert console.store.count_users() == 0


def test_generated_token_shows_uri_and_qr_svg_once(console, admin):
    admin.post("/users", {"name": "dave"})
    page = admin.post("/users/dave/tokens", {"mode": "generate", "type": "totp",
                                             "digits": "6", "period": "30"})
    assert page.location == "/users/dave/new-token"
    shown = admin.get("/users/dave/new-token")
    assert shown.code == 200 and shown.header("cache-control") == "no-store"
    assert "otpauth://totp/radiusd:dave?secret=" in shown.text
    assert "<svg" in shown.text and "<title>QR code of token TOTP-" in shown.text
    again = admin.get("/users/dave/new-token")
    assert again.code == 303 and "secret=" not in admin.get(again.location).text
    [token] = console.store.list_tokens("dave")
    admin.post("/users/dave/delete-token", {"serial": token.serial, "confirm": "yes"})
    assert console.store.list_tokens("dave") == []


def test_imported_seed_is_checked_next_to_its_field(console, admin):
    admin.post("/users", {"name": "erin"})
    page = admin.post("/users/erin/tokens", {"mode": "import", "seed": "not base32!!",
                                             "serial": "HW-1"})
    assert page.code == 400 and 'id="f-seed-error"' in page.text
    page = admin.post("/users/erin/tokens", {"mode": "import",
                                             "seed": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
                                             "serial": "HW-1", "type": "hotp"})
    assert page.code == 303 and page.location == "/users/erin"
    assert [t.serial for t in console.store.list_tokens("erin")] == ["HW-1"]


# --- emergency access ------------------------------------------------------------------------


@pytest.fixture()
def prepared_sets(monkeypatch):
    """Every PreparedSet the web renders, to compare the download with."""
    made = []
    original = issuing.prepare_set

    def recording(*args, **kwargs):
        prepared = original(*args, **kwargs)
        made.append(prepared)
        return prepared

    monkeypatch.setattr(issuing, "prepare_set", recording)
    return made


def test_issued_set_downloads_byte_identical_export_and_codes_never_stored(
        console, admin, prepared_sets, store, tmp_path):
    console.accounts.add_user("frank", pin="4821", password=None, actor="cli",
                              now=console.now())
    page = admin.post("/users/frank/emergency", {"count": "5", "lifetime": "8h",
                                                 "reason": "left token at home"})
    assert page.location == "/users/frank/codes"
    [prepared] = prepared_sets
    codes = [code.reveal().decode() for code in prepared.codes]
    shown = admin.get("/users/frank/codes")
    assert "These codes are shown only once" in shown.text
    assert shown.header("cache-control") == "no-store"
    assert all(code in shown.text for code in codes)
    download = admin.post("/users/frank/export")
    assert download.code == 200
    assert download.content == prepared.export_text.encode("utf-8")
    assert download.header("content-type") == "text/plain; charset=utf-8"
    assert download.header("content-disposition").startswith(
        'attachment; filename="emergency-codes-frank.txt"')
    assert all(code in admin.get("/users/frank/print").text for code in codes)
    # Status, never codes, on the user page; the DB and the audit hold no code.
    user_page = admin.get("/users/frank")
    assert "Emergency access on" in user_page.text and "5 of 5" in user_page.text
    assert "admin:root" in user_page.text and "left token at home" in user_page.text
    database = b"".join(p.read_bytes() for p in tmp_path.glob("radiusd.db*"))
    audit_text = repr(console.store.list_audit())
    for code in codes:
        assert code.encode() not in database and code not in audit_text
    issue_row, export_row = (_audit(console, action="emergency.issue")[0],
                             _audit(console, action="emergency.export")[0])
    assert issue_row.actor == "admin:root" and issue_row.detail["codes"] == 5
    assert export_row.detail["destination"] == "download"
    # After 10 minutes the plaintext is gone from the session: status only.
    console.clock.advance(10 * 60)
    assert admin.get("/users/frank/codes").location == "/users/frank"
    assert admin.post("/users/frank/export").location == "/users/frank"
    assert not any(code in admin.get("/users/frank").text for code in codes)


def test_admin_export_row_is_written_by_the_download_not_by_the_issue(console, admin):
    """Issue 20 (12): issuing wrote `emergency.export destination=download` before any
    download happened."""
    console.accounts.add_user("fay", pin=None, password=None, actor="cli", now=console.now())
    admin.post("/users/fay/emergency", {})
    assert _audit(console, action="emergency.export") == []
    admin.post("/users/fay/export")
    [row] = _audit(console, action="emergency.export")
    issue = _audit(console, action="emergency.issue")[0]
    assert (row.actor, row.user_name, row.detail) == (
        "admin:root", "fay", {"set": issue.detail["set"], "destination": "download"})


def test_done_forgets_the_codes_at_once(console, admin):
    console.accounts.add_user("gina", pin=None, password=None, actor="cli", now=console.now())
    admin.post("/users/gina/emergency", {})
    assert admin.get("/users/gina/codes").code == 200
    admin.post("/users/gina/done")
    assert admin.get("/users/gina/codes").code == 303


def test_codes_stay_with_the_admin_who_issued_them(console, admin):
    console.add_admin("other", "other admin password")
    other = console.signed_in("other", "other admin password")
    console.accounts.add_user("hank", pin=None, password=None, actor="cli", now=console.now())
    admin.post("/users/hank/emergency", {})
    assert other.get("/users/hank/codes").code == 303
    assert other.post("/users/hank/export").code == 303


def test_issue_defaults_to_the_policy_and_refuses_what_the_hard_bounds_forbid(
        console, admin, prepared_sets):
    """Issue 20 (1): the form's errors speak of its fields, with the hard bounds."""
    console.accounts.add_user("ivan", pin=None, password=None, actor="cli", now=console.now())
    page = admin.post("/users/ivan/emergency", {"count": "101", "lifetime": "91d"})
    assert page.code == 400
    assert ('id="f-count-error">The number of codes must be between 1 and 100, not 101.'
            in page.text)
    assert ('id="f-lifetime-error">The lifetime must be between 1m and 90d, not 91d.'
            in page.text)
    assert "--" not in re.sub(r"<!--.*?-->", "", page.text, flags=re.S)
    assert console.store.get_emergency_set("ivan") is None
    admin.post("/users/ivan/emergency", {"count": "", "lifetime": ""})
    [prepared] = prepared_sets
    assert len(prepared.codes) == 10
    assert prepared.emergency.expires_at - prepared.emergency.issued_at == timedelta(hours=72)


def test_an_admin_may_issue_more_and_longer_than_the_policy_as_on_the_cli(
        console, admin, prepared_sets):
    """Issue 20 (1): the admin web capped the lifetime at the policy while the CLI did not;
    now both allow an admin anything within the hard bounds (the policy is the default)."""
    console.accounts.add_user("ivy", pin=None, password=None, actor="cli", now=console.now())
    page = admin.post("/users/ivy/emergency", {"count": "100", "lifetime": "90d"})
    assert page.location == "/users/ivy/codes"
    [prepared] = prepared_sets
    assert len(prepared.codes) == 100
    assert prepared.emergency.expires_at - prepared.emergency.issued_at == timedelta(days=90)


def test_revoke_ends_emergency_access(console, admin):
    console.accounts.add_user("judy", pin=None, password=None, actor="cli", now=console.now())
    admin.post("/users/judy/emergency", {"count": "3"})
    page = admin.post("/users/judy/revoke", {"confirm": "yes"})
    assert page.location == "/users/judy"
    assert "Emergency access ended" in admin.get("/users/judy").text
    emergency = console.store.get_emergency_set("judy")
    assert emergency.revoked_at is not None and emergency.revoked_reason == "revoked by an admin"
    assert admin.get("/users/judy/codes").code == 303
    assert admin.post("/users/judy/revoke", {"confirm": "yes"}).code == 404  # nothing active


# --- settings ----------------------------------------------------------------------------------

GOOD_SETTINGS = {"self_service_enabled": "true", "allow_user_request": "true",
                 "codes_per_set": "10", "code_length": "8", "lifetime": "72h",
                 "on_token_use": "revoke", "max_failures": "5", "lockout_duration": "15m"}


def test_settings_page_uses_the_rsa_labels(admin):
    text = admin.get("/settings").text
    for label in ("Enable self-service features",
                  "Allow user to place token in emergency access mode",
                  "Set of One Time Tokencodes", "Emergency Access Tokencode Lifetime",
                  "End emergency access: the remaining codes stop working", "Lockout"):
        assert label in text
    assert '<label for="f-codes_per_set">' in text


def test_settings_form_with_one_bad_field_saves_nothing(console, admin):
    page = admin.post("/settings", {**GOOD_SETTINGS, "codes_per_set": "20",
                                    "allow_user_request": None, "lifetime": "soon"})
    assert page.code == 400
    assert "Nothing was saved" in page.text
    assert re.search(r'id="f-lifetime-error">&#39;soon&#39; is not a duration', page.text)
    assert 'value="20"' in page.text  # the admin's input is kept
    assert console.store.load_settings().codes_per_set == 10
    assert console.store.load_settings().allow_user_request is True
    assert _audit(console, action="settings.set") == []


@pytest.mark.parametrize("name,value,words", [
    ("lifetime", "1000d", "emergency.lifetime must be between 1m and 90d, not 1000d"),
    ("lifetime", "5s", "emergency.lifetime must be between 1m and 90d, not 5s"),
    ("codes_per_set", "0", "emergency.codes_per_set must be between 1 and 100, not 0"),
    ("code_length", "13", "emergency.code_length must be between 6 and 12, not 13"),
])
def test_settings_form_refuses_a_value_out_of_bounds_next_to_its_field(console, admin, name,
                                                                       value, words):
    """Issue 20 (1): a lifetime of 1000d or 5s was saved, and every issue path failed."""
    page = admin.post("/settings", {**GOOD_SETTINGS, name: value})
    assert page.code == 400
    assert f'id="f-{name}-error">Out of range: {words}.' in page.text
    assert console.store.load_setting_rows() == {}
    assert _audit(console, action="settings.set") == []


def test_settings_form_shows_a_stored_value_out_of_bounds_and_the_default_in_use(
        console, admin):
    """Issue 20 (1): a stored 1000d (an earlier version, or by hand) reads as the default;
    the form says so next to the field."""
    console.store.set_setting("emergency.lifetime", "1000d", _event(console))
    page = admin.get("/settings")
    assert page.code == 200
    assert re.search(r'id="f-lifetime-error">[^<]*1000d[^<]*the default 72h', page.text)
    assert 'name="lifetime" type="text" value="72h"' in page.text
    # Saving the form as shown replaces the stored row: the warning is gone.
    assert admin.post("/settings", GOOD_SETTINGS).location == "/settings"
    assert console.store.load_setting_rows() == {"emergency.lifetime": "72h"}
    assert "1000d" not in admin.get("/settings").text


def _event(console):
    from radiusd.model import AuditEvent
    return AuditEvent(at=console.now(), action="settings.set", result="ok", actor="test")


def test_settings_form_saves_each_changed_key(console, admin):
    page = admin.post("/settings", {**GOOD_SETTINGS, "codes_per_set": "20",
                                    "allow_user_request": None, "lifetime": "2d"})
    assert page.location == "/settings"
    assert "Settings saved." in admin.get("/settings").text
    settings = console.store.load_settings()
    assert (settings.codes_per_set, settings.allow_user_request, settings.lifetime) == (
        20, False, timedelta(hours=48))
    rows = _audit(console, action="settings.set")
    assert sorted((r.detail["key"], r.detail["value"]) for r in rows) == [
        ("emergency.allow_user_request", "false"), ("emergency.codes_per_set", "20"),
        ("emergency.lifetime", "48h")]
    assert {r.actor for r in rows} == {"admin:root"}


# --- audit log ---------------------------------------------------------------------------------


def test_web_and_cli_actions_write_the_same_audit_rows(console, admin):
    admin.post("/users", {"name": "web-user", "pin": "4821", "password": "web-pass-4821"})
    console.accounts.add_user("cli-user", pin="4821", password=Secret("web-pass-4821"),
                              actor="cli", now=console.now())
    admin.post("/users/web-user/pin", {"pin": "1111"})
    console.accounts.set_pin("cli-user", "1111", actor="cli", now=console.now())
    admin.post("/users/web-user/emergency", {"count": "4", "lifetime": "1h"})
    admin.post("/users/web-user/export")
    cli_prepared = issuing.prepare_set(
        console.store, console.accounts.keys, console.accounts.random,
        console.store.load_settings(), user_name="cli-user", count=4,
        lifetime=timedelta(hours=1), issued_by="cli", reason="", now=console.now())
    issuing.commit_set(console.store, cli_prepared, actor="cli", destination="download",
                       node=console.accounts.node, now=console.now())

    def rows(user):
        return [(e.action, e.result, e.node, e.reason, sorted(e.detail),
                 {k: v for k, v in e.detail.items() if k not in ("set", "issued_by")})
                for e in reversed(_audit(console, user_name=user))]

    assert rows("web-user") == rows("cli-user")
    assert {e.actor for e in _audit(console, user_name="web-user")} == {"admin:root"}
    assert {e.actor for e in _audit(console, user_name="cli-user")} == {"cli"}


def test_audit_page_filters_and_pages(console, admin):
    for number in range(30):
        console.accounts.add_user(f"u{number:02d}", pin=None, password=None, actor="cli",
                                  now=console.now())
    page = admin.get("/audit?action=user.add&result=ok")
    assert page.code == 200 and page.text.count("<td>user.add</td>") == 25
    assert "Older →" in page.text
    assert admin.get("/audit?action=user.add&page=2").text.count("<td>user.add</td>") == 5
    assert "u07" in admin.get("/audit?user=u07").text
    assert admin.get("/audit?since=later").code == 400


def test_audit_csv_is_guarded_against_formula_injection(console, admin):
    for name in ("=HYPERLINK(\"http://x\")", "+1", "-1", "@SUM(A1)", "plain"):
        console.accounts.add_user(name, pin=None, password=None, actor="cli",
                                  now=console.now())
    page = admin.get("/audit.csv?action=user.add")
    assert page.header("content-type") == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(page.text)))
    assert sorted(r["user"] for r in rows) == sorted(
        ["'=HYPERLINK(\"http://x\")", "'+1", "'-1", "'@SUM(A1)", "plain"])
    assert csv_cell("\tX") == "'\tX" and csv_cell("\rX") == "'\rX"
    assert csv_cell(None) == "" and csv_cell(42) == "42"


def test_dashboard_counts_users_sets_uses_and_rejects(console, admin):
    from radiusd.model import AuditEvent

    console.accounts.add_user("kim", pin=None, password=None, actor="cli", now=console.now())
    admin.post("/users/kim/emergency", {"count": "2"})
    for reason in ("bad_pin", "bad_pin", "unknown_user"):
        console.store.write_audit(AuditEvent(at=console.now(), action="auth", result="reject",
                                             actor="radius", user_name="kim", reason=reason))
    text = admin.get("/").text
    assert re.search(r"<strong>1</strong> users", text)
    assert re.search(r"<strong>1</strong> active emergency sets", text)
    assert re.search(r"<strong>0</strong> emergency codes used", text)
    assert re.search(r"bad_pin</a></td><td class=\"num\">2</td>", text)


def test_static_stylesheet_is_served():
    css = (Path(web_app.__file__).parent / "static" / "style.css").read_bytes()
    assert b"@media print" in css and len(css) < 20_000


# --- serving -----------------------------------------------------------------------------------


def test_cookies_are_secure_over_tls(store):
    console = make_console(store, is_tls=True)
    assert "Secure" in console.client().get("/sign-in").header("set-cookie")


def _config(tmp_path, web_port: int, extra: str = ""):
    from radiusd.config import load_config
    from support import write_server_config

    return load_config(write_server_config(tmp_path, port=18120, secret="s" * 20,
                                           web_port=web_port, extra=extra))


def test_start_admin_web_listens_on_the_configured_address(tmp_path, store):
    from twisted.internet.testing import MemoryReactorClock

    from admin_web.server import start_admin_web
    from radiusd.crypto import Keys

    reactor = MemoryReactorClock()
    keys = Keys.from_master(b"\x01" * 32)
    assert start_admin_web(_config(tmp_path / "off", 0), reactor, store=store, keys=keys,
                           run_db=None, node="n") is None
    start_admin_web(_config(tmp_path / "on", 18080), reactor, store=store, keys=keys,
                    run_db=None, node="n")
    [(port, site, _backlog, interface)] = reactor.tcpServers
    assert (port, interface) == (18080, "127.0.0.1")
    assert site.displayTracebacks is False


def test_start_admin_web_serves_https_when_a_certificate_is_configured(tmp_path, store):
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from twisted.internet.testing import MemoryReactorClock

    from admin_web.server import start_admin_web
    from radiusd.crypto import Keys

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    reactor = MemoryReactorClock()
    start_admin_web(_config(tmp_path, 18443, 'tls_cert = "cert.pem"\ntls_key = "key.pem"\n'),
                    reactor, store=store, keys=Keys.from_master(b"\x01" * 32), run_db=None,
                    node="n")
    [(port, _site, _context, _backlog, interface)] = reactor.sslServers
    assert (port, interface) == (18443, "127.0.0.1")

"""The self-service console in memory (``admin_web.testing``): a user who misplaced her
token gets emergency codes without calling anyone, within the policy."""

from __future__ import annotations

import pytest

from admin_web.testing import make_console
from radiusd.emergency import issuing
from radiusd.model import Secret

PASSWORD = "alice-self-service"


@pytest.fixture()
def store(sqlite_store):
    return sqlite_store


@pytest.fixture()
def console(store):
    console = make_console(store)
    console.accounts.add_user("alice", pin="4821", password=Secret(PASSWORD), actor="cli",
                              now=console.now())
    return console


@pytest.fixture()
def alice(console):
    return console.signed_in("alice", PASSWORD, area="self-service")


@pytest.fixture()
def prepared_sets(monkeypatch):
    made = []
    original = issuing.prepare_set

    def recording(*args, **kwargs):
        made.append(original(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(issuing, "prepare_set", recording)
    return made


def _set(console, key, value):
    console.accounts.set_setting(key, value, actor="cli", now=console.now())


def test_the_whole_flow_troubleshoot_ok_codes_export_found(console, alice, prepared_sets):
    home = alice.get("/self-service/")
    assert "Hello, alice" in home.text and "No emergency access" in home.text
    troubleshoot = alice.get("/self-service/troubleshoot")
    assert 'href="/self-service/emergency">Token is temporarily unavailable or misplaced' in \
        troubleshoot.text
    confirm = alice.get("/self-service/emergency")
    for words in ("your PIN first, then one code", "Each code works <strong>once</strong>",
                  "valid until about", "only from inside the company network",
                  "replaces any earlier one", ">OK</button>"):
        assert words in confirm.text
    assert console.store.get_emergency_set("alice") is None  # nothing before OK
    page = alice.post("/self-service/emergency")
    assert page.location == "/self-service/codes"
    [prepared] = prepared_sets
    codes_page = alice.get("/self-service/codes")
    assert "These codes are shown only once" in codes_page.text
    assert all(c.reveal().decode() in codes_page.text for c in prepared.codes)
    assert len(prepared.codes) == 10 and "Export to File" in codes_page.text
    download = alice.post("/self-service/export")
    assert download.content == prepared.export_text.encode("utf-8")
    assert 'filename="emergency-codes-alice.txt"' in download.header("content-disposition")
    assert "Issued by:   self-service:alice" in download.text
    issue = console.store.list_audit(action="emergency.issue")[0].event
    assert (issue.actor, issue.detail["issued_by"]) == ("self-service:alice",
                                                        "self-service:alice")
    assert "Emergency access on" in alice.get("/self-service/").text
    # Back with the token: emergency access ends.
    page = alice.post("/self-service/found", {"confirm": "yes"})
    assert page.location == "/self-service/"
    assert "Emergency access has ended" in alice.get("/self-service/").text
    emergency = console.store.get_emergency_set("alice")
    assert emergency.revoked_reason == "token found"
    revoke = console.store.list_audit(action="emergency.revoke")[0].event
    assert (revoke.actor, revoke.reason) == ("self-service:alice", "token found")
    assert alice.get("/self-service/codes").location == "/self-service/"


def test_codes_are_gone_after_ten_minutes(console, alice):
    alice.post("/self-service/emergency")
    console.clock.advance(10 * 60 - 1)
    assert alice.get("/self-service/codes").code == 200
    console.clock.advance(1)
    assert alice.get("/self-service/codes").location == "/self-service/"
    assert alice.post("/self-service/export").location == "/self-service/"


def test_self_service_off_refuses_everything_and_issues_nothing(console):
    client = console.client()
    _set(console, "self_service.enabled", "false")
    page = client.get("/self-service/sign-in")
    assert page.code == 403 and "Self-service is turned off" in page.text
    assert 'name="password"' not in page.text
    page = client.post("/self-service/sign-in", {"name": "alice", "password": PASSWORD},
                       csrf="x")
    assert page.code in (403,)
    _set(console, "self_service.enabled", "true")
    alice = console.signed_in("alice", PASSWORD, area="self-service")
    _set(console, "self_service.enabled", "false")
    for method, path in (("GET", "/self-service/"), ("GET", "/self-service/troubleshoot"),
                         ("GET", "/self-service/emergency"),
                         ("POST", "/self-service/emergency")):
        page = alice.request(method, path)
        assert page.code == 403 and "Self-service is turned off" in page.text, path
    assert console.store.get_emergency_set("alice") is None
    assert console.store.list_audit(action="emergency.issue") == []


def test_user_requests_off_sends_the_user_to_an_admin_and_issues_nothing(console, alice):
    _set(console, "emergency.allow_user_request", "false")
    troubleshoot = alice.get("/self-service/troubleshoot")
    assert "Your administrator must issue emergency codes" in troubleshoot.text
    assert 'href="/self-service/emergency"' not in troubleshoot.text
    for method in ("GET", "POST"):
        page = alice.request(method, "/self-service/emergency")
        assert page.code == 403 and "administrator must issue emergency codes" in page.text
    assert console.store.get_emergency_set("alice") is None


def test_sign_in_is_throttled_and_audited(console):
    client = console.client()
    client.get("/self-service/sign-in")
    for _ in range(5):
        page = client.post("/self-service/sign-in", {"name": "alice", "password": "guess-1234"})
        assert page.code == 400 and "Wrong user name or password." in page.text
    page = client.post("/self-service/sign-in", {"name": "alice", "password": PASSWORD})
    assert "Too many failed sign-ins" in page.text
    rows = [r.event for r in console.store.list_audit(action="self_service.sign_in")]
    assert [(r.result, r.reason, r.user_name) for r in reversed(rows)] == (
        [("reject", "bad_credentials", "alice")] * 5 + [("reject", "throttled", "alice")])
    console.clock.advance(5 * 60)
    assert client.post("/self-service/sign-in",
                       {"name": "alice", "password": PASSWORD}).location == "/self-service/"
    ok = console.store.list_audit(action="self_service.sign_in", limit=1)[0].event
    assert (ok.result, ok.actor) == ("ok", "self-service:alice")


def test_users_without_password_or_disabled_cannot_sign_in(console):
    console.accounts.add_user("nopass", pin=None, password=None, actor="cli",
                              now=console.now())
    console.accounts.add_user("off", pin=None, password=Secret("off-password"), actor="cli",
                              now=console.now())
    console.accounts.set_disabled("off", True, actor="cli", now=console.now())
    client = console.client()
    client.get("/self-service/sign-in")
    page = client.post("/self-service/sign-in", {"name": "nopass", "password": "anything1"})
    assert "Wrong user name or password." in page.text
    page = client.post("/self-service/sign-in", {"name": "off", "password": "off-password"})
    assert "Your account is disabled" in page.text
    reasons = [r.event.reason for r in console.store.list_audit(action="self_service.sign_in")]
    assert reasons == ["disabled", "bad_credentials"]


def test_an_admin_session_does_not_open_the_self_service_console(console):
    console.add_admin()
    admin = console.signed_in()
    page = admin.get("/self-service/")
    assert page.location == "/self-service/sign-in"
    alice = console.signed_in("alice", PASSWORD, area="self-service")
    assert alice.get("/").location == "/sign-in"


def test_self_service_post_without_csrf_is_refused(console, alice):
    assert alice.post("/self-service/emergency", csrf="0" * 64).code == 403
    assert console.store.get_emergency_set("alice") is None


def test_anonymous_self_service_routes_go_to_the_self_service_sign_in(console):
    client = console.client()
    for path in ("/self-service/", "/self-service/codes", "/self-service/troubleshoot"):
        assert client.get(path).location == "/self-service/sign-in"


def test_sign_out(console, alice):
    assert alice.post("/self-service/sign-out").location == "/self-service/sign-in"
    assert alice.get("/self-service/").location == "/self-service/sign-in"


def test_a_stored_lifetime_out_of_bounds_issues_the_default_it_promised(console, alice,
                                                                        prepared_sets):
    """Issue 20 (1): with `emergency.lifetime = 1000d` stored (accepted by earlier versions),
    the console promised "valid until about 2029-08-29", then showed the user a CLI flag
    name instead of her codes. Now the stored value reads as the default (72h): the promise
    and the set agree, and no page names a flag."""
    from datetime import timedelta

    from admin_web.app import _when
    from radiusd.model import AuditEvent
    console.store.set_setting("emergency.lifetime", "1000d", AuditEvent(
        at=console.now(), action="settings.set", result="ok", actor="test"))
    promised = console.now() + timedelta(hours=72)
    confirm = alice.get("/self-service/emergency")
    assert f"valid until about <strong>{_when(promised)}</strong>" in confirm.text
    page = alice.post("/self-service/emergency")
    assert page.location == "/self-service/codes"
    [prepared] = prepared_sets
    assert prepared.emergency.expires_at == promised
    for shown in (confirm, alice.get("/self-service/codes")):
        assert "--lifetime" not in shown.text and "--count" not in shown.text


def test_the_export_row_is_written_when_the_file_is_downloaded_not_at_issue(console, alice):
    """Issue 20 (12): a self-service issue wrote `emergency.export destination=download`
    before any download happened."""
    def exports():
        return [r.event for r in console.store.list_audit(action="emergency.export")]

    alice.post("/self-service/emergency")
    assert [r.event.action for r in console.store.list_audit(user_name="alice")
            if r.event.action.startswith("emergency.")] == ["emergency.issue"]
    assert exports() == []
    alice.post("/self-service/export")
    [row] = exports()
    issue = console.store.list_audit(action="emergency.issue")[0].event
    assert (row.actor, row.user_name, row.detail) == (
        "self-service:alice", "alice",
        {"set": issue.detail["set"], "destination": "download"})
    alice.post("/self-service/done")
    alice.post("/self-service/export")  # nothing left to download: no row
    assert len(exports()) == 1

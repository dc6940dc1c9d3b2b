"""The web consoles in a real browser: Playwright drives Debian's chromium against a real
``radiusd serve`` (RADIUS and the admin web in one process), and the codes the browser
downloads are used over RADIUS.

Never ``playwright install``: the browser is the system's ``/usr/bin/chromium``
(DEVELOPERS.md). The screenshots of the main pages go to ``tests/artifacts/screenshots/``;
with ``RADIUSD_UPDATE_SCREENSHOTS=1`` to ``docs/screenshots/``, the ones the README shows.
"""

from __future__ import annotations

import os

import re
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyrad import packet

from radius_client import pyrad_exchange
from support import REPO, ServerProcess, free_tcp_port, free_udp_port, missing_part, \
    write_server_config
from system.conftest import SECRET

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = (REPO / "docs" / "screenshots" if os.environ.get("RADIUSD_UPDATE_SCREENSHOTS")
               == "1" else REPO / "tests" / "artifacts" / "screenshots")
VIEWPORT = {"width": 1100, "height": 800}
ADMIN, ADMIN_PASSWORD = "root", "correct horse battery staple"
CODE_LINE = re.compile(r"^\s*\d+\. (\d+)$", re.M)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("browser")
    web_port = free_tcp_port()
    port = free_udp_port()
    config = write_server_config(directory, port=port, secret=SECRET, web_port=web_port)
    proc = ServerProcess(directory=directory, port=port, secret=SECRET, config=config,
                         log_path=directory / "radiusd.log", web_port=web_port)
    proc.start()
    url = f"http://127.0.0.1:{web_port}/"
    deadline = time.monotonic() + 15
    while f"admin web on {url}" not in proc.log_text():
        if time.monotonic() > deadline or proc.process.poll() is not None:
            proc.stop()
            pytest.fail(f"no 'admin web on {url}' in the log:\n{proc.log_text()}")
        time.sleep(0.05)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        missing_part("chromium not found: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_part("playwright not installed: make install-test")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, server):
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True,
                                  base_url=f"http://127.0.0.1:{server.web_port}")
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


_ADMINS = iter(range(1, 1000))  # a new admin for each sign-in (see _sign_in_admin)


def _sign_in_admin(page, server) -> None:
    """An admin's first sign-in: password, then she enrols her own TOTP from the secret
    the page shows and types its first code. Each call signs in a new admin: a code works
    once and the window accepts ±1 step, so one admin could sign in at most three times in
    30 s, and no test waits for her app's next code."""
    from radiusd import otp

    name = f"{ADMIN}{next(_ADMINS)}"
    server.cli_ok("admin", "add", name, "--password-stdin", input=ADMIN_PASSWORD + "\n")
    page.goto("/sign-in")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/sign-in/enrol$"))
    assert page.locator("figure.qr-figure svg").is_visible()
    seed = otp.parse_base32_seed(page.locator("#secret").inner_text())
    page.get_by_label("First code from the app").fill(
        otp.hotp(seed, otp.totp_step(datetime.now(UTC), 30)))
    page.get_by_role("button", name="Confirm and sign in").click()
    page.wait_for_url("**/")
    assert page.get_by_role("heading", name="Dashboard").is_visible()


def _download(page, button: str, tmp_path) -> str:
    with page.expect_download() as info:
        page.get_by_role("button", name=button).click()
    download = info.value
    target = tmp_path / download.suggested_filename
    download.save_as(str(target))
    return target.read_bytes().decode("utf-8")


def test_admin_signs_in_sets_policy_creates_user_issues_exports_and_revokes(
        page, server, tmp_path):
    from playwright.sync_api import expect

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/sign-in$"))  # anonymous: sent to sign in
    _shot(page, "sign-in")
    _sign_in_admin(page, server)

    # A setting changed in the web persists (reload, and the CLI sees it too).
    page.get_by_role("link", name="Self-Service Settings").click()
    page.get_by_label("Number of codes in a set").fill("6")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text("Settings saved.")
    page.reload()
    expect(page.get_by_label("Number of codes in a set")).to_have_value("6")
    _shot(page, "settings")
    assert "emergency.codes_per_set = 6" in server.cli_ok("settings", "show")

    # A user with a PIN and a generated token: the QR code is shown once, as inline SVG.
    page.get_by_role("link", name="Users").click()
    page.get_by_label("User name").fill("alice")
    page.get_by_label("PIN (optional)").fill("4821")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("heading", name="alice", exact=True)).to_be_visible()
    page.get_by_text("Add a token").click()
    page.get_by_role("button", name="Add token").click()
    expect(page.locator("svg.qr")).to_be_visible()
    expect(page.locator("code.uri")).to_contain_text("otpauth://totp/radiusd:alice?secret=")
    page.get_by_role("link", name="Done").click()

    # Issue a set (count from the policy) and download the .txt.
    page.get_by_role("button", name="Issue codes").click()
    expect(page.get_by_text("These codes are shown only once.")).to_be_visible()
    _shot(page, "codes")
    shown = page.locator("ol.codes code").all_inner_texts()
    text = _download(page, "Export to File", tmp_path)
    codes = CODE_LINE.findall(text)
    assert text.startswith("Emergency access codes for alice\n")
    assert len(codes) == 6 and codes == shown

    # The downloaded codes work over RADIUS, each once.
    reply = pyrad_exchange(server.port, server.secret, "alice", "4821" + codes[0])
    assert reply.code == packet.AccessAccept
    assert "5 codes left" in reply["Reply-Message"][0]
    assert pyrad_exchange(server.port, server.secret, "alice",
                          "4821" + codes[0]).code == packet.AccessReject

    # The user page shows the status (last use, codes left), never the codes; revoke.
    page.get_by_role("link", name="alice").click()
    status = page.locator("#emergency")
    expect(status).to_contain_text("5 of 6")
    expect(status).to_contain_text("from localhost")  # the [[clients]] name
    assert codes[1] not in page.content()
    _shot(page, "user")
    page.get_by_label("Yes, end emergency access for alice").check()
    page.get_by_role("button", name="Revoke emergency access").click()
    expect(page.get_by_role("status")).to_contain_text("Emergency access ended")
    assert pyrad_exchange(server.port, server.secret, "alice",
                          "4821" + codes[1]).code == packet.AccessReject

    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("User", exact=True).fill("alice")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.audit")).to_contain_text("emergency.revoke")
    _shot(page, "audit")
    page.get_by_role("link", name="Dashboard").click()
    expect(page.locator(".stats")).to_contain_text("emergency codes used in the last 24 h")
    _shot(page, "dashboard")


def test_user_gets_her_own_codes_through_self_service(browser, page, server, tmp_path):
    from playwright.sync_api import expect

    server.cli_ok("user", "add", "carol", "--pin", "2468")
    _sign_in_admin(page, server)  # the admin sets her self-service password
    page.goto("/users/carol")
    page.get_by_label("New self-service password").fill("carol-password-1")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("status")).to_have_text("Self-service password set.")

    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True,
                                  base_url=f"http://127.0.0.1:{server.web_port}")
    user = context.new_page()
    user.goto("/self-service/")
    expect(user).to_have_url(re.compile(r"/self-service/sign-in$"))
    user.get_by_label("User name").fill("carol")
    user.get_by_label("Password").fill("carol-password-1")
    user.get_by_role("button", name="Sign in").click()
    expect(user.get_by_role("heading", name="Hello, carol")).to_be_visible()
    user.get_by_role("link", name="Troubleshoot").first.click()
    user.get_by_role("link", name="Token is temporarily unavailable or misplaced").click()
    expect(user.get_by_text("Each code works")).to_be_visible()
    user.get_by_role("button", name="OK").click()
    expect(user.get_by_text("These codes are shown only once.")).to_be_visible()
    _shot(user, "self-service-codes")
    text = _download(user, "Export to File", tmp_path)
    codes = CODE_LINE.findall(text)
    assert "Emergency access codes for carol" in text and "Issued by:   self-service:carol" \
        in text
    assert len(codes) == 6
    reply = pyrad_exchange(server.port, server.secret, "carol", "2468" + codes[3])
    assert reply.code == packet.AccessAccept

    user.get_by_role("link", name="My token").click()
    user.get_by_label("Yes, end emergency access: my remaining codes stop working").check()
    user.get_by_role("button", name="I found my token").click()
    expect(user.get_by_role("status")).to_contain_text("Emergency access has ended")
    assert pyrad_exchange(server.port, server.secret, "carol",
                          "2468" + codes[4]).code == packet.AccessReject
    context.close()


def test_user_page_fits_a_375_px_phone_with_its_token_table(page, server):
    """Issue 20 (11): the token table does not push the user page wider than a phone."""
    server.cli_ok("user", "add", "tina", "--pin", "1357")
    for serial in ("HARDWARE-TOKEN-0001", "HARDWARE-TOKEN-0002"):
        server.cli_ok("token", "add", "tina", "--type", "hotp", "--serial", serial,
                      "--secret", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
    server.cli_ok("token", "add", "tina")  # a generated TOTP token
    _sign_in_admin(page, server)
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto("/users/tina")
    table = page.locator("table.tokens")
    assert table.locator("tbody tr").count() == 3
    widths = page.evaluate("""() => ({
        page: document.documentElement.scrollWidth,
        viewport: document.documentElement.clientWidth,
        table: document.querySelector('table.tokens').getBoundingClientRect().right,
        card: document.querySelector('table.tokens').closest('.card')
              .getBoundingClientRect().right})""")
    assert widths["page"] <= widths["viewport"] <= 375, widths
    assert widths["table"] <= widths["card"], widths
    # Every action is still there and reachable at this width.
    button = page.get_by_role("button", name="Delete token HARDWARE-TOKEN-0002")
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375, box
    _shot(page, "user-375px")


def _zbarimg() -> str:
    """The QR decoder of Debian's zbar-tools (skips, or fails in CI, without it)."""
    zbarimg = shutil.which("zbarimg")
    if zbarimg is None:
        missing_part("zbarimg not found: install zbar-tools (apt-get install zbar-tools)")
    return zbarimg


def _decode_qr(zbarimg: str, png: Path) -> str:
    """The text of the one QR code in ``png``, as ``zbarimg`` reads it."""
    result = subprocess.run([zbarimg, "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable",
                             str(png)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"zbarimg found no QR code in {png}: {result.stderr}"
    return result.stdout.rstrip("\n")


def test_new_software_tokens_qr_code_scans_to_its_otpauth_uri(page, server, tmp_path):
    """Issue 20 (2): the QR code the admin page shows, as the browser renders it (wide and
    on a 375 px phone screen), decodes to the page's otpauth:// URI."""
    from playwright.sync_api import expect

    zbarimg = _zbarimg()  # before any work: decoding is the point of this test
    server.cli_ok("user", "add", "dora")
    _sign_in_admin(page, server)
    page.goto("/users/dora")
    page.get_by_text("Add a token").click()
    page.get_by_role("button", name="Add token").click()
    qr = page.locator("svg.qr")
    expect(qr).to_be_visible()
    uri = page.locator("code.uri").inner_text()
    assert uri.startswith("otpauth://totp/radiusd:dora?secret=")
    for width in (VIEWPORT["width"], 375):
        page.set_viewport_size({"width": width, "height": VIEWPORT["height"]})
        box = qr.bounding_box()
        assert box is not None and box["width"] >= 150 and box["width"] <= width
        png = tmp_path / f"qr-{width}.png"
        qr.screenshot(path=str(png))
        assert _decode_qr(zbarimg, png) == uri


def test_names_that_look_like_routes_open_their_own_page_in_the_browser(page, server):
    """Issue 20 (10): in Chromium, which normalises URLs (``..`` segments) before sending,
    the users list opens the page of ``eve/codes``, ``..`` and ``%41``, not another route."""
    from playwright.sync_api import expect

    for name in ("eve/codes", "..", "%41"):
        server.cli_ok("user", "add", name)
    _sign_in_admin(page, server)
    for name in ("eve/codes", "..", "%41"):
        page.goto("/users")
        page.get_by_role("link", name=name, exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(name)
        page.get_by_role("button", name="Disable").click()
        expect(page.get_by_role("status")).to_have_text("User disabled.")
        assert "disabled" in server.cli_ok("user", "show", name)

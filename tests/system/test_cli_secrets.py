"""Secrets off the command line (issue 21, 12): ``--pin-stdin`` and ``--secret-stdin`` read
them from standard input, and an imported seed is never printed back (SPEC "Added by the open
issues": ``radiusd token add ... --secret-stdin``, ``radiusd user add NAME --pin-stdin``)."""

from __future__ import annotations

import pytest

from support import assert_one_line_error, free_udp_port, run_cli, write_server_config

PIN = "Qz7Wk3"
PASSWORD = "correct horse 9472"
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # base32, 20 bytes


@pytest.fixture()
def ready(tmp_path):
    config = write_server_config(tmp_path, port=free_udp_port(),
                                 secret="cli-secrets-secret-0123456")
    result = run_cli(config, "init")
    assert result.returncode == 0, result.stderr
    return config


def _no_secret_printed(result, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.stdout and secret not in result.stderr
        assert secret.lower() not in result.stdout.lower()


def _login_pin_is(config, name: str, pin: str) -> bool:
    """Whether ``name``'s PIN is ``pin``: checked by the server's own keys and store."""
    from radiusd.app import open_keys, open_store
    from radiusd.config import load_config
    loaded = load_config(config)
    keys, store = open_keys(loaded), open_store(loaded)
    try:
        subject = store.load_subject(name)
        return keys.verify_pin(pin.encode(), subject.pin_hash)
    finally:
        store.close()


def test_user_add_pin_stdin_sets_the_pin_and_never_prints_it(ready):
    """Issue 21 (12): ``user add NAME --pin-stdin`` reads the PIN from standard input."""
    result = run_cli(ready, "user", "add", "erin", "--pin-stdin", input=PIN + "\n")
    assert result.returncode == 0, result.stderr
    assert "with PIN" in result.stdout
    _no_secret_printed(result, PIN)
    assert _login_pin_is(ready, "erin", PIN)


def test_user_set_pin_stdin_changes_the_pin(ready):
    """Issue 21 (12): ``user set-pin NAME --pin-stdin``, the same way."""
    assert run_cli(ready, "user", "add", "fred", "--pin-stdin", input="1111\n").returncode == 0
    result = run_cli(ready, "user", "set-pin", "fred", "--pin-stdin", input=PIN)
    assert result.returncode == 0, result.stderr
    _no_secret_printed(result, PIN)
    assert _login_pin_is(ready, "fred", PIN)


def test_pin_and_password_from_stdin_are_two_lines_pin_first(ready):
    """Issue 21 (12): with --pin-stdin and --password-stdin, line 1 is the PIN, line 2 the
    password."""
    result = run_cli(ready, "user", "add", "gina", "--password-stdin", "--pin-stdin",
                     input=f"{PIN}\n{PASSWORD}\n")
    assert result.returncode == 0, result.stderr
    _no_secret_printed(result, PIN, PASSWORD)
    assert _login_pin_is(ready, "gina", PIN)
    assert "password set" in run_cli(ready, "user", "show", "gina").stdout


@pytest.mark.parametrize("args,stdin,needles", [
    (("user", "add", "hank", "--pin-stdin"), "", ("PIN", "standard input")),
    (("user", "add", "hank", "--pin-stdin"), "\n", ("PIN", "standard input")),
    (("user", "add", "hank", "--pin-stdin"), f"{PIN}\n{PIN}\n", ("one line",)),
    (("user", "add", "hank", "--pin-stdin", "--password-stdin"), f"{PIN}\n",
     ("2 lines",)),
    (("user", "add", "hank", "--pin-stdin", "--password-stdin"), f"{PIN}\n\n",
     ("password",)),
    (("user", "add", "hank", "--pin-stdin"), "12!\n", ("PIN",)),
    (("user", "set-pin", "hank", "--pin-stdin"), "", ("PIN",)),
    (("token", "add", "hank", "--secret-stdin"), "", ("secret", "standard input")),
    (("token", "add", "hank", "--secret-stdin"), f"{SEED}\n{SEED}\n", ("one line",)),
    (("token", "add", "hank", "--secret-stdin"), "not*base32!\n", ("base32",)),
])
def test_bad_stdin_is_one_line_and_non_zero(ready, args, stdin, needles):
    """Issue 21 (12): empty input, an empty line, or more lines than expected: refused."""
    if args[:2] != ("user", "add"):
        assert run_cli(ready, "user", "add", "hank").returncode == 0
    result = run_cli(ready, *args, input=stdin)
    assert_one_line_error(result, *needles)
    _no_secret_printed(result, PIN, SEED)
    if args[:2] == ("user", "add"):
        assert "hank" not in run_cli(ready, "user", "list").stdout  # nothing half-made


def test_pin_and_pin_stdin_together_are_refused(ready):
    """Issue 21 (12): one source for the PIN."""
    result = run_cli(ready, "user", "add", "ivan", "--pin", "1234", "--pin-stdin",
                     input=PIN + "\n")
    assert result.returncode == 2 and "Traceback" not in result.stderr


@pytest.mark.parametrize("how", ["stdin", "argv"])
def test_imported_seed_is_not_printed_back(ready, how):
    """Issue 21 (12): ``token add --secret``/``--secret-stdin`` prints the serial and type,
    never the otpauth URI that holds the seed."""
    assert run_cli(ready, "user", "add", "jane").returncode == 0
    if how == "stdin":
        result = run_cli(ready, "token", "add", "jane", "--secret-stdin", "--serial", "HW1",
                         input=SEED + "\n")
    else:
        result = run_cli(ready, "token", "add", "jane", "--secret", SEED, "--serial", "HW1")
    assert result.returncode == 0, result.stderr
    assert "HW1" in result.stdout and "totp" in result.stdout
    assert "otpauth://" not in result.stdout
    assert "secret=" not in result.stdout
    _no_secret_printed(result, SEED)
    assert "HW1" in run_cli(ready, "token", "list", "jane").stdout


def test_imported_seed_from_stdin_authenticates(ready):
    """Issue 21 (12): the seed read from stdin is the one stored (its codes match)."""
    from radiusd import otp
    from radiusd.app import open_keys, open_store
    from radiusd.config import load_config
    assert run_cli(ready, "user", "add", "kate").returncode == 0
    result = run_cli(ready, "token", "add", "kate", "--secret-stdin", "--serial", "HW2",
                     input=SEED.lower() + "\r\n")
    assert result.returncode == 0, result.stderr
    loaded = load_config(ready)
    keys, store = open_keys(loaded), open_store(loaded)
    try:
        token = store.load_subject("kate").tokens[0]
        seed = keys.open_seed(token.sealed_seed, "kate", "HW2").reveal()
    finally:
        store.close()
    assert seed == otp.parse_base32_seed(SEED)


def test_generated_software_token_still_prints_its_uri_once(ready):
    """Issue 21 (12): a generated seed must reach the user's app: its URI is printed."""
    assert run_cli(ready, "user", "add", "liam").returncode == 0
    result = run_cli(ready, "token", "add", "liam")
    assert result.returncode == 0
    assert result.stdout.count("otpauth://totp/") == 1


def test_user_import_prints_no_pin_or_seed(ready, tmp_path):
    """Issue 21 (12): ``user import`` reports counts and bad rows, never a PIN or seed."""
    csv = tmp_path / "users.csv"
    csv.write_text("name,pin,token_type,secret,digits,period,counter,serial\n"
                   f"mona,{PIN},totp,{SEED},6,30,,HW3\n"
                   f"nina,{PIN}!,totp,{SEED},6,30,,HW4\n"
                   f"omar,{PIN},totp,{SEED}*,6,30,,HW5\n", encoding="utf-8")
    result = run_cli(ready, "user", "import", str(csv))
    assert result.returncode == 1
    assert "imported 1 users" in result.stdout
    assert len(result.stderr.strip().splitlines()) == 2
    _no_secret_printed(result, PIN, SEED)


def test_help_points_scripts_to_the_stdin_forms(ready):
    """Issue 21 (12): --pin and --secret stay, their help says where scripts should go."""
    for args in (("user", "add"), ("user", "set-pin"), ("token", "add")):
        text = " ".join(run_cli(ready, *args, "--help").stdout.split())
        assert "-stdin" in text and "process list" in text, text

"""``radiusd [--config PATH] COMMAND``: argparse in, one-line errors and exit codes out.

Every command calls the same functions as the web consoles (``accounts.py``, ``app.py``).
Exit codes: 0 success, 1 a problem with the input, the config or the database (one line on
stderr naming it, no traceback), 2 a malformed command line, 141 (128 + SIGPIPE, what a shell
reports for ``cat``) when the reader of standard output went away (``| head``): quietly.

Every value that came from outside (a name, a User-Name or other attribute a NAS sent, a
reason) is printed through ``radiusd.escaping``, so it cannot forge a line or reach the
terminal as an escape sequence; ``--json`` output is JSON-escaped instead.
"""

from __future__ import annotations

import argparse
import getpass
import io
import json
import os
import secrets
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Sequence

from radiusd import settings as policy
from radiusd.config import check_config, default_config_path, load_config
from radiusd.duration import format_duration, parse_duration
from radiusd.errors import ConfigError, RadiusdError, UsageError
from radiusd.escaping import escape, recorded_word
from radiusd.model import Secret

PROG = "radiusd"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (exit 2), not usage + error.

    A value that starts with '-' and then no letter (``-5m``, ``-2+3``, ``-1``) is a value,
    never an option (no option of this CLI looks like that), so it reaches the command,
    which says what is wrong with it. Any other value that starts with '-' (``-bob``) goes
    after ``--`` (or ``--option=-value``), and the error says so.
    """

    _innermost = PROG  # the prog of the deepest (sub)parser that parsed: for the hint

    def parse_known_args(self, args=None, namespace=None):
        _Parser._innermost = self.prog
        # A subparser gets the words after its command: the ones it judges.
        self._words = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}",
                       unknown=[extra for extra in extras if extra.startswith("-")])
        return parsed

    def _parse_optional(self, arg_string):
        if len(arg_string) > 1 and arg_string[0] == "-" and not (
                arg_string[1].isalpha() or arg_string[1] == "-"):
            return None  # a value such as -5m or -2+3: the command judges it
        return super()._parse_optional(arg_string)

    def error(self, message: str, unknown: Sequence[str] = ()):  # noqa: D401 (argparse API)
        if not unknown and "arguments are required" in message:
            # e.g. `user add -bob`: the name was taken for an unknown option.
            unknown = [text for text in getattr(self, "_words", ())
                       if text.startswith("-") and text != "--"
                       and not any(option.startswith(text.split("=")[0])  # or abbreviated
                                   for option in self._option_string_actions)]
        if unknown:
            hint = (f"{unknown[0]} is not an option; put a value that starts with '-' "
                    f"after '--': `{_Parser._innermost} -- {unknown[0]}`")
        elif "expected one argument" in message:
            option = message.split(":")[0].split()[-1].split("/")[-1]
            hint = f"for a value that starts with '-', write {option}=VALUE"
        else:
            hint = f"see `{self.prog} --help`"
        self.exit(2, f"{self.prog}: error: {escape(message)} ({escape(hint)})\n")


def _now() -> datetime:
    return datetime.now(UTC)


def _duration(text: str):
    """A duration option: 0 or more, at most ``duration.MAX_DURATION``."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_duration(text: str):
    """A duration option that must be more than 0 (``--since 0`` would list nothing)."""
    value = _duration(text)
    if not value:
        raise argparse.ArgumentTypeError(f"{text!r}: the duration must be more than 0")
    return value


def _int_range(low: int, high: int | None = None):
    """An integer option from ``low`` to ``high`` (inclusive; None: no upper bound)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            bounds = f"{low}–{high}" if high is not None else f"{low} or more"
            raise argparse.ArgumentTypeError(f"must be {bounds}, not {text}")
        return value
    return parse


_positive_int = _int_range(1)  # 1 or more (0 and negatives are refused)


def _int_choice(*choices: int):
    """An integer option that is one of ``choices``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value not in choices:
            raise argparse.ArgumentTypeError(
                f"must be {' or '.join(map(str, choices))}, not {text}")
        return value
    return parse


def _hotp_counter(text: str) -> int:
    from radiusd.accounts import MAX_HOTP_COUNTER
    return _int_range(0, MAX_HOTP_COUNTER)(text)


AUDIT_MAX_LIMIT = 1_000_000  # rows `audit` prints at most (--limit)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="RADIUS server with one-time emergency tokencodes")
    parser.add_argument("--config", type=Path, default=None,
                        help="config file (default: $RADIUSD_CONFIG, else config/radiusd.toml)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    commands.add_parser("init", help="create or migrate the database; create the key file")
    serve = commands.add_parser("serve", help="serve RADIUS (and the admin web)")
    serve.add_argument("-X", "--debug", action="store_true",
                       help="log every packet decoded (User-Password never shown)")
    serve.add_argument("--workers", type=_int_range(1, 64), default=1,
                       help="N processes sharing the RADIUS port (SO_REUSEPORT), 1–64")
    serve.add_argument("--worker-index", type=_int_range(0, 63), default=None,
                       help=argparse.SUPPRESS)
    serve.add_argument("--ready-fd", type=_int_range(0), default=None, help=argparse.SUPPRESS)
    commands.add_parser("check-config", help="validate the config; list every problem")

    user = commands.add_parser("user", help="manage users").add_subparsers(
        dest="action", metavar="ACTION", parser_class=_Parser)
    user.required = True
    add = user.add_parser("add", help="create a user")
    add.add_argument("name")
    add_pin = add.add_mutually_exclusive_group()
    add_pin.add_argument("--pin", help="4–8 letters or digits; " + _ARGV_HINT + "--pin-stdin")
    add_pin.add_argument("--pin-stdin", action="store_true",
                         help="read the PIN from standard input (one line; with "
                              "--password-stdin: line 1 the PIN, line 2 the password)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the self-service console password from standard input")
    set_pin = user.add_parser("set-pin", help="set or clear a user's PIN")
    set_pin.add_argument("name")
    which = set_pin.add_mutually_exclusive_group(required=True)
    which.add_argument("--pin", help=_ARGV_HINT + "--pin-stdin")
    which.add_argument("--pin-stdin", action="store_true",
                       help="read the PIN from standard input (one line)")
    which.add_argument("--clear", action="store_true")
    set_password = user.add_parser("set-password",
                                   help="set the self-service password (from stdin)")
    set_password.add_argument("name")
    set_password.add_argument("--password-stdin", action="store_true", required=True)
    for name, text in (("unlock", "clear a lockout"), ("disable", "refuse all logins"),
                       ("enable", "allow logins again"), ("delete", "delete user and tokens"),
                       ("show", "show one user")):
        user.add_parser(name, help=text).add_argument("name")
    listing = user.add_parser("list", help="list users")
    listing.add_argument("--search", default=None)
    uimport = user.add_parser(
        "import", help="import users and tokens from CSV (header "
                       "name,pin,token_type,secret,digits,period,counter,serial)")
    uimport.add_argument("file", metavar="FILE.csv", type=Path)

    token = commands.add_parser("token", help="manage tokens").add_subparsers(
        dest="action", metavar="ACTION", parser_class=_Parser)
    token.required = True
    tadd = token.add_parser("add", help="import (--secret) or generate a token seed")
    tadd.add_argument("name")
    tadd.add_argument("--type", choices=("totp", "hotp"), default="totp")
    seed = tadd.add_mutually_exclusive_group()
    seed.add_argument("--secret", help="base32 seed of a hardware token; " + _ARGV_HINT
                                       + "--secret-stdin")
    seed.add_argument("--secret-stdin", action="store_true",
                      help="read the base32 seed from standard input (one line); an "
                           "imported seed is never printed")
    tadd.add_argument("--digits", type=_int_choice(6, 8), default=6, help="6 or 8")
    tadd.add_argument("--period", type=_int_range(10, 300), default=30,
                      help="TOTP step in seconds, 10–300")
    tadd.add_argument("--counter", type=_hotp_counter, default=0,
                      help="the next HOTP counter the token will show")
    tadd.add_argument("--serial")
    token.add_parser("list", help="list a user's tokens").add_argument("name")
    tdel = token.add_parser("delete", help="delete a token")
    tdel.add_argument("name")
    tdel.add_argument("serial")

    emergency = commands.add_parser(
        "emergency", help="one-time emergency tokencodes").add_subparsers(
        dest="action", metavar="ACTION", parser_class=_Parser)
    emergency.required = True
    issue = emergency.add_parser("issue", help="issue a new set (revokes the earlier one) "
                                               "and write its .txt export")
    issue.add_argument("name")
    issue.add_argument("--count", type=_positive_int, default=None,
                       help="codes in the set, 1–100 (default: emergency.codes_per_set)")
    issue.add_argument("--lifetime", type=_duration, default=None,
                       help="1m–90d, e.g. 72h, 7d (default: emergency.lifetime)")
    issue.add_argument("--output", default="-",
                       help="the .txt export; '-' or absent: standard output")
    issue.add_argument("--reason", default="", help="why (recorded in the audit trail)")
    emergency.add_parser("status", help="the user's set: never the codes").add_argument("name")
    erevoke = emergency.add_parser("revoke", help="end the active set now")
    erevoke.add_argument("name")
    erevoke.add_argument("--reason", default="revoked by an admin")

    admin = commands.add_parser("admin", help="admins of the web console").add_subparsers(
        dest="action", metavar="ACTION", parser_class=_Parser)
    admin.required = True
    aadd = admin.add_parser("add", help="create an admin")
    aadd.add_argument("name")
    aadd.add_argument("--password-stdin", action="store_true", required=True)
    admin.add_parser("list", help="every admin, and whether her TOTP is set up")
    admin.add_parser("delete", help="delete an admin (never the last one)").add_argument(
        "name")
    apassword = admin.add_parser("set-password", help="change an admin's password")
    apassword.add_argument("name")
    apassword.add_argument("--password-stdin", action="store_true", required=True)
    admin.add_parser("reset-totp", help="forget an admin's TOTP: she enrols a new one at "
                                        "her next sign-in").add_argument("name")

    settings = commands.add_parser("settings", help="the self-service policy").add_subparsers(
        dest="action", metavar="ACTION", parser_class=_Parser)
    settings.required = True
    settings.add_parser("show", help="print every setting")
    sset = settings.add_parser("set", help="change one setting")
    sset.add_argument("key", help=", ".join(policy.BY_KEY))
    sset.add_argument("value")

    audit = commands.add_parser("audit", help="the audit trail")
    audit.add_argument("--user", default=None)
    audit.add_argument("--since", type=_positive_duration, default=None, help="e.g. 24h, 7d")
    audit.add_argument("--json", action="store_true")
    audit.add_argument("--limit", type=_int_range(1, AUDIT_MAX_LIMIT), default=1000,
                       help=f"the newest N rows, 1–{AUDIT_MAX_LIMIT} (default 1000)")
    audit_actions = audit.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    prune = audit_actions.add_parser("prune", help="delete audit rows older than a duration")
    prune.add_argument("--older-than", type=_duration, required=True,
                       help="e.g. 90d; at least 1d unless --force")
    prune.add_argument("--force", action="store_true",
                       help="also delete rows younger than the minimum retention (1d)")
    return parser


# --pin and --secret stay for the scripts that use them; their help says why not to (issue
# 21, 12). A hint in --help, no warning at each use: an admin's script must not get stderr
# noise it cannot silence.
_ARGV_HINT = ("a value on the command line is visible to other users in the process list "
              "and kept in shell history: scripts should use ")
_STDIN_LIMIT = 64 * 1024


def _read_stdin_lines(*what: str) -> tuple[Secret, ...]:
    """One secret a line from standard input, in the order of ``what`` (issue 21, 12).

    From a terminal each is asked for without echo (``getpass``). From a pipe or file the
    input must be exactly those lines (a final newline and CRLF ends allowed): an empty
    line, a missing or an extra line is refused, so a script that sends the wrong thing
    stores nothing rather than half of it.

    Raises:
        UsageError: a line missing, empty or too many, or input that is not UTF-8 text.
            The message names the secret, never its value.
    """
    try:
        if sys.stdin.isatty():
            lines = [getpass.getpass(f"{name}: ") for name in what]
        else:
            text = sys.stdin.read(_STDIN_LIMIT + 1)
            if len(text) > _STDIN_LIMIT:
                raise UsageError(f"standard input is longer than {_STDIN_LIMIT} characters")
            lines = text.split("\n")
            if len(lines) > 1 and lines[-1] == "":
                lines.pop()  # the final newline
            lines = [line.removesuffix("\r") for line in lines]
        secrets_read = tuple(Secret(line) for line in lines)
    except UnicodeError:
        raise UsageError("standard input is not UTF-8 text") from None
    expected = " then ".join(what)
    if len(lines) > len(what):
        count = "one line" if len(what) == 1 else f"{len(what)} lines"
        raise UsageError(f"standard input must be {count} ({expected}), not {len(lines)}")
    for name, line in zip(what, lines):
        if not line:
            raise UsageError(f"no {name} on standard input (an empty line)")
    if len(lines) < len(what):
        missing = what[len(lines)]
        raise UsageError(f"no {missing} on standard input (expected {len(what)} lines: "
                         f"{expected})")
    return secrets_read


def _read_stdin_secret(what: str) -> Secret:
    line = sys.stdin.readline()
    value = line.rstrip("\r\n")
    if not value:
        raise UsageError(f"no {what} on standard input")
    return Secret(value)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") \
        if value else "-"


class Commands:
    """One method per command; each returns an exit code and prints to ``out``."""

    def __init__(self, config, out=sys.stdout):
        self.config = config
        self.out = out
        self._store = None
        self._accounts = None

    def print(self, text: str = "") -> None:
        print(text, file=self.out)

    @property
    def accounts(self):
        if self._accounts is None:
            from radiusd.accounts import Accounts
            from radiusd.app import node_name, open_keys, open_store
            keys = open_keys(self.config)
            self._store = open_store(self.config)
            self._accounts = Accounts(self._store, keys, secrets.token_bytes, node_name())
        return self._accounts

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    # --- server --------------------------------------------------------------------------

    def init(self, args) -> int:
        from radiusd.app import database_file_warning, database_files_open_to_others, initialise
        created, store = initialise(self.config)
        try:
            for path, mode in database_files_open_to_others(self.config):
                print(f"{PROG}: warning: {database_file_warning(path, mode)}", file=sys.stderr)
        finally:
            store.close()
        self.print(f"key file: {self.config.keys.path}" + (" (created)" if created else ""))
        self.print("database: at the current schema")
        return 0

    def serve(self, args) -> int:
        from radiusd.app import serve
        if not 1 <= args.workers <= 64:
            raise UsageError(f"--workers must be 1–64, not {args.workers}")
        return serve(self.config, debug=args.debug, workers=args.workers,
                     worker_index=args.worker_index, ready_fd=args.ready_fd)

    # --- users ---------------------------------------------------------------------------

    def user(self, args) -> int:
        if args.action == "import":
            return self._import_users(args.file)
        accounts, now = self.accounts, _now()
        match args.action:
            case "add":
                pin = args.pin
                if args.pin_stdin:
                    # Issue 21 (12): line 1 the PIN, line 2 the password (PIN first: it is
                    # what every user has, the password what some have).
                    read = _read_stdin_lines("PIN", *(("password",) if args.password_stdin
                                                      else ()))
                    pin = read[0].reveal().decode("utf-8")
                    password = read[1] if args.password_stdin else None
                else:
                    password = _read_stdin_secret("password") if args.password_stdin else None
                info = accounts.add_user(args.name, pin=pin, password=password,
                                         actor="cli", now=now)
                self.print(f"user {info.name} added" + (" with PIN" if info.has_pin else ""))
            case "set-pin":
                pin = args.pin
                if args.pin_stdin:
                    pin = _read_stdin_lines("PIN")[0].reveal().decode("utf-8")
                accounts.set_pin(args.name, None if args.clear else pin, actor="cli",
                                 now=now)
                self.print(f"PIN of {args.name} " + ("cleared" if args.clear else "set"))
            case "set-password":
                accounts.set_password(args.name, _read_stdin_secret("password"), actor="cli",
                                      now=now)
                self.print(f"self-service password of {args.name} set")
            case "unlock":
                accounts.unlock(args.name, actor="cli", now=now)
                self.print(f"user {args.name} unlocked")
            case "disable" | "enable":
                accounts.set_disabled(args.name, args.action == "disable", actor="cli", now=now)
                self.print(f"user {args.name} {args.action}d")
            case "delete":
                accounts.delete_user(args.name, actor="cli", now=now)
                self.print(f"user {args.name} deleted")
            case "list":
                users = accounts.list_users(args.search)
                self.print(f"{'NAME':24} {'PIN':4} {'TOKENS':7} {'STATUS'}")
                for user in users:
                    self.print(f"{escape(user.name):24} {_yes(user.has_pin):4} "
                               f"{len(user.token_serials):<7} {self._status(user, now)}")
            case "show":
                user = accounts.get_user(args.name)
                self.print(f"name:              {escape(user.name)}")
                self.print(f"status:            {self._status(user, now)}")
                self.print(f"PIN:               {'set' if user.has_pin else 'none'}")
                self.print(f"self-service:      "
                           f"{'password set' if user.has_self_service_password else 'no password'}")
                self.print(f"failures:          {user.failures}")
                self.print(f"created:           {_when(user.created_at)}")
                for token in accounts.list_tokens(user.name):
                    self.print(f"token:             {token.serial} ({token.kind.value}, "
                               f"{token.digits} digits)")
        return 0

    def _import_users(self, path: Path) -> int:
        """``user import FILE.csv``: summary on stdout, every bad row on stderr, exit 1 if any.

        Rows are stored 1,000 per transaction; a failure (database gone) leaves the batches
        before it imported, and says so.
        """
        from radiusd import importing
        from radiusd.store.bulk import import_batch
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from None
        try:
            # Decoded whole before anything is stored: a bad byte imports nothing.
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            raise UsageError(f"{path}:{line}: not UTF-8 text (save the CSV as UTF-8)") \
                from None
        accounts = self.accounts
        try:
            report = importing.import_users(
                importing.read_rows(io.StringIO(text, newline="")),
                lambda batch, audit_for: import_batch(accounts.store, batch, audit_for),
                accounts.keys, accounts.random, now=_now(), actor="cli",
                node=accounts.node, source=str(path))
        except importing.HeaderError as exc:
            raise UsageError(f"{path}: {exc}") from None
        except RadiusdError:
            print(f"{PROG}: the import stopped; the batches of 1,000 rows before the error "
                  "are imported (`radiusd user list` shows them)", file=sys.stderr)
            raise
        self.print(report.summary())
        for bad in report.bad_rows:
            print(f"{path}:{bad.line}: {bad.problem}", file=sys.stderr)
        return 1 if report.bad_rows else 0

    def _status(self, user, now: datetime) -> str:
        if user.is_disabled:
            return "disabled"
        if user.locked_at is not None:
            duration = self.accounts.settings().lockout_duration
            if not duration or now < user.locked_at + duration:
                return f"locked since {_when(user.locked_at)}"
        return "active"

    # --- tokens --------------------------------------------------------------------------

    def token(self, args) -> int:
        accounts, now = self.accounts, _now()
        match args.action:
            case "add":
                secret = args.secret
                if args.secret_stdin:
                    secret = _read_stdin_lines("secret")[0].reveal().decode("utf-8")
                new = accounts.add_token(args.name, kind=args.type, secret=secret,
                                         digits=args.digits, period=args.period,
                                         counter=args.counter, serial=args.serial,
                                         actor="cli", now=now)
                self.print(f"token {new.info.serial} ({new.info.kind.value}) added to "
                           f"{args.name}")
                if secret is None:
                    # A generated seed must reach the user's app: its URI, once. An imported
                    # seed is on the hardware token already; the URI would only echo it
                    # (issue 21, 12).
                    self.print(new.uri)
            case "list":
                tokens = accounts.list_tokens(args.name)
                self.print(f"{'SERIAL':20} {'TYPE':5} {'DIGITS':6} {'PERIOD':6} CREATED")
                for token in tokens:
                    self.print(f"{token.serial:20} {token.kind.value:5} {token.digits:<6} "
                               f"{token.period:<6} {_when(token.created_at)}")
            case "delete":
                accounts.delete_token(args.name, args.serial, actor="cli", now=now)
                self.print(f"token {args.serial} of {args.name} deleted")
        return 0

    # --- emergency codes -----------------------------------------------------------------

    def emergency(self, args) -> int:
        from radiusd.emergency import issuing
        from radiusd.emergency.rules import set_status
        accounts, now = self.accounts, _now()
        match args.action:
            case "issue":
                _warn_stored_settings(accounts)
                try:
                    prepared = issuing.prepare_set(
                        accounts.store, accounts.keys, accounts.random, accounts.settings(),
                        user_name=args.name, count=args.count, lifetime=args.lifetime,
                        issued_by="cli", reason=args.reason, now=now)
                except issuing.OutOfRange as exc:  # the shared code names no flag: we do
                    flag = {"count": "--count", "lifetime": "--lifetime"}.get(exc.field)
                    raise UsageError(exc.message_for(flag) if flag else str(exc)) from None
                if args.output == "-":
                    # Written before it is committed: a reader that went away (a closed
                    # pipe) ends the command here, and no set is issued whose codes nobody
                    # received (nor the earlier set revoked for it).
                    self.out.write(prepared.export_text)
                    self.out.flush()
                    try:
                        issuing.commit_set(accounts.store, prepared, actor="cli",
                                           destination="stdout", node=accounts.node,
                                           now=now)
                    except RadiusdError as exc:
                        raise UsageError(f"the codes written above were NOT issued and do "
                                         f"not work: {exc}") from None
                else:
                    path = Path(args.output)
                    with _ExportFile(path) as export:
                        export.write(prepared.export_text)
                        issuing.commit_set(accounts.store, prepared, actor="cli",
                                           destination=str(path.resolve()),
                                           node=accounts.node, now=now)
                    print(f"{len(prepared.codes)} emergency codes for {args.name} written to "
                          f"{path} (valid until {_when(prepared.emergency.expires_at)})",
                          file=sys.stderr)
            case "status":
                current = accounts.store.get_emergency_set(args.name)
                status = set_status(current, now)
                self.print(f"user:        {escape(args.name)}")
                self.print(f"status:      {status.value}")
                if current is not None:
                    self.print(f"issued:      {_when(current.issued_at)} by "
                               f"{escape(current.issued_by)}"
                               + (f" ({escape(current.reason)})" if current.reason else ""))
                    self.print(f"valid until: {_when(current.expires_at)}")
                    if current.revoked_at is not None:
                        self.print(f"revoked:     {_when(current.revoked_at)} "
                                   f"({escape(current.revoked_reason or '')})")
                    self.print(f"codes left:  {current.codes_left} of {len(current.codes)}")
                    if current.last_used_at is not None:
                        self.print(f"last use:    {_when(current.last_used_at)} from "
                                   f"{escape(current.last_used_client or '-')}")
                    else:
                        self.print("last use:    never")
            case "revoke":
                issuing.revoke_set(accounts.store, user_name=args.name, actor="cli",
                                   reason=args.reason, node=accounts.node, now=now)
                self.print(f"emergency set of {args.name} revoked")
        return 0

    # --- admins, settings, audit ---------------------------------------------------------

    def admin(self, args) -> int:
        accounts, now = self.accounts, _now()
        match args.action:
            case "add":
                accounts.add_admin(args.name, _read_stdin_secret("password"), actor="cli",
                                   now=now)
                self.print(f"admin {args.name} added")
            case "list":
                self.print(f"{'NAME':24} {'TOTP':14} CREATED")
                for admin in accounts.list_admins():
                    self.print(f"{admin.name:24} "
                               f"{'enrolled' if admin.has_totp else 'not enrolled':14} "
                               f"{_when(admin.created_at)}")
            case "delete":
                accounts.delete_admin(args.name, actor="cli", now=now)
                self.print(f"admin {args.name} deleted")
            case "set-password":
                accounts.set_admin_password(args.name, _read_stdin_secret("password"),
                                            actor="cli", now=now)
                self.print(f"password of admin {args.name} set; her open sessions are "
                           "signed out")
            case "reset-totp":
                accounts.reset_admin_totp(args.name, actor="cli", now=now)
                self.print(f"TOTP of admin {args.name} reset: she sets up a new one at her "
                           "next sign-in")
        return 0

    def settings(self, args) -> int:
        if args.action == "show":
            _warn_stored_settings(self.accounts)
            for key, value in self.accounts.settings().as_text().items():
                self.print(f"{key} = {value}")
        else:
            text = self.accounts.set_setting(args.key, args.value, actor="cli", now=_now())
            self.print(f"{args.key} = {text}")
        return 0

    def audit(self, args) -> int:
        now = _now()
        if args.action == "prune":
            return self._prune_audit(args.older_than, args.force, now)
        # The newest --limit rows, printed oldest first (text and --json alike), the
        # newest at the bottom as in a log.
        records = list(reversed(self.accounts.audit(
            user_name=args.user, since=now - args.since if args.since else None,
            limit=args.limit)))
        if args.json:
            rows = [{"id": r.id, "at": _when(r.event.at), "action": r.event.action,
                     "result": r.event.result, "actor": r.event.actor,
                     "user": r.event.user_name, "reason": r.event.reason,
                     "client": r.event.client, "nas_address": r.event.nas_address,
                     "node": r.event.node, "detail": dict(r.event.detail)} for r in records]
            self.print(json.dumps(rows, indent=2, default=str))  # ensure_ascii: escaped
            return 0
        lines = [_audit_columns(record.event) for record in records]
        # Columns as wide as their widest value, so none ever shifts the next.
        widths = [max((len(line[column]) for line in lines), default=0)
                  for column in range(5)]
        for line in lines:
            self.print("  ".join([line[0]] + [f"{text:{width}}" for text, width
                                              in zip(line[1:5], widths[1:])]
                                 + [line[5]]).rstrip())
        return 0

    def _prune_audit(self, older_than, force: bool, now: datetime) -> int:
        """``audit prune``: the minimum retention unless forced; says what it deletes."""
        from radiusd.accounts import AUDIT_MIN_RETENTION
        if older_than < AUDIT_MIN_RETENTION and not force:
            raise UsageError(
                f"--older-than {format_duration(older_than)} would delete audit rows "
                f"younger than {AUDIT_MIN_RETENTION.days}d, the minimum retention; add "
                "--force to delete them anyway")
        cutoff = now - older_than
        count = self.accounts.count_audit_before(cutoff)
        self.print(f"deleting {count} audit rows older than {format_duration(older_than)} "
                   f"(before {_when(cutoff)})")
        deleted = self.accounts.prune_audit(cutoff, actor="cli", now=now, force=force)
        self.print(f"deleted {deleted} audit rows; the prune is recorded in the audit trail "
                   "(audit.prune)")
        return 0


def _audit_columns(event) -> list[str]:
    """One audit row as its six columns of text (time, action, result, user, reason, the
    rest), each value escaped as recorded (``radiusd.escaping.recorded_word``): a NAS chose
    the user name and the station ids, and the request path stored them escaped already."""
    detail = " ".join(f"{key}={recorded_word(str(value))}"
                      for key, value in sorted(event.detail.items()))
    rest = recorded_word(event.actor) + (
        f" client={recorded_word(event.client)}" if event.client else "") \
        + (f" {detail}" if detail else "")
    return [_when(event.at), recorded_word(event.action), recorded_word(event.result),
            recorded_word(event.user_name) if event.user_name is not None else "-",
            recorded_word(event.reason) if event.reason is not None else "-", rest]


class _ExportFile:
    """Write an export so that it exists whole or not at all.

    The text goes to a temporary file beside the target (mode 0600: it holds codes) and is
    fsynced; only when the ``with`` block succeeded (the set is committed) is it renamed
    into place. Any failure removes the temporary file. An unwritable target fails before
    anything is committed.
    """

    def __init__(self, path: Path):
        self.path = path
        self.temp: Path | None = None
        self.fd: int | None = None

    def __enter__(self) -> "_ExportFile":
        if self.path.is_dir():
            raise UsageError(f"--output {self.path} is a directory")
        self.temp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        try:
            self.fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise UsageError(f"cannot write {self.path}: {exc.strerror}") from None
        return self

    def write(self, text: str) -> None:
        assert self.fd is not None
        try:
            os.write(self.fd, text.encode("utf-8"))
            os.fsync(self.fd)
        except OSError as exc:
            raise UsageError(f"cannot write {self.path}: {exc.strerror}") from None

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.temp is not None
        if self.fd is not None:
            os.close(self.fd)
        if exc_type is None:
            os.replace(self.temp, self.path)
        else:
            self.temp.unlink(missing_ok=True)


def _check_config(path: Path) -> int:
    errors, warnings = check_config(path, now=datetime.now(UTC))
    if not errors:
        errors = _key_problems(path)
    for key, message in warnings:
        print(f"warning: {key}: {message}" if key else f"warning: {message}")
    for key, message in errors:
        print(f"error: {key}: {message}" if key else f"error: {message}")
    if errors:
        print(f"{path}: {len(errors)} error(s)", file=sys.stderr)
        return 1
    print(f"{path}: OK" + (f" ({len(warnings)} warning(s))" if warnings else ""))
    return 0


def _warn_stored_settings(accounts) -> None:
    """A stored setting that is not used (out of bounds: its default applies), on stderr."""
    for problem in accounts.settings_problems().values():
        print(f"{PROG}: warning: {problem}", file=sys.stderr)


def _key_problems(path: Path) -> list[tuple[str, str]]:
    """The key file against the database's key check value, when the database is
    reachable (issue 21, 7)."""
    from radiusd.app import key_problem
    problem = key_problem(load_config(path, now=datetime.now(UTC)))
    return [("keys.path", problem)] if problem else []


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code. A reader of standard output that went away
    (``radiusd audit | head``) ends the command quietly with 141, not a traceback."""
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # inside the try: output buffered for a pipe fails here
    except BrokenPipeError:
        try:
            # Python flushes stdout again at exit: point it at /dev/null first.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass
        return 128 + signal.SIGPIPE


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    path = args.config or default_config_path(os.environ, Path.cwd())
    if args.command == "check-config":
        return _check_config(path)
    try:
        config = load_config(path, now=datetime.now(UTC))
    except ConfigError as exc:
        for key, message in exc.problems:
            print(f"{PROG}: config error: {key}: {message}" if key
                  else f"{PROG}: config error: {message}", file=sys.stderr)
        return 1
    commands = Commands(config)
    try:
        return getattr(commands, args.command.replace("-", "_"))(args)
    except RadiusdError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        commands.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``radiusd [--config PATH] COMMAND``: argparse in, one-line errors and exit codes out.

Every command calls the same functions as the web consoles (``accounts.py``, ``app.py``).
Exit codes: 0 success, 1 a problem with the input, the config or the database (one line on
stderr naming it, no traceback), 2 a malformed command line.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Sequence

from radiusd import settings as policy
from radiusd.config import check_config, default_config_path, load_config
from radiusd.duration import parse_duration
from radiusd.errors import ConfigError, RadiusdError, UsageError
from radiusd.model import Secret

PROG = "radiusd"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (exit 2), not usage + error."""

    def error(self, message: str):  # noqa: D401 (argparse API)
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _now() -> datetime:
    return datetime.now(UTC)


def _duration(text: str):
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    return value


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
    serve.add_argument("--workers", type=_positive_int, default=1,
                       help="N processes sharing the RADIUS port (SO_REUSEPORT)")
    serve.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    serve.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    commands.add_parser("check-config", help="validate the config; list every problem")

    user = commands.add_parser("user", help="manage users").add_subparsers(
        dest="action", metavar="ACTION", parser_class=_Parser)
    user.required = True
    add = user.add_parser("add", help="create a user")
    add.add_argument("name")
    add.add_argument("--pin", help="4–8 letters or digits")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the self-service console password from standard input")
    set_pin = user.add_parser("set-pin", help="set or clear a user's PIN")
    set_pin.add_argument("name")
    which = set_pin.add_mutually_exclusive_group(required=True)
    which.add_argument("--pin")
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
    tadd.add_argument("--secret", help="base32 seed of a hardware token")
    tadd.add_argument("--digits", type=_positive_int, default=6)
    tadd.add_argument("--period", type=_positive_int, default=30)
    tadd.add_argument("--counter", type=_positive_int, default=0)
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
                       help="codes in the set (default: emergency.codes_per_set)")
    issue.add_argument("--lifetime", type=_duration, default=None,
                       help="e.g. 72h, 7d (default: emergency.lifetime)")
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

    settings = commands.add_parser("settings", help="the self-service policy").add_subparsers(
        dest="action", metavar="ACTION", parser_class=_Parser)
    settings.required = True
    settings.add_parser("show", help="print every setting")
    sset = settings.add_parser("set", help="change one setting")
    sset.add_argument("key", help=", ".join(policy.BY_KEY))
    sset.add_argument("value")

    audit = commands.add_parser("audit", help="the audit trail")
    audit.add_argument("--user", default=None)
    audit.add_argument("--since", type=_duration, default=None, help="e.g. 24h, 7d")
    audit.add_argument("--json", action="store_true")
    audit.add_argument("--limit", type=_positive_int, default=1000)
    audit_actions = audit.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    prune = audit_actions.add_parser("prune", help="delete audit rows older than a duration")
    prune.add_argument("--older-than", type=_duration, required=True)
    return parser


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
                password = _read_stdin_secret("password") if args.password_stdin else None
                info = accounts.add_user(args.name, pin=args.pin, password=password,
                                         actor="cli", now=now)
                self.print(f"user {info.name} added" + (" with PIN" if info.has_pin else ""))
            case "set-pin":
                accounts.set_pin(args.name, None if args.clear else args.pin, actor="cli",
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
                    self.print(f"{user.name:24} {_yes(user.has_pin):4} "
                               f"{len(user.token_serials):<7} {self._status(user, now)}")
            case "show":
                user = accounts.get_user(args.name)
                self.print(f"name:              {user.name}")
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
                new = accounts.add_token(args.name, kind=args.type, secret=args.secret,
                                         digits=args.digits, period=args.period,
                                         counter=args.counter, serial=args.serial,
                                         actor="cli", now=now)
                self.print(f"token {new.info.serial} ({new.info.kind.value}) added to "
                           f"{args.name}")
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
                prepared = issuing.prepare_set(
                    accounts.store, accounts.keys, accounts.random, accounts.settings(),
                    user_name=args.name, count=args.count, lifetime=args.lifetime,
                    issued_by="cli", reason=args.reason, now=now)
                if args.output == "-":
                    issuing.commit_set(accounts.store, prepared, actor="cli",
                                       destination="stdout", node=accounts.node, now=now)
                    self.out.write(prepared.export_text)
                    self.out.flush()
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
                self.print(f"user:        {args.name}")
                self.print(f"status:      {status.value}")
                if current is not None:
                    self.print(f"issued:      {_when(current.issued_at)} by {current.issued_by}"
                               + (f" ({current.reason})" if current.reason else ""))
                    self.print(f"valid until: {_when(current.expires_at)}")
                    if current.revoked_at is not None:
                        self.print(f"revoked:     {_when(current.revoked_at)} "
                                   f"({current.revoked_reason})")
                    self.print(f"codes left:  {current.codes_left} of {len(current.codes)}")
                    if current.last_used_at is not None:
                        self.print(f"last use:    {_when(current.last_used_at)} from "
                                   f"{current.last_used_client}")
                    else:
                        self.print("last use:    never")
            case "revoke":
                issuing.revoke_set(accounts.store, user_name=args.name, actor="cli",
                                   reason=args.reason, node=accounts.node, now=now)
                self.print(f"emergency set of {args.name} revoked")
        return 0

    # --- admins, settings, audit ---------------------------------------------------------

    def admin(self, args) -> int:
        self.accounts.add_admin(args.name, _read_stdin_secret("password"), actor="cli",
                                now=_now())
        self.print(f"admin {args.name} added")
        return 0

    def settings(self, args) -> int:
        if args.action == "show":
            for key, value in self.accounts.settings().as_text().items():
                self.print(f"{key} = {value}")
        else:
            text = self.accounts.set_setting(args.key, args.value, actor="cli", now=_now())
            self.print(f"{args.key} = {text}")
        return 0

    def audit(self, args) -> int:
        now = _now()
        if args.action == "prune":
            count = self.accounts.prune_audit(now - args.older_than, actor="cli", now=now)
            self.print(f"pruned {count} audit rows")
            return 0
        records = self.accounts.audit(user_name=args.user,
                                      since=now - args.since if args.since else None,
                                      limit=args.limit)
        if args.json:
            rows = [{"id": r.id, "at": _when(r.event.at), "action": r.event.action,
                     "result": r.event.result, "actor": r.event.actor,
                     "user": r.event.user_name, "reason": r.event.reason,
                     "client": r.event.client, "nas_address": r.event.nas_address,
                     "node": r.event.node, "detail": dict(r.event.detail)} for r in records]
            self.print(json.dumps(rows, indent=2, default=str))
            return 0
        for record in reversed(records):  # oldest first, like a log
            event = record.event
            detail = " ".join(f"{k}={v}" for k, v in sorted(event.detail.items()))
            self.print(f"{_when(event.at)}  {event.action:16} {event.result:7} "
                       f"{event.user_name or '-':16} {event.reason or '-':18} "
                       f"{event.actor}" + (f" client={event.client}" if event.client else "")
                       + (f" {detail}" if detail else ""))
        return 0


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
    errors, warnings = check_config(path)
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


def _key_problems(path: Path) -> list[tuple[str, str]]:
    """The key file against the database's key check value, when the database is
    reachable (issue 21, 7)."""
    from radiusd.app import key_problem
    problem = key_problem(load_config(path))
    return [("keys.path", problem)] if problem else []


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = args.config or default_config_path(os.environ, Path.cwd())
    if args.command == "check-config":
        return _check_config(path)
    try:
        config = load_config(path)
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

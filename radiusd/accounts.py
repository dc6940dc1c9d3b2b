"""Admin operations on users, tokens, settings and the audit trail: the one place the CLI
and the web consoles call, so both validate the same way and write the same audit rows.

Owns: input validation of names, PINs, seeds and settings; hashing/sealing before storage;
building the audit event of each action. Time (``now``) and randomness come in as arguments.

Must not import: twisted, sqlalchemy, pyrad.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence

from radiusd import otp, settings as policy
from radiusd.crypto import Keys, SealError, hash_password
from radiusd.passwords import ADMIN_MIN_LENGTH, SELF_SERVICE_MIN_LENGTH, check_password
from radiusd.errors import UsageError
from radiusd.model import (AuditEvent, AuditRecord, RandomSource, Secret, TokenInfo, TokenKind,
                           UserInfo)
from radiusd.model import WebAccount
from radiusd.passcode import validate_pin
from radiusd.wire_text import recorded, user_name_problem

ISSUER = "radiusd"
_NAME = re.compile(r"^[^\s\x00-\x1f\x7f]{1,64}$")
_SERIAL = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# A prune keeps at least this much of the audit trail unless forced (issue 20, 5).
AUDIT_MIN_RETENTION = timedelta(days=1)
# The highest HOTP counter a token may be imported with: far above any real token's, and
# far below the 64-bit column it is stored in (issue 20, 9).
MAX_HOTP_COUNTER = 10**12


def validate_user_name(name: str) -> None:
    """Raises UsageError unless ``name`` is 1–64 characters without spaces that a NAS can
    also send: no control character (C0, DEL, C1), valid UTF-8, at most 253 octets
    (``wire_text.user_name_problem``, the rule every User-Name from the wire passes)."""
    if not _NAME.match(name or ""):
        raise UsageError(f"invalid user name {name!r}: use 1–64 characters, no spaces")
    problem = user_name_problem(name)
    if problem is not None:  # C1 controls, octets that are not UTF-8, over 253 octets
        raise UsageError(f"invalid user name {name!r}: {problem}")


def _checked_pin(pin: str) -> Secret:
    try:
        validate_pin(pin)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return Secret(pin)


def check_admin_password(password: Secret, name: str | None = None) -> None:
    """Raises UsageError: a password ``passwords.check_password`` refuses for an admin
    (under 12 characters, one repeated character, common, her name)."""
    check_password(password, minimum=ADMIN_MIN_LENGTH, name=name,
                   what="the admin password")


def check_self_service_password(password: Secret, name: str | None = None) -> None:
    """Raises UsageError: as ``check_admin_password``, with 8 characters at least."""
    check_password(password, minimum=SELF_SERVICE_MIN_LENGTH, name=name,
                   what="the self-service password")


# An admin's own TOTP (issue 20, 13): the authenticator apps' defaults (RFC 6238).
ADMIN_TOTP_DIGITS = 6
ADMIN_TOTP_PERIOD = 30
ADMIN_TOTP_ISSUER = "radiusd admin"


def _admin_seed_binding(admin_id: int) -> tuple[str, str]:
    """The owner and serial an admin's seed is sealed to (``Keys.seal_seed``). A NUL never
    appears in a user name, so no user token's seal can be swapped in."""
    return f"admin\x00{admin_id}", "totp"


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just added: the admin-visible info and its provisioning URI (shown once)."""

    info: TokenInfo
    uri: str


class Accounts:
    """User, token, settings and audit operations with their audit rows.

    Args:
        store: the ``radiusd.store.Store`` (typed loosely so this module needs no sqlalchemy).
        keys: the server keys (PIN hashes, sealed seeds).
        random: randomness for salts, nonces, seeds and serials.
        node: this server's name, recorded in audit rows.
    """

    def __init__(self, store, keys: Keys, random: RandomSource, node: str):
        self.store = store
        self.keys = keys
        self.random = random
        self.node = node

    def _event(self, now: datetime, action: str, actor: str, user_name: str | None = None,
               **detail: object) -> AuditEvent:
        return AuditEvent(at=now, action=action, result="ok", actor=actor, user_name=user_name,
                          node=self.node, detail=detail)

    def _first_generation(self) -> int:
        """A random first ``generation`` (``model.WebAccount``): SQLite may give a
        re-created account the id of a deleted one, and a session of that one must not
        match the new account (issue 20, 4)."""
        return int.from_bytes(self.random(4), "big")

    # --- users ---------------------------------------------------------------------------

    def add_user(self, name: str, *, pin: str | None, password: Secret | None, actor: str,
                 now: datetime) -> UserInfo:
        """Create a user, optionally with a PIN and a self-service password.

        Raises:
            UsageError: bad name or PIN, empty password. AlreadyExists: the name is taken.
            StoreUnavailable: the database cannot be reached.
        """
        validate_user_name(name)
        pin_hash = self.keys.hash_pin(_checked_pin(pin), self.random) if pin is not None else None
        password_hash = None
        if password is not None:
            check_self_service_password(password, name)
            password_hash = hash_password(password, self.random)
        self.store.add_user(name, pin_hash=pin_hash, password_hash=password_hash, at=now,
                            audit=self._event(now, "user.add", actor, name,
                                              has_pin=pin is not None,
                                              has_password=password is not None),
                            generation=self._first_generation())
        return self.store.get_user(name)

    def set_pin(self, name: str, pin: str | None, *, actor: str, now: datetime) -> None:
        """Set (or with ``None`` clear) a user's PIN. Raises UsageError, NotFound."""
        pin_hash = self.keys.hash_pin(_checked_pin(pin), self.random) if pin is not None else None
        action = "user.set_pin" if pin is not None else "user.clear_pin"
        self.store.set_pin(name, pin_hash, self._event(now, action, actor, name))

    def set_password(self, name: str, password: Secret | None, *, actor: str,
                     now: datetime) -> None:
        """Set (or clear) the self-service password. Raises UsageError, NotFound."""
        password_hash = None
        if password is not None:
            check_self_service_password(password, name)
            password_hash = hash_password(password, self.random)
        action = "user.set_password" if password is not None else "user.clear_password"
        self.store.set_password(name, password_hash, self._event(now, action, actor, name))

    def set_disabled(self, name: str, is_disabled: bool, *, actor: str, now: datetime) -> None:
        action = "user.disable" if is_disabled else "user.enable"
        self.store.set_disabled(name, is_disabled, self._event(now, action, actor, name))

    def unlock(self, name: str, *, actor: str, now: datetime) -> None:
        self.store.unlock(name, self._event(now, "user.unlock", actor, name))

    def delete_user(self, name: str, *, actor: str, now: datetime) -> None:
        self.store.delete_user(name, self._event(now, "user.delete", actor, name))

    def get_user(self, name: str) -> UserInfo:
        return self.store.get_user(name)

    def list_users(self, search: str | None = None, limit: int = 1000,
                   offset: int = 0) -> list[UserInfo]:
        return self.store.list_users(search, limit, offset)

    # --- tokens --------------------------------------------------------------------------

    def add_token(self, user_name: str, *, kind: str = "totp", secret: str | None = None,
                  digits: int = 6, period: int = 30, counter: int = 0,
                  serial: str | None = None, actor: str, now: datetime) -> NewToken:
        """Import a seed (hardware token) or generate one (software token).

        Args:
            kind: ``totp`` or ``hotp``. secret: base32 seed to import, or None to generate.
            digits: 6 or 8. period: TOTP step in seconds (10–300). counter: the next HOTP
            counter the token will show (0–``MAX_HOTP_COUNTER``). serial: defaults to a
            generated one.
        Returns:
            The token's info and its ``otpauth://`` URI (which contains the seed: show once).
        Raises:
            UsageError: bad kind, digits, period, counter, serial or base32 seed.
            NotFound: unknown user. AlreadyExists: the serial is taken.
        """
        try:
            token_kind = TokenKind(kind)
        except ValueError:
            raise UsageError(f"token type must be totp or hotp, not {kind!r}") from None
        if digits not in (6, 8):
            raise UsageError(f"digits must be 6 or 8, not {digits}")
        if not 10 <= period <= 300:
            raise UsageError(f"period must be 10–300 seconds, not {period}")
        if counter < 0:
            raise UsageError(f"counter must be 0 or more, not {counter}")
        if counter > MAX_HOTP_COUNTER:  # the 64-bit column would overflow (issue 20, 9)
            raise UsageError(f"counter must be at most {MAX_HOTP_COUNTER}, not {counter}")
        if serial is None:
            serial = f"{token_kind.value.upper()}-{self.random(5).hex().upper()}"
        elif not _SERIAL.match(serial):
            raise UsageError(f"invalid serial {serial!r}: use 1–64 letters, digits, . _ : -")
        if secret is None:
            seed = otp.generate_seed(self.random)
        else:
            try:
                seed = otp.parse_base32_seed(secret)
            except ValueError as exc:
                raise UsageError(f"--secret: {exc}") from None
        # model.Token.last_used: the step/counter last accepted; HOTP starts before `counter`.
        last_used = counter - 1 if token_kind is TokenKind.HOTP else -1
        sealed = self.keys.seal_seed(seed, user_name, serial, self.random)
        self.store.add_token(user_name, serial=serial, kind=token_kind, digits=digits,
                             period=period, sealed_seed=sealed, last_used=last_used, at=now,
                             audit=self._event(now, "token.add", actor, user_name,
                                               serial=serial, type=token_kind.value,
                                               imported=secret is not None))
        info = next(t for t in self.store.list_tokens(user_name) if t.serial == serial)
        uri = otp.otpauth_uri(kind=token_kind.value, issuer=ISSUER, account=user_name,
                              seed=seed, digits=digits, period=period, counter=counter,
                              algorithm="SHA1")
        return NewToken(info=info, uri=uri)

    def list_tokens(self, user_name: str) -> list[TokenInfo]:
        return self.store.list_tokens(user_name)

    def delete_token(self, user_name: str, serial: str, *, actor: str, now: datetime) -> None:
        self.store.delete_token(user_name, serial,
                                self._event(now, "token.delete", actor, user_name, serial=serial))

    # --- policy --------------------------------------------------------------------------

    def settings(self) -> policy.Settings:
        return self.store.load_settings()

    def settings_problems(self) -> dict[str, str]:
        """Stored settings not used (out of bounds: the default applies): ``{key: line}``."""
        return policy.stored_problems(self.store.load_setting_rows())

    def set_setting(self, key: str, value: str, *, actor: str, now: datetime) -> str:
        """Validate and store one policy value; returns its canonical text.

        Raises:
            UsageError: unknown key or bad value (one line naming both).
        """
        try:
            text = policy.normalise_setting(key, value)
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None
        except policy.OutOfBounds as exc:  # names the key itself
            raise UsageError(str(exc)) from None
        except ValueError as exc:
            raise UsageError(f"{key}: {exc}") from None
        self.store.set_setting(key, text, self._event(now, "settings.set", actor, None,
                                                      key=key, value=text))
        return text

    # --- audit ---------------------------------------------------------------------------

    def audit(self, *, user_name: str | None = None, since: datetime | None = None,
              action: str | None = None, result: str | None = None, limit: int = 1000,
              offset: int = 0) -> Sequence[AuditRecord]:
        """Audit rows, newest first. ``user_name`` is matched as the request path records
        it (``wire_text.recorded``: a name with a control character or octets that are not
        UTF-8 is stored escaped), so the name a NAS sent finds its rows."""
        return self.store.list_audit(user_name=recorded(user_name), since=since, action=action,
                                     result=result, limit=limit, offset=offset)

    def count_audit_before(self, older_than: datetime) -> int:
        """How many audit rows ``prune_audit(older_than, ...)`` would delete now."""
        return self.store.count_audit_before(older_than)

    def prune_audit(self, older_than: datetime, *, actor: str, now: datetime,
                    force: bool = False) -> int:
        """Delete the audit rows before ``older_than``; audited in the same transaction
        (``audit.prune`` with the cutoff, whether forced, and the number deleted), a row
        that the prune itself keeps.

        Args:
            older_than: the cutoff. Without ``force`` it must be at least
                ``AUDIT_MIN_RETENTION`` before ``now``: one command must not erase the
                trail of what just happened.
        Returns:
            The number of rows deleted.
        Raises:
            UsageError: the cutoff is within the minimum retention and not forced.
            StoreUnavailable: the database cannot be reached.
        """
        if not force and older_than > now - AUDIT_MIN_RETENTION:
            raise UsageError(f"audit rows younger than {AUDIT_MIN_RETENTION.days}d are kept "
                             "unless the prune is forced")
        return self.store.prune_audit(older_than, self._event(
            now, "audit.prune", actor, None, older_than=older_than.isoformat(),
            forced=force))

    # --- admins of the web console -------------------------------------------------------

    def add_admin(self, name: str, password: Secret, *, actor: str, now: datetime) -> None:
        """Raises UsageError (bad name, password under 12 characters), AlreadyExists."""
        validate_user_name(name)
        check_admin_password(password, name)
        self.store.add_admin(name, hash_password(password, self.random), now,
                             self._event(now, "admin.add", actor, None, admin=name),
                             generation=self._first_generation())

    def list_admins(self):
        """Every admin (``model.WebAccount`` without password hash or seed), by name."""
        return self.store.list_admins()

    def delete_admin(self, name: str, *, actor: str, now: datetime) -> None:
        """Delete an admin; her open sessions end on their next request.

        Raises:
            NotFound: no such admin. UsageError: the last admin (never deleted).
        """
        self.store.delete_admin(name, self._event(now, "admin.delete", actor, None,
                                                  admin=name))

    def set_admin_password(self, name: str, password: Secret, *, actor: str,
                           now: datetime) -> int:
        """Change an admin's password; her open sessions end (new generation, returned).

        Raises:
            UsageError: a password the rules refuse. NotFound: no such admin.
        """
        check_admin_password(password, name)
        return self.set_admin_password_hash(name, hash_password(password, self.random),
                                            actor=actor, now=now)

    def set_admin_password_hash(self, name: str, password_hash: str, *, actor: str,
                                now: datetime) -> int:
        """``set_admin_password`` with the password already checked and hashed (the web
        hashes outside the DB pool). Raises NotFound."""
        return self.store.set_admin_password(
            name, password_hash, self._event(now, "admin.set_password", actor, None,
                                             admin=name))

    def reset_admin_totp(self, name: str, *, actor: str, now: datetime) -> None:
        """Forget an admin's TOTP: her next sign-in enrols a new one; her sessions end.

        Raises:
            NotFound: no such admin.
        """
        self.store.reset_admin_totp(name, self._event(now, "admin.reset_totp", actor, None,
                                                      admin=name))

    def admin_totp_uri(self, name: str, seed: Secret) -> str:
        """The ``otpauth://`` URI of an admin's TOTP seed (holds the seed: show once)."""
        return otp.otpauth_uri(kind="totp", issuer=ADMIN_TOTP_ISSUER, account=name,
                               seed=seed.reveal(), digits=ADMIN_TOTP_DIGITS,
                               period=ADMIN_TOTP_PERIOD, counter=0, algorithm="SHA1")

    def enrol_admin_totp(self, account: WebAccount, seed: Secret, code: str, *,
                         client: str | None, now: datetime) -> bool | None:
        """Confirm an admin's new TOTP with its first code, then store it sealed.

        Returns:
            True: enrolled. False: the code does not match (nothing stored). None: the
            admin changed or enrolled meanwhile (sign in again).
        """
        match = otp.match_totp(seed.reveal(), code.strip(), now, period=ADMIN_TOTP_PERIOD,
                               digits=ADMIN_TOTP_DIGITS, algorithm="SHA1", last_used=-1)
        if match.value is None:
            return False
        owner, serial = _admin_seed_binding(account.id)
        sealed = self.keys.seal_seed(seed.reveal(), owner, serial, self.random)
        audit = AuditEvent(at=now, action="admin.enrol_totp", result="ok",
                           actor=f"admin:{account.name}", client=client, node=self.node,
                           detail={"admin": account.name})
        if not self.store.enrol_admin_totp(account.id, account.generation, sealed,
                                           match.value, audit):
            return None
        return True

    def check_admin_code(self, account: WebAccount, code: str, now: datetime) -> str | None:
        """Check an enrolled admin's current TOTP code and use it up (a code works once).

        Returns:
            None when accepted, else the audit reason: ``bad_code``, ``replayed_code``
            (its step was used already), ``bad_seal`` (the seed does not open with this
            key file).
        """
        if account.totp_sealed_seed is None:
            return "bad_code"
        owner, serial = _admin_seed_binding(account.id)
        try:
            seed = self.keys.open_seed(account.totp_sealed_seed, owner, serial)
        except SealError:
            return "bad_seal"
        match = otp.match_totp(seed.reveal(), code.strip(), now, period=ADMIN_TOTP_PERIOD,
                               digits=ADMIN_TOTP_DIGITS, algorithm="SHA1",
                               last_used=account.totp_last_step)
        if match.value is None:
            return "replayed_code" if match.is_replay else "bad_code"
        # Compare-and-set, like a user's token: two sign-ins with one code, one wins.
        if not self.store.use_admin_totp_step(account.id, match.value):
            return "replayed_code"
        return None

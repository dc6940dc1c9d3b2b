"""The forms of the web consoles: submitted text in, checked values out, or every problem
at once with the field it belongs to.

Owns: which fields each form has, their server-side checks and the messages shown next to
them. Domain rules (names, PINs, seeds, settings ranges) are the ones ``radiusd.accounts``,
``radiusd.settings`` and ``radiusd.emergency.issuing`` apply, called here so that a bad
form never reaches the database and the error lands next to its field.

Submitted bytes become text only when they are UTF-8 (``submitted_text``: never a silent
U+FFFD), and a destructive action needs its box ticked (``confirmed``).

A form that fails raises ``FormInvalid``: the app's one error handler re-renders the page
named by ``page`` with the errors and the submitted values (passwords never echoed).

Must not import: twisted, sqlalchemy, pyrad. Must not know: HTTP, sessions, templates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Collection, Mapping, Sequence

from radiusd import settings as policy
from radiusd.accounts import validate_user_name
from radiusd.duration import parse_duration
from radiusd.emergency import issuing
from radiusd.errors import UsageError
from radiusd.model import Secret
from radiusd.passcode import validate_pin

PAGE_SIZE = 25
MIN_PASSWORD = 8  # accounts.add_user / set_password
SECRET_FIELDS = frozenset({"password", "csrf", "seed"})
NOT_UTF8 = "Not valid UTF-8 text: type it again."
CONFIRM = "Tick the box to confirm."


class FormInvalid(UsageError):
    """A submitted form has problems: ``errors`` maps field names to messages.

    Args:
        page: which page to render again (a key of the app's page table).
        errors: ``{field: message}``; ``""`` is the form as a whole.
        values: what was submitted, for refilling the form (secrets dropped).
        target: the user the page is about, when it is a user's page.
    """

    def __init__(self, page: str, errors: Mapping[str, str], values: Mapping[str, str],
                 target: str | None = None):
        self.page = page
        self.errors = dict(errors)
        self.values = {k: v for k, v in values.items() if k not in SECRET_FIELDS}
        self.target = target
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


@dataclass(frozen=True, slots=True)
class SubmittedText:
    """The fields of a request as text, and what could not be read as text.

    ``values``: ``{name: first value}`` of every field whose name and value are UTF-8.
    ``bad_values``: names of the fields whose value is not UTF-8 (left out of ``values``).
    ``has_bad_name``: some field's name is not UTF-8.
    """

    values: Mapping[str, str]
    bad_values: tuple[str, ...] = ()
    has_bad_name: bool = False

    @property
    def is_text(self) -> bool:
        return not self.bad_values and not self.has_bad_name


def submitted_text(fields: Mapping[bytes, Sequence[bytes]]) -> SubmittedText:
    """Decode submitted fields strictly: invalid UTF-8 is reported, never replaced (a name
    that arrives as U+FFFD is another name than the one typed)."""
    values: dict[str, str] = {}
    bad: list[str] = []
    has_bad_name = False
    for raw_name, items in fields.items():
        if not items:
            continue
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            has_bad_name = True
            continue
        try:
            values[name] = items[0].decode("utf-8")
        except UnicodeDecodeError:
            bad.append(name)
    return SubmittedText(values=values, bad_values=tuple(bad), has_bad_name=has_bad_name)


def confirmed(values: Mapping[str, str], error_field: str, page: str, *,
              kept: str, target: str | None = None,
              refill: Mapping[str, str] | None = None) -> None:
    """A destructive action goes ahead only with its box ``confirm`` ticked.

    Args:
        values: the submitted form.
        error_field: where the page shows the error (next to that action's box).
        page, target: the page to render again (``FormInvalid``).
        kept: what stays as it was, for the message ("The PIN was not cleared.").
        refill: the values to render the page with (default: ``values``).
    Raises:
        FormInvalid: the box was not ticked; nothing was done.
    """
    if values.get("confirm") != "yes":
        raise FormInvalid(page, {error_field: f"{CONFIRM} {kept}"},
                          values if refill is None else refill, target)


def _text(values: Mapping[str, str], name: str) -> str:
    return (values.get(name) or "").strip()


def _check(problems: dict[str, str], name: str, check, *args) -> object:
    try:
        return check(*args)
    except (ValueError, UsageError) as exc:
        problems[name] = str(exc)
        return None


def _whole_number(text: str, low: int, high: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{what} must be a whole number") from None
    if not low <= value <= high:
        raise ValueError(f"{what} must be {low}–{high}")
    return value


# --- sign-in -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignIn:
    name: str
    password: Secret


def sign_in(values: Mapping[str, str], page: str) -> SignIn:
    """Raises FormInvalid: a name or the password is missing."""
    name, password = _text(values, "name"), values.get("password") or ""
    problems = {}
    if not name:
        problems["name"] = "Enter your user name."
    if not password:
        problems["password"] = "Enter your password."
    if problems:
        raise FormInvalid(page, problems, values)
    return SignIn(name=name, password=Secret(password))


# --- users -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewUser:
    name: str
    pin: str | None
    password: Secret | None


def new_user(values: Mapping[str, str]) -> NewUser:
    """Name (required), PIN and self-service password (optional).

    Raises:
        FormInvalid: on page ``users``.
    """
    problems: dict[str, str] = {}
    name = _text(values, "name")
    _check(problems, "name", validate_user_name, name)
    pin = _text(values, "pin") or None
    if pin is not None:
        _check(problems, "pin", validate_pin, pin)
    password = values.get("password") or None
    if password is not None and len(password) < MIN_PASSWORD:
        problems["password"] = f"The password must have at least {MIN_PASSWORD} characters."
    if problems:
        raise FormInvalid("users", problems, values)
    return NewUser(name=name, pin=pin, password=Secret(password) if password else None)


def pin(values: Mapping[str, str], user_name: str) -> str:
    """Raises FormInvalid (page ``user``): not 4–8 letters or digits."""
    text = _text(values, "pin")
    problems: dict[str, str] = {}
    _check(problems, "pin", validate_pin, text)
    if problems:
        raise FormInvalid("user", problems, values, user_name)
    return text


def password(values: Mapping[str, str], user_name: str) -> Secret:
    """Raises FormInvalid (page ``user``): shorter than 8 characters."""
    text = values.get("password") or ""
    if len(text) < MIN_PASSWORD:
        raise FormInvalid("user", {"password": f"The password must have at least "
                                               f"{MIN_PASSWORD} characters."},
                          values, user_name)
    return Secret(text)


@dataclass(frozen=True, slots=True)
class NewToken:
    kind: str
    secret: str | None  # base32 to import; None: generate
    digits: int
    period: int
    serial: str | None


def new_token(values: Mapping[str, str], user_name: str) -> NewToken:
    """Generate a seed (software token) or import one (hardware token).

    Raises:
        FormInvalid: on page ``user``.
    """
    problems: dict[str, str] = {}
    kind = _text(values, "type") or "totp"
    if kind not in ("totp", "hotp"):
        problems["type"] = "Choose TOTP or HOTP."
    digits = _check(problems, "digits", _whole_number, _text(values, "digits") or "6", 6, 8,
                    "Digits")
    if digits is not None and digits not in (6, 8):
        problems["digits"] = "Digits must be 6 or 8."
    period = _check(problems, "period", _whole_number, _text(values, "period") or "30", 10,
                    300, "The period")
    seed = "".join((values.get("seed") or "").split()) or None
    if _text(values, "mode") == "import" and seed is None:
        problems["seed"] = "Enter the token's seed (base32), or choose Generate."
    if _text(values, "mode") != "import":
        seed = None
    serial = _text(values, "serial") or None
    if problems:
        raise FormInvalid("user", problems, values, user_name)
    return NewToken(kind=kind, secret=seed, digits=int(digits), period=int(period),
                    serial=serial)


# --- emergency sets ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssueRequest:
    count: int
    lifetime: timedelta


def issue_request(values: Mapping[str, str], settings: policy.Settings,
                  user_name: str) -> IssueRequest:
    """Count and lifetime: the policy's when left empty; otherwise any value within the
    hard bounds (1–100 codes, 1m–90d), the policy being the default, not a cap: the rule
    of ``issuing.check_request``, the same as the CLI's ``--count``/``--lifetime``.

    Raises:
        FormInvalid: on page ``user``, each bad field with its message.
    """
    problems: dict[str, str] = {}
    count_text = _text(values, "count")
    count = None
    if count_text:
        try:
            count = int(count_text)
        except ValueError:
            problems["count"] = "The number of codes must be a whole number."
        else:
            _check_issue(problems, "count", "The number of codes", settings, count, None)
    lifetime_text = _text(values, "lifetime")
    lifetime = None
    if lifetime_text:
        lifetime = _check(problems, "lifetime", parse_duration, lifetime_text)
        if lifetime is not None:
            _check_issue(problems, "lifetime", "The lifetime", settings, None, lifetime)
    if problems:
        raise FormInvalid("user", problems, values, user_name)
    count, lifetime = issuing.check_request(settings, count, lifetime)
    return IssueRequest(count=count, lifetime=lifetime)


def _check_issue(problems: dict[str, str], name: str, label: str, settings: policy.Settings,
                 count: int | None, lifetime: timedelta | None) -> None:
    try:
        issuing.check_request(settings, count, lifetime)
    except issuing.OutOfRange as exc:
        if exc.field == name:
            problems[name] = _capitalised(exc.message_for(label))
        else:  # the policy itself (a Settings built by hand): not this field's fault
            problems[""] = _capitalised(str(exc))


# --- the self-service policy -------------------------------------------------------------

# Form field name -> settings key. Checkboxes send nothing when unchecked: False.
SETTINGS_FIELDS: Mapping[str, str] = {
    "self_service_enabled": "self_service.enabled",
    "allow_user_request": "emergency.allow_user_request",
    "codes_per_set": "emergency.codes_per_set",
    "code_length": "emergency.code_length",
    "lifetime": "emergency.lifetime",
    "on_token_use": "emergency.on_token_use",
    "max_failures": "lockout.max_failures",
    "lockout_duration": "lockout.duration",
}
CHECKBOXES = frozenset({"self_service_enabled", "allow_user_request"})


def settings_changes(values: Mapping[str, str], current: policy.Settings,
                     rewrite: Collection[str] = ()) -> dict[str, str]:
    """Every setting checked first; returns ``{key: canonical text}`` of those that change,
    and of the keys in ``rewrite`` (stored out of bounds: read as the default, which the
    form shows, so saving it unchanged must still replace the stored row).

    Raises:
        FormInvalid: on page ``settings``, with every bad field (nothing is saved then).
    """
    problems: dict[str, str] = {}
    now = current.as_text()
    changes: dict[str, str] = {}
    for name, key in SETTINGS_FIELDS.items():
        if name in CHECKBOXES:
            raw = "true" if values.get(name) else "false"
        else:
            raw = _text(values, name)
            if not raw:
                problems[name] = "Enter a value."
                continue
        try:
            text = policy.normalise_setting(key, raw)
        except policy.OutOfBounds as exc:  # names the key and its range (issue 20, 1)
            problems[name] = f"Out of range: {exc}."
            continue
        except ValueError as exc:
            problems[name] = _capitalised(str(exc))
            continue
        if text != now[key] or key in rewrite:
            changes[key] = text
    if problems:
        raise FormInvalid("settings", problems, values)
    return changes


def stored_problem(line: str) -> str:
    """``settings.stored_problems``' line as the settings form shows it by its field."""
    return _capitalised(line)


def _capitalised(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


# --- lists -------------------------------------------------------------------------------


def page_number(values: Mapping[str, str]) -> int:
    try:
        return max(1, min(int(_text(values, "page") or 1), 1_000_000))
    except ValueError:
        return 1


@dataclass(frozen=True, slots=True)
class AuditFilter:
    user: str | None
    action: str | None
    result: str | None
    since: timedelta | None
    page: int = 1
    query: Mapping[str, str] = field(default_factory=dict)


AUDIT_RESULTS = ("ok", "error", "accept", "reject")


def audit_filter(values: Mapping[str, str]) -> AuditFilter:
    """Filters of the audit log: user, action, result, since (a duration back from now).

    Raises:
        FormInvalid: on page ``audit``.
    """
    problems: dict[str, str] = {}
    since_text = _text(values, "since")
    since = _check(problems, "since", parse_duration, since_text) if since_text else None
    result = _text(values, "result") or None
    if result is not None and result not in AUDIT_RESULTS:
        problems["result"] = f"Choose one of {', '.join(AUDIT_RESULTS)}."
    if problems:
        raise FormInvalid("audit", problems, values)
    query = {k: _text(values, k) for k in ("user", "action", "result", "since")
             if _text(values, k)}
    return AuditFilter(user=_text(values, "user") or None,
                       action=_text(values, "action") or None, result=result,
                       since=since, page=page_number(values), query=query)

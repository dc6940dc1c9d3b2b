"""The self-service policy (SPEC "Self-service policy"): keys, defaults, parsing, the frozen
``Settings`` snapshot passed to the core.

Stored in the database as text (``key -> value``) so every server sharing it sees the same
policy; this module is the one place that knows their types and ranges: ``BOUNDS`` is the
one table of the hard bounds, applied where a value is saved (``radiusd settings set``, the
admin web's Self-Service Settings form), where a stored value is read (out of bounds: the
default, with a warning from ``stored_problems``) and where a set is issued
(``radiusd.emergency.issuing``, ``radiusd.emergency.codes``).

Must not import: sqlalchemy, twisted, pyrad.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any, Callable, Mapping

from radiusd.duration import format_duration, parse_duration


def _parse_bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"{text!r} is not a boolean (use true or false)")


# The hard bounds of the numeric settings, inclusive (SPEC "Self-service policy"). The same
# bounds hold for what an admin asks for when issuing a set (``--count``/``--lifetime``, the
# admin web's issue form): the settings are the defaults, not a cap (README "Emergency
# access").
BOUNDS: Mapping[str, tuple[Any, Any]] = {
    "emergency.codes_per_set": (1, 100),
    "emergency.code_length": (6, 12),
    "emergency.lifetime": (timedelta(minutes=1), timedelta(days=90)),
    "lockout.max_failures": (1, 1000),
}


class OutOfBounds(ValueError):
    """A value of ``key`` outside ``BOUNDS[key]``; the message names the key and the range.

    Attributes:
        key: the setting (``emergency.lifetime``). low, high: its bounds. value: the value.
    """

    def __init__(self, key: str, value: Any):
        self.key = key
        self.low, self.high = BOUNDS[key]
        self.value = value
        super().__init__(f"{key} must be between {_spell(self.low)} and {_spell(self.high)}"
                         f", not {_spell(value)}")


def _spell(value: Any) -> str:
    return format_duration(value) if isinstance(value, timedelta) else str(value)


def bounds_text(key: str) -> str:
    """``"1–100"``, ``"1m–90d"``: the range of ``key`` as the manual and the forms say it."""
    low, high = BOUNDS[key]
    return f"{_spell(low)}–{_spell(high)}"


def check_bounds(key: str, value: Any) -> Any:
    """``value`` when it lies within ``BOUNDS[key]``.

    Raises:
        OutOfBounds: it does not.
    """
    low, high = BOUNDS[key]
    if not low <= value <= high:
        raise OutOfBounds(key, value)
    return value


def _bounded_int(key: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
        return check_bounds(key, value)

    return parse


def _bounded_duration(key: str) -> Callable[[str], timedelta]:
    def parse(text: str) -> timedelta:
        return check_bounds(key, parse_duration(text))

    return parse


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = str(text).strip().lower()
        if value not in allowed:
            raise ValueError(f"{text!r} is not one of {', '.join(allowed)}")
        return value

    return parse


@dataclass(frozen=True, slots=True)
class SettingSpec:
    key: str
    attribute: str
    default: str
    parse: Callable[[str], object]
    format: Callable[[object], str]
    description: str


def _fmt_bool(value: object) -> str:
    return "true" if value else "false"


def _fmt_duration(value: object) -> str:
    assert isinstance(value, timedelta)
    return format_duration(value)


SPECS: tuple[SettingSpec, ...] = (
    SettingSpec("self_service.enabled", "self_service_enabled", "true", _parse_bool, _fmt_bool,
                "the self-service console is open"),
    SettingSpec("emergency.allow_user_request", "allow_user_request", "true", _parse_bool,
                _fmt_bool, "users may place their token in emergency access mode themselves"),
    SettingSpec("emergency.codes_per_set", "codes_per_set", "10",
                _bounded_int("emergency.codes_per_set"), str,
                f"codes in a set ({bounds_text('emergency.codes_per_set')})"),
    SettingSpec("emergency.code_length", "code_length", "8",
                _bounded_int("emergency.code_length"), str,
                f"digits per code ({bounds_text('emergency.code_length')})"),
    SettingSpec("emergency.lifetime", "lifetime", "72h", _bounded_duration("emergency.lifetime"),
                _fmt_duration,
                f"how long a set stays valid ({bounds_text('emergency.lifetime')})"),
    SettingSpec("emergency.on_token_use", "on_token_use", "revoke",
                _choice("revoke", "keep", "deny"), str,
                "when the real token authenticates while a set is active: revoke, keep, deny"),
    SettingSpec("lockout.max_failures", "max_failures", "5",
                _bounded_int("lockout.max_failures"), str,
                "consecutive failures before the user is locked "
                f"({bounds_text('lockout.max_failures')})"),
    SettingSpec("lockout.duration", "lockout_duration", "15m", parse_duration, _fmt_duration,
                "how long a lockout lasts (0 = until an admin unlocks)"),
)
BY_KEY: Mapping[str, SettingSpec] = {spec.key: spec for spec in SPECS}


@dataclass(frozen=True, slots=True)
class Settings:
    """A snapshot of the policy; defaults are SPEC's."""

    self_service_enabled: bool = True
    allow_user_request: bool = True
    codes_per_set: int = 10
    code_length: int = 8
    lifetime: timedelta = timedelta(hours=72)
    on_token_use: str = "revoke"
    max_failures: int = 5
    lockout_duration: timedelta = timedelta(minutes=15)

    def as_text(self) -> dict[str, str]:
        """``{key: value}`` in SPEC order, values spelled as ``settings set`` takes them."""
        return {spec.key: spec.format(getattr(self, spec.attribute)) for spec in SPECS}


def parse_setting(key: str, value: str) -> tuple[str, object]:
    """Validate one ``settings set KEY VALUE``; returns (attribute, parsed value).

    Raises:
        KeyError: unknown key (message lists the known ones).
        ValueError: bad value for that key (message says what is expected).
    """
    spec = BY_KEY.get(key)
    if spec is None:
        raise KeyError(f"unknown setting {key!r} (known: {', '.join(BY_KEY)})")
    return spec.attribute, spec.parse(value)


def normalise_setting(key: str, value: str) -> str:
    """The canonical text of a valid value (``72H`` → ``72h``, ``Yes`` → ``true``)."""
    attribute, parsed = parse_setting(key, value)
    return BY_KEY[key].format(parsed)


def settings_from_rows(rows: Mapping[str, str]) -> Settings:
    """Build ``Settings`` from stored text rows; unknown or invalid rows fall back to defaults.

    Values are validated when written, so an invalid stored row was written by hand, or by
    a version that did not check the bounds (e.g. ``emergency.lifetime = 1000d``): keeping
    the default is the safe reading, and every issue path keeps working (issue 20, 1).
    ``stored_problems`` says which rows were not used, for the shell to warn.
    """
    values: dict[str, object] = {}
    for spec in SPECS:
        text = rows.get(spec.key)
        if text is None:
            continue
        try:
            values[spec.attribute] = spec.parse(text)
        except ValueError:
            continue
    return Settings(**values)


def stored_problems(rows: Mapping[str, str]) -> dict[str, str]:
    """``{key: line}`` for each stored row ``settings_from_rows`` does not use (its default
    applies instead), in SPEC order.

    E.g. ``stored setting emergency.lifetime = '1000d' is not used (emergency.lifetime
    must be between 1m and 90d, not 1000d): the default 72h applies until a valid value is
    saved``. Unknown keys are not reported (a newer version's rows).
    """
    problems = {}
    for spec in SPECS:
        text = rows.get(spec.key)
        if text is None:
            continue
        try:
            spec.parse(text)
        except ValueError as exc:
            problems[spec.key] = (f"stored setting {spec.key} = {text!r} is not used ({exc}): "
                                  f"the default {spec.default} applies until a valid value "
                                  "is saved")
    return problems


assert {f.name for f in fields(Settings)} == {spec.attribute for spec in SPECS}

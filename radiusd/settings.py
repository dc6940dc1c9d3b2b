"""The self-service policy (SPEC "Self-service policy"): keys, defaults, parsing, the frozen
``Settings`` snapshot passed to the core.

Stored in the database as text (``key -> value``) so every server sharing it sees the same
policy; this module is the one place that knows their types and ranges.

Must not import: sqlalchemy, twisted, pyrad.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Callable, Mapping

from radiusd.duration import format_duration, parse_duration


def _parse_bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"{text!r} is not a boolean (use true or false)")


def _int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range ({low}–{high})")
        return value

    return parse


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = str(text).strip().lower()
        if value not in allowed:
            raise ValueError(f"{text!r} is not one of {', '.join(allowed)}")
        return value

    return parse


def _positive_duration(text: str) -> timedelta:
    value = parse_duration(text)
    if value <= timedelta(0):
        raise ValueError(f"{text!r} must be longer than 0")
    return value


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
    SettingSpec("emergency.codes_per_set", "codes_per_set", "10", _int_range(1, 100), str,
                "codes in a set (1–100)"),
    SettingSpec("emergency.code_length", "code_length", "8", _int_range(6, 12), str,
                "digits per code (6–12)"),
    SettingSpec("emergency.lifetime", "lifetime", "72h", _positive_duration, _fmt_duration,
                "how long a set stays valid"),
    SettingSpec("emergency.on_token_use", "on_token_use", "revoke",
                _choice("revoke", "keep", "deny"), str,
                "when the real token authenticates while a set is active: revoke, keep, deny"),
    SettingSpec("lockout.max_failures", "max_failures", "5", _int_range(1, 1000), str,
                "consecutive failures before the user is locked"),
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

    Values are validated when written, so an invalid stored row means someone edited the
    database by hand: keeping the default is the safe reading.
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


assert {f.name for f in fields(Settings)} == {spec.attribute for spec in SPECS}

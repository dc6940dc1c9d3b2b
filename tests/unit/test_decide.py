"""decide_access over Subject/Settings/now: each SPEC authentication rule with its reason and
commits, plus a fuzzed property (never raises, never accepts a wrong passcode)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from radiusd import otp
from radiusd.crypto import Keys
from radiusd.decide import decide_access
from radiusd.model import (Accept, AdvanceToken, PacketCode, RadiusRequest, RecordFailure, Reject,
                           RejectReason, ResetFailures, Secret, Subject, Token, TokenKind)
from radiusd.settings import Settings

KEYS = Keys.from_master(b"k" * 32)
NOW = datetime(2024, 5, 1, 12, 0, 10, tzinfo=timezone.utc)
STEP = otp.totp_step(NOW, 30)
USER = "alice"
PIN = b"4821"
USER_ID = 7
SEED_TOTP = b"totp-seed-0123456789"
SEED_HOTP = b"hotp-seed-0123456789"
SEED_TOTP8 = b"totp8-seed-012345678"
_nonces = itertools.count()


def fake_random(n: int) -> bytes:
    """Deterministic, distinct bytes per call (nonces and salts in tests only)."""
    return next(_nonces).to_bytes(n, "big")


PIN_HASH = KEYS.hash_pin(Secret(PIN), fake_random)


def totp(token_id: int = 1, serial: str = "T1", *, seed: bytes = SEED_TOTP, digits: int = 6,
         last_used: int = STEP - 5, owner: str = USER, algorithm: str = "SHA1") -> Token:
    return Token(id=token_id, serial=serial, kind=TokenKind.TOTP, digits=digits, period=30,
                 sealed_seed=KEYS.seal_seed(seed, owner, serial, fake_random),
                 last_used=last_used, algorithm=algorithm)


def hotp(token_id: int = 2, serial: str = "H1", *, seed: bytes = SEED_HOTP, digits: int = 6,
         last_used: int = 4) -> Token:
    return Token(id=token_id, serial=serial, kind=TokenKind.HOTP, digits=digits, period=30,
                 sealed_seed=KEYS.seal_seed(seed, USER, serial, fake_random),
                 last_used=last_used)


def subject(*tokens: Token, pin_hash: bytes | None = PIN_HASH, failures: int = 0,
            locked_at: datetime | None = None, is_disabled: bool = False) -> Subject:
    return Subject(id=USER_ID, name=USER, is_disabled=is_disabled, pin_hash=pin_hash,
                   failures=failures, locked_at=locked_at,
                   tokens=tokens if tokens else (totp(),))


NO_PIN = None


def code_at(step: int, seed: bytes = SEED_TOTP, digits: int = 6) -> bytes:
    return otp.hotp(seed, step, digits).encode()


def wrong_code() -> bytes:
    """A 6-digit code that none of the steps STEP-1..STEP+1 shows."""
    window = {code_at(step) for step in range(STEP - 1, STEP + 2)}
    return next(c for c in (b"000000", b"111111", b"222222") if c not in window)


def request(password: bytes | None, *, has_chap: bool = False) -> RadiusRequest:
    return RadiusRequest(code=PacketCode.ACCESS_REQUEST, identifier=1,
                         authenticator=bytes(16), attributes=(), user_name=USER,
                         password=None if password is None else Secret(password),
                         has_chap_password=has_chap)


def failure(restart: bool = False) -> tuple[RecordFailure]:
    return (RecordFailure(USER_ID, at=NOW, max_failures=5, restart=restart),)


def accept_totp(step: int, drift: int = 0, *, reset: bool = False, token_id: int = 1,
                serial: str = "T1") -> Accept:
    commits = (AdvanceToken(token_id, step),) + ((ResetFailures(USER_ID),) if reset else ())
    return Accept(commits=commits, authenticator=f"totp:{serial}", detail={"drift": drift})


def reject(reason: RejectReason, tokens: int = 1, *, restart: bool = False,
           **detail: object) -> Reject:
    return Reject(reason, commits=failure(restart), detail={"tokens": tokens, **detail})


@dataclass(frozen=True)
class Case:
    name: str
    subject: Subject | None
    password: bytes | None
    expected: Accept | Reject
    settings: Settings = field(default_factory=Settings)
    now: datetime = NOW
    has_chap: bool = False


LOCKED_AT = NOW - timedelta(minutes=5)
EXPIRED_LOCK_AT = NOW - timedelta(minutes=15)  # lockout.duration default 15m: just over

CASES = [
    # --- accepted ---------------------------------------------------------------------------
    Case("pin_and_totp_accepted_advances_token",
         subject(), PIN + code_at(STEP), accept_totp(STEP)),
    Case("accept_resets_failures_after_earlier_failures",
         subject(failures=3), PIN + code_at(STEP), accept_totp(STEP, reset=True)),
    Case("accept_after_lock_expired_resets_failures_and_lock",
         subject(failures=5, locked_at=EXPIRED_LOCK_AT), PIN + code_at(STEP),
         accept_totp(STEP, reset=True)),
    Case("code_alone_accepted_for_user_without_pin",
         subject(pin_hash=NO_PIN), code_at(STEP), accept_totp(STEP)),
    Case("totp_one_step_behind_accepted",
         subject(), PIN + code_at(STEP - 1), accept_totp(STEP - 1, drift=-1)),
    Case("totp_one_step_ahead_accepted",
         subject(), PIN + code_at(STEP + 1), accept_totp(STEP + 1, drift=1)),
    Case("totp_next_step_after_used_one_accepted",
         subject(totp(last_used=STEP - 1)), PIN + code_at(STEP), accept_totp(STEP)),
    Case("hotp_three_ahead_resynchronises_to_that_counter",
         subject(hotp(last_used=4)), PIN + code_at(8, SEED_HOTP),
         Accept(commits=(AdvanceToken(2, 8),), authenticator="hotp:H1", detail={"drift": 3})),
    Case("hotp_ten_ahead_accepted",
         subject(hotp(last_used=4)), PIN + code_at(14, SEED_HOTP),
         Accept(commits=(AdvanceToken(2, 14),), authenticator="hotp:H1", detail={"drift": 9})),
    Case("six_digit_token_accepted_beside_eight_digit_one",
         subject(totp(digits=6), totp(3, "T8", seed=SEED_TOTP8, digits=8)),
         PIN + code_at(STEP), accept_totp(STEP)),
    Case("eight_digit_token_accepted_beside_six_digit_one",
         subject(totp(digits=6), totp(3, "T8", seed=SEED_TOTP8, digits=8)),
         PIN + code_at(STEP, SEED_TOTP8, 8), accept_totp(STEP, token_id=3, serial="T8")),
    Case("second_token_accepted_when_first_seed_does_not_open",
         subject(totp(owner="mallory"), hotp()), PIN + code_at(5, SEED_HOTP),
         Accept(commits=(AdvanceToken(2, 5),), authenticator="hotp:H1",
                detail={"drift": 0, "seal_error": "T1"})),
    # --- refused before the passcode: no failure counted ------------------------------------
    Case("chap_rejected", subject(), None, Reject(RejectReason.CHAP_NOT_SUPPORTED),
         has_chap=True),
    Case("chap_rejected_even_with_user_password", subject(), PIN + code_at(STEP),
         Reject(RejectReason.CHAP_NOT_SUPPORTED), has_chap=True),
    Case("missing_password_rejected", subject(), None, Reject(RejectReason.NO_PASSWORD)),
    Case("unknown_user_rejected", None, PIN + code_at(STEP),
         Reject(RejectReason.UNKNOWN_USER)),
    Case("disabled_user_rejected_with_right_passcode", subject(is_disabled=True),
         PIN + code_at(STEP), Reject(RejectReason.DISABLED)),
    Case("locked_user_rejected_with_right_passcode", subject(failures=5, locked_at=LOCKED_AT),
         PIN + code_at(STEP), Reject(RejectReason.LOCKED)),
    Case("locked_user_wrong_passcode_does_not_extend_lock",
         subject(failures=5, locked_at=LOCKED_AT), b"0000000000", Reject(RejectReason.LOCKED)),
    Case("lock_with_duration_zero_lasts_until_unlocked",
         subject(failures=5, locked_at=NOW - timedelta(days=365)), PIN + code_at(STEP),
         Reject(RejectReason.LOCKED), settings=Settings(lockout_duration=timedelta(0))),
    Case("lock_one_second_before_expiry_still_locked",
         subject(failures=5, locked_at=NOW - timedelta(minutes=15) + timedelta(seconds=1)),
         PIN + code_at(STEP), Reject(RejectReason.LOCKED)),
    # --- refused passcode: failure counted -------------------------------------------------
    Case("wrong_pin_rejected", subject(), b"4822" + code_at(STEP), reject(RejectReason.BAD_PIN)),
    Case("wrong_code_rejected", subject(), PIN + wrong_code(), reject(RejectReason.BAD_CODE)),
    Case("pin_missing_rejected", subject(), code_at(STEP), reject(RejectReason.BAD_PIN)),
    Case("pin_sent_by_user_without_pin_rejected", subject(pin_hash=NO_PIN),
         PIN + code_at(STEP), reject(RejectReason.BAD_PIN)),
    Case("replayed_totp_step_rejected", subject(totp(last_used=STEP)), PIN + code_at(STEP),
         reject(RejectReason.REPLAYED_CODE)),
    Case("earlier_totp_step_after_later_used_rejected_as_replay",
         subject(totp(last_used=STEP)), PIN + code_at(STEP - 1),
         reject(RejectReason.REPLAYED_CODE)),
    Case("totp_two_steps_behind_rejected", subject(), PIN + code_at(STEP - 2),
         reject(RejectReason.BAD_CODE)),
    Case("totp_two_steps_ahead_rejected", subject(), PIN + code_at(STEP + 2),
         reject(RejectReason.BAD_CODE)),
    Case("replayed_hotp_counter_rejected", subject(hotp(last_used=4)),
         PIN + code_at(4, SEED_HOTP), reject(RejectReason.REPLAYED_CODE)),
    Case("hotp_eleven_ahead_rejected", subject(hotp(last_used=4)),
         PIN + code_at(15, SEED_HOTP), reject(RejectReason.BAD_CODE)),
    Case("eight_digit_code_with_wrong_pin_rejected",
         subject(totp(digits=6), totp(3, "T8", seed=SEED_TOTP8, digits=8)),
         b"1111" + code_at(STEP, SEED_TOTP8, 8), reject(RejectReason.BAD_PIN, tokens=2)),
    Case("non_digit_code_rejected", subject(), PIN + b"93a201", reject(RejectReason.BAD_CODE)),
    Case("too_short_passcode_rejected", subject(), b"12345", reject(RejectReason.BAD_CODE)),
    Case("empty_passcode_rejected", subject(), b"", reject(RejectReason.BAD_CODE)),
    Case("user_without_tokens_rejected", Subject(USER_ID, USER, False, PIN_HASH, 0, None, ()),
         PIN + code_at(STEP), reject(RejectReason.NO_TOKEN, tokens=0)),
    Case("failure_after_expired_lock_restarts_count",
         subject(failures=5, locked_at=EXPIRED_LOCK_AT), b"4822" + code_at(STEP),
         reject(RejectReason.BAD_PIN, restart=True)),
    Case("seed_that_does_not_open_is_skipped_not_crashed",
         subject(totp(owner="mallory")), PIN + code_at(STEP),
         reject(RejectReason.BAD_CODE, seal_error="T1")),
    Case("token_with_unknown_algorithm_is_skipped_not_crashed",
         subject(totp(algorithm="MD5")), PIN + code_at(STEP),
         reject(RejectReason.BAD_CODE, token_error="T1")),
    Case("max_failures_comes_from_settings", subject(), b"4822" + code_at(STEP),
         Reject(RejectReason.BAD_PIN, detail={"tokens": 1},
                commits=(RecordFailure(USER_ID, at=NOW, max_failures=3),)),
         settings=Settings(max_failures=3)),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_decide_access(case: Case) -> None:
    verdict = decide_access(request(case.password, has_chap=case.has_chap), case.subject,
                            case.settings, KEYS, case.now)
    assert verdict == case.expected


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_verdict_never_holds_passcode_pin_or_code(case: Case) -> None:
    verdict = decide_access(request(case.password, has_chap=case.has_chap), case.subject,
                            case.settings, KEYS, case.now)
    # Only detail, reply messages and authenticator reach the audit row as text.
    text = repr((getattr(verdict, "detail", {}), getattr(verdict, "reply_messages", ()),
                 getattr(verdict, "authenticator", "")))
    for secret in (PIN, code_at(STEP), case.password or b"\x00" * 4):
        assert secret.decode("latin-1") not in text
    for seed in (SEED_TOTP, SEED_HOTP, SEED_TOTP8):
        assert seed.decode() not in text


def test_decide_does_not_crash_on_token_with_bad_digits() -> None:
    token = replace(totp(), digits=0)
    verdict = decide_access(request(PIN + code_at(STEP)), subject(token), Settings(), KEYS, NOW)
    assert verdict == reject(RejectReason.BAD_CODE)


# --- property: fuzzed passcodes --------------------------------------------------------------

pins = st.one_of(st.none(), st.text("0123456789abcXYZ", min_size=4, max_size=8))
passwords = st.one_of(
    st.binary(max_size=24),
    st.tuples(st.binary(max_size=8), st.text("0123456789", min_size=6, max_size=8)).map(
        lambda parts: parts[0] + parts[1].encode()),
)


@hypothesis_settings(max_examples=300)
@given(seed=st.binary(min_size=10, max_size=64), pin=pins, password=passwords,
       kind=st.sampled_from(TokenKind), digits=st.sampled_from([6, 8]),
       last_used=st.integers(min_value=-1, max_value=2**40), failures=st.integers(0, 4))
def test_decide_never_raises_and_accepts_only_a_legit_passcode(
        seed: bytes, pin: str | None, password: bytes, kind: TokenKind, digits: int,
        last_used: int, failures: int) -> None:
    if kind is TokenKind.TOTP:
        last_used = min(last_used, STEP + 2)
        values = [s for s in range(STEP - 1, STEP + 2) if s > last_used]
    else:
        values = list(range(last_used + 1, last_used + 11))
    token = Token(id=1, serial="S", kind=kind, digits=digits, period=30,
                  sealed_seed=KEYS.seal_seed(seed, USER, "S", fake_random), last_used=last_used)
    pin_bytes = pin.encode() if pin is not None else b""
    who = Subject(id=USER_ID, name=USER, is_disabled=False,
                  pin_hash=KEYS.hash_pin(Secret(pin_bytes), fake_random) if pin else None,
                  failures=failures, locked_at=None, tokens=(token,))
    legit = {pin_bytes + otp.hotp(seed, value, digits).encode(): value for value in values}

    verdict = decide_access(request(password), who, Settings(), KEYS, NOW)

    if isinstance(verdict, Accept):
        assert password in legit
        assert verdict.commits[0] == AdvanceToken(1, legit[password])
    else:
        assert isinstance(verdict, Reject)
        assert verdict.commits == failure()
        assert set(verdict.detail) == {"tokens"}  # no passcode, PIN, code or seed


def test_legit_passcode_of_the_property_is_accepted() -> None:
    """The property above is not vacuous: its legit passcode does get in."""
    seed = bytes(range(10))
    token = Token(id=1, serial="S", kind=TokenKind.HOTP, digits=8, period=30,
                  sealed_seed=KEYS.seal_seed(seed, USER, "S", fake_random), last_used=-1)
    who = Subject(USER_ID, USER, False, None, 0, None, (token,))
    verdict = decide_access(request(otp.hotp(seed, 0, 8).encode()), who, Settings(), KEYS, NOW)
    assert verdict == Accept(commits=(AdvanceToken(1, 0),), authenticator="hotp:S",
                             detail={"drift": 0})

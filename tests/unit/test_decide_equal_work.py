"""Every Reject path does the same keyed-hash work (issue 21, 10): counted, not timed.

An unknown user's Reject was 0.45 ms faster than a known user's, and a wrong PIN's 0.20 ms
faster than a right PIN with a wrong code's: the replies were identical, the work was not.
These tests count the HMAC computations (``HmacKey.digest``: PIN hashes, TOTP codes) and the
sealed-seed openings (AES-GCM) of one decision per path, with the real keys and code.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from radiusd import otp
from radiusd.crypto import Keys
from radiusd.decide import decide_access
from radiusd.keyedhash import HmacKey
from radiusd.model import (Accept, PacketCode, RadiusRequest, Reject, RejectReason, Secret,
                           Subject, Token, TokenKind)
from radiusd.settings import Settings

KEYS = Keys.from_master(b"e" * 32)
NOW = datetime(2026, 12, 4, 12, 0, 10, tzinfo=timezone.utc)
STEP = otp.totp_step(NOW, 30)
SEED = b"equal-work-seed-0123"
PIN = b"4821"
_nonces = itertools.count(1)


def fake_random(size: int) -> bytes:
    return next(_nonces).to_bytes(size, "big")


def totp_token(serial: str = "T1") -> Token:
    return Token(id=1, serial=serial, kind=TokenKind.TOTP, digits=6, period=30,
                 sealed_seed=KEYS.seal_seed(SEED, "alice", serial, fake_random),
                 last_used=STEP - 5)


def alice(*, pin: bytes | None = PIN, tokens: tuple[Token, ...] | None = None,
          is_disabled: bool = False, locked_at: datetime | None = None) -> Subject:
    return Subject(id=7, name="alice", is_disabled=is_disabled,
                   pin_hash=KEYS.hash_pin(Secret(pin), fake_random) if pin else None,
                   failures=0, locked_at=locked_at,
                   tokens=(totp_token(),) if tokens is None else tokens)


def right_code() -> bytes:
    return otp.hotp(SEED, STEP, 6).encode()


def wrong_code() -> bytes:
    window = {otp.hotp(SEED, step, 6).encode() for step in range(STEP - 1, STEP + 2)}
    return next(code for code in (b"000000", b"111111", b"222222") if code not in window)


def request(password: bytes, user: str = "alice") -> RadiusRequest:
    return RadiusRequest(code=PacketCode.ACCESS_REQUEST, identifier=1,
                         authenticator=bytes(16), attributes=(), user_name=user,
                         password=Secret(password))


@pytest.fixture()
def count(monkeypatch):
    """Counts HMAC computations and seed openings while a decision runs."""
    counts: Counter[str] = Counter()
    digest, open_seed = HmacKey.digest, Keys.open_seed

    def counted_digest(self, message):
        counts["hmac"] += 1
        return digest(self, message)

    def counted_open(self, sealed, owner, serial):
        counts["open_seed"] += 1
        return open_seed(self, sealed, owner, serial)

    monkeypatch.setattr(HmacKey, "digest", counted_digest)
    monkeypatch.setattr(Keys, "open_seed", counted_open)

    def decide(subject: Subject | None, password: bytes) -> tuple[Accept | Reject, Counter]:
        counts.clear()
        verdict = decide_access(request(password), subject, Settings(), KEYS, NOW)
        return verdict, Counter(counts)
    return decide


LOCKED = NOW - timedelta(minutes=1)

# (path, subject, passcode, the reason the Reject must still give)
PATHS = [
    ("right PIN, wrong code", alice(), PIN + wrong_code(), RejectReason.BAD_CODE),
    ("wrong PIN", alice(), b"9999" + wrong_code(), RejectReason.BAD_PIN),
    ("wrong PIN, right code", alice(), b"9999" + right_code(), RejectReason.BAD_PIN),
    ("no PIN sent", alice(), wrong_code(), RejectReason.BAD_PIN),
    ("unknown user", None, PIN + wrong_code(), RejectReason.UNKNOWN_USER),
    ("unknown user, code alone", None, wrong_code(), RejectReason.UNKNOWN_USER),
    ("user without PIN, wrong code", alice(pin=None), wrong_code(), RejectReason.BAD_CODE),
    ("user without PIN, a PIN sent", alice(pin=None), PIN + wrong_code(),
     RejectReason.BAD_PIN),
    ("disabled user", alice(is_disabled=True), PIN + wrong_code(), RejectReason.DISABLED),
    ("locked user", alice(locked_at=LOCKED), PIN + right_code(), RejectReason.LOCKED),
    ("user without token", alice(tokens=()), PIN + wrong_code(), RejectReason.NO_TOKEN),
]


def test_every_reject_path_computes_the_same_keyed_hashes(count):
    """Issue 21 (10): unknown user, wrong PIN, right PIN + wrong code, user without PIN,
    disabled, locked, without token: the same HMACs and seed openings, counted."""
    work = {}
    for path, subject, passcode, reason in PATHS:
        verdict, counts = count(subject, passcode)
        assert isinstance(verdict, Reject) and verdict.reason is reason, path
        work[path] = counts
    reference = work["right PIN, wrong code"]
    # One PIN hash, one seed opened, the three codes of the TOTP window (RFC 6238 ±1 step).
    assert reference == Counter(hmac=4, open_seed=1)
    assert {path: counts for path, counts in work.items() if counts != reference} == {}


def test_the_decoy_never_accepts_and_the_real_user_still_does(count):
    """Issue 21 (10): the extra work changes no verdict: the right passcode accepts, with
    the same work as a Reject."""
    verdict, _ = count(alice(), PIN + right_code())
    assert isinstance(verdict, Accept) and verdict.authenticator == "totp:T1"
    verdict, _ = count(None, right_code())
    assert isinstance(verdict, Reject) and verdict.reason is RejectReason.UNKNOWN_USER

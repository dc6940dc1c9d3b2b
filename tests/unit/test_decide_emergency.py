"""decide_access with one-time emergency codes: PIN first, set active, unused, inside the
perimeter; the reply; the on_token_use policies; nothing used up by a refusal."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import netaddr
import pytest

from radiusd import decide as decide_module
from radiusd import otp
from radiusd.crypto import Keys
from radiusd.decide import Origin, decide_access
from radiusd.emergency.codes import hash_codes
from radiusd.model import (Accept, AdvanceToken, EmergencyCode, EmergencySet, PacketCode,
                           RadiusRequest, RecordFailure, Reject, RejectReason,
                           RevokeEmergencySet, Secret, Subject, Token, TokenKind,
                           UseEmergencyCode)
from radiusd.settings import Settings

KEYS = Keys.from_master(b"e" * 32)
NOW = datetime(2026, 11, 28, 12, 0, 10, tzinfo=timezone.utc)
USER_ID = 11
SET_ID = "0123456789abcdef0123456789abcdef"
CODES = [b"48201937", b"11223344", b"90817263"]
SEED = b"emergency-test-seed!"
_counter = itertools.count()
PERIMETER = (netaddr.IPNetwork("10.0.0.0/8"), netaddr.IPNetwork("10.20.0.0/16"))
INSIDE = Origin(client="vpn", nas_address="10.20.1.1", check="nas", networks=PERIMETER,
                ip_set=netaddr.IPSet(PERIMETER))


def _random(n: int) -> bytes:
    return next(_counter).to_bytes(n, "big")


PIN_HASH = KEYS.hash_pin(Secret("4821"), _random)
HASHES = hash_codes(KEYS, SET_ID, USER_ID, [Secret(c) for c in CODES])


def emergency_set(*, used=(), expires_in=timedelta(hours=72), revoked: bool = False,
                  set_id: str = SET_ID, hashes=HASHES) -> EmergencySet:
    return EmergencySet(
        id=set_id, user_id=USER_ID, code_length=8, issued_at=NOW - timedelta(hours=1),
        expires_at=NOW + expires_in, issued_by="cli", reason="lost token",
        revoked_at=NOW - timedelta(minutes=1) if revoked else None,
        codes=tuple(EmergencyCode(id=100 + i, position=i + 1, code_hash=h,
                                  used_at=NOW - timedelta(minutes=5) if i in used else None)
                    for i, h in enumerate(hashes)))


def token() -> Token:
    return Token(id=1, serial="T1", kind=TokenKind.TOTP, digits=6, period=30,
                 sealed_seed=KEYS.seal_seed(SEED, "alice", "T1", _random), last_used=0)


def subject(emergency: EmergencySet | None, *, pin_hash=PIN_HASH, tokens=()) -> Subject:
    return Subject(id=USER_ID, name="alice", is_disabled=False, pin_hash=pin_hash, failures=0,
                   locked_at=None, tokens=tuple(tokens), emergency=emergency)


def request(password: bytes, **attributes) -> RadiusRequest:
    return RadiusRequest(code=PacketCode.ACCESS_REQUEST, identifier=1, authenticator=bytes(16),
                         attributes=(), user_name="alice", password=Secret(password),
                         **attributes)


def decide(password: bytes, emergency, *, origin=INSIDE, settings=Settings(), **kwargs):
    return decide_access(request(password, **kwargs.pop("attributes", {})),
                         subject(emergency, **kwargs), settings, KEYS, NOW, origin)


def test_pin_and_code_from_inside_accepted_with_reply_message():
    verdict = decide(b"4821" + CODES[1], emergency_set())
    assert isinstance(verdict, Accept)
    assert verdict.commits == (UseEmergencyCode(101, SET_ID, NOW, "vpn"),)
    assert verdict.reply_messages[0].startswith("Emergency code accepted: 2 codes left, "
                                                "valid until 2026-12-01T12:00:10")
    assert verdict.authenticator == f"emergency:{SET_ID}"
    assert verdict.detail["codes_left"] == 2 and verdict.detail["code"] == 2


def test_warning_when_two_or_fewer_codes_left():
    verdict = decide(b"4821" + CODES[0], emergency_set(used={1}))
    assert isinstance(verdict, Accept) and len(verdict.reply_messages) == 2


@pytest.mark.parametrize("case,password,emergency,reason", [
    ("used code", b"4821" + CODES[0], emergency_set(used={0}), RejectReason.CODE_USED),
    ("expired", b"4821" + CODES[0], emergency_set(expires_in=timedelta(0)),
     RejectReason.SET_EXPIRED),
    ("revoked", b"4821" + CODES[0], emergency_set(revoked=True), RejectReason.SET_REVOKED),
    ("wrong PIN", b"9999" + CODES[0], emergency_set(), RejectReason.BAD_PIN),
    ("code alone with PIN", CODES[0], emergency_set(), RejectReason.BAD_PIN),
    ("wrong code", b"4821" + b"00000000", emergency_set(), RejectReason.BAD_CODE),
    ("non-digits", b"4821" + b"4820193x", emergency_set(), RejectReason.BAD_CODE),
    ("too short", b"123", emergency_set(), RejectReason.BAD_CODE),
    ("other set's code", b"4821" + CODES[0],
     emergency_set(set_id="f" * 32), RejectReason.BAD_CODE),
])
def test_refusals_use_up_nothing_and_count_at_most_a_failure(case, password, emergency, reason):
    verdict = decide(password, emergency)
    assert isinstance(verdict, Reject) and verdict.reason is reason, case
    assert all(isinstance(c, RecordFailure) for c in verdict.commits)
    assert not any(isinstance(c, UseEmergencyCode) for c in verdict.commits)
    for code in CODES:
        assert code.decode() not in repr(verdict)


def test_user_without_pin_sends_the_code_alone():
    assert isinstance(decide(CODES[2], emergency_set(), pin_hash=None), Accept)
    refused = decide(b"4821" + CODES[2], emergency_set(), pin_hash=None)
    assert isinstance(refused, Reject) and refused.reason is RejectReason.BAD_PIN


def _origin(check: str, nas: str) -> Origin:
    return replace(INSIDE, check=check, nas_address=nas)


@pytest.mark.parametrize("origin,attributes,is_inside", [
    (_origin("nas", "10.20.1.1"), {}, True),
    (_origin("nas", "192.0.2.7"), {}, False),
    (_origin("user", "192.0.2.7"), {"calling_station_id": "10.1.2.3"}, True),
    (_origin("user", "10.20.1.1"), {"calling_station_id": "203.0.113.9"}, False),
    (_origin("user", "10.20.1.1"), {"calling_station_id": "00-11-22-33-44-55"}, False),
    (_origin("user", "10.20.1.1"), {"framed_ip_address": "10.9.9.9"}, True),
    (_origin("user", "10.20.1.1"), {}, False),
    (_origin("both", "10.20.1.1"), {"calling_station_id": "10.1.2.3"}, True),
    (_origin("both", "192.0.2.7"), {"calling_station_id": "10.1.2.3"}, False),
])
def test_perimeter(origin, attributes, is_inside):
    verdict = decide(b"4821" + CODES[0], emergency_set(), origin=origin, attributes=attributes)
    if is_inside:
        assert isinstance(verdict, Accept)
    else:
        assert isinstance(verdict, Reject) and verdict.reason is RejectReason.OUTSIDE_PERIMETER
        assert "perimeter" in verdict.detail  # the address and rule, for the audit row


def test_outside_perimeter_records_address_and_rule():
    verdict = decide(b"4821" + CODES[0], emergency_set(), origin=_origin("nas", "192.0.2.7"))
    assert "192.0.2.7" in verdict.detail["perimeter"]


def _token_passcode() -> bytes:
    return b"4821" + otp.hotp(SEED, otp.totp_step(NOW, 30), 6).encode()


@pytest.mark.parametrize("policy", ["revoke", "keep", "deny"])
def test_on_token_use_policies(policy):
    settings = Settings(on_token_use=policy)
    verdict = decide(_token_passcode(), emergency_set(), settings=settings, tokens=[token()])
    if policy == "deny":
        assert isinstance(verdict, Reject) and verdict.reason is RejectReason.TOKEN_DENIED
        assert verdict.commits == ()
        return
    assert isinstance(verdict, Accept)
    revokes = [c for c in verdict.commits if isinstance(c, RevokeEmergencySet)]
    assert any(isinstance(c, AdvanceToken) for c in verdict.commits)
    if policy == "revoke":
        assert revokes == [RevokeEmergencySet(SET_ID, NOW, "token used")]
        assert verdict.detail["revoked_set"] == SET_ID
    else:
        assert revokes == []
    # the emergency codes still work under "keep" and "deny"
    if policy != "revoke":
        assert isinstance(decide(b"4821" + CODES[0], emergency_set(), settings=settings,
                                 tokens=[token()]), Accept)


def test_token_policy_ignores_an_ended_set():
    settings = Settings(on_token_use="deny")
    verdict = decide(_token_passcode(), emergency_set(revoked=True), settings=settings,
                     tokens=[token()])
    assert isinstance(verdict, Accept)
    assert not any(isinstance(c, RevokeEmergencySet) for c in verdict.commits)


def test_a_precomputed_nas_verdict_is_used_as_is():
    from radiusd.emergency.rules import PerimeterResult, check_nas_perimeter
    precomputed = check_nas_perimeter(networks=PERIMETER, ip_set=INSIDE.ip_set,
                                      nas_address="10.20.1.1")
    assert precomputed.is_inside
    assert isinstance(decide(b"4821" + CODES[0], emergency_set(),
                             origin=replace(INSIDE, nas_perimeter=precomputed)), Accept)
    outside = PerimeterResult(is_inside=False, address="10.20.1.1", rule=None,
                              reason="nas 10.20.1.1 outside the perimeter")
    verdict = decide(b"4821" + CODES[0], emergency_set(),
                     origin=replace(INSIDE, nas_perimeter=outside))
    assert isinstance(verdict, Reject) and verdict.reason is RejectReason.OUTSIDE_PERIMETER


# An 8-digit token beside the 8-digit codes: the PIN checks out for both splits, so the
# token's sealed seed is opened when the token is tried (here it cannot be: it was sealed
# for another owner, and the verdict's detail says "seal_error").
UNOPENABLE = Token(id=1, serial="T1", kind=TokenKind.TOTP, digits=8, period=30,
                   sealed_seed=KEYS.seal_seed(SEED, "mallory", "T1", _random), last_used=0)


def test_an_active_set_is_tried_before_the_token():
    verdict = decide(b"4821" + CODES[0], emergency_set(), tokens=[UNOPENABLE])
    assert isinstance(verdict, Accept) and verdict.authenticator == f"emergency:{SET_ID}"
    assert "seal_error" not in verdict.detail
    # The token's own passcode still reaches the token once the set does not match.
    verdict = decide(b"4821" + b"00000000", emergency_set(), tokens=[UNOPENABLE])
    assert isinstance(verdict, Reject) and verdict.detail["seal_error"] == "T1"


@pytest.mark.parametrize("ended", [{"revoked": True}, {"expires_in": timedelta(0)}])
def test_an_ended_set_comes_after_the_token(ended, monkeypatch):
    # A set stays the user's latest after it ended, and the token is back in use: its
    # passcode is accepted with one PIN check, the token's (the set's split of it, 8
    # digits, would leave a 2-character PIN part to check first).
    pin_parts = []

    def is_pin_ok(subject, keys, pin_part):
        pin_parts.append(pin_part)
        return real_is_pin_ok(subject, keys, pin_part)

    real_is_pin_ok = decide_module._is_pin_ok
    monkeypatch.setattr(decide_module, "_is_pin_ok", is_pin_ok)
    verdict = decide(_token_passcode(), emergency_set(**ended), tokens=[token()])
    assert isinstance(verdict, Accept) and verdict.authenticator == "totp:T1"
    assert pin_parts == [b"4821"]
    # An old code is still checked, after the token, and told apart in the audit.
    verdict = decide(b"4821" + CODES[1], emergency_set(**ended), tokens=[token()])
    assert isinstance(verdict, Reject)
    assert verdict.reason in (RejectReason.SET_REVOKED, RejectReason.SET_EXPIRED)


# --- refused although the code matched (issue 20, 7 and 12) ---------------------------------

OUTSIDE = replace(INSIDE, nas_address="192.0.2.7")
OLD_SET_ID = "fedcba9876543210fedcba9876543210"
OLD_CODES = [b"55667788", b"10293847"]
OLD_HASHES = hash_codes(KEYS, OLD_SET_ID, USER_ID, [Secret(c) for c in OLD_CODES])


def replaced_set(*, revoked_reason: str | None = "superseded",
                 expires_in=timedelta(hours=70)) -> EmergencySet:
    return replace(emergency_set(set_id=OLD_SET_ID, hashes=OLD_HASHES, expires_in=expires_in),
                   issued_at=NOW - timedelta(hours=3),
                   revoked_at=None if revoked_reason is None else NOW - timedelta(hours=1),
                   revoked_reason=revoked_reason)


def decide_with_replaced(password: bytes, replaced: EmergencySet, *, latest=None,
                         origin=INSIDE):
    who = subject(emergency_set() if latest is None else latest).with_replaced(replaced)
    return decide_access(request(password), who, Settings(), KEYS, NOW, origin)


@pytest.mark.parametrize("case,verdict,reason", [
    ("outside the perimeter", lambda: decide(b"4821" + CODES[0], emergency_set(),
                                             origin=OUTSIDE), RejectReason.OUTSIDE_PERIMETER),
    ("expired set", lambda: decide(b"4821" + CODES[0], emergency_set(expires_in=timedelta(0))),
     RejectReason.SET_EXPIRED),
    ("revoked set", lambda: decide(b"4821" + CODES[0], emergency_set(revoked=True)),
     RejectReason.SET_REVOKED),
    ("replaced set", lambda: decide_with_replaced(b"4821" + OLD_CODES[0], replaced_set()),
     RejectReason.CODE_OF_REPLACED_SET),
])
def test_a_matching_code_refused_for_something_else_is_not_counted(case, verdict, reason):
    """Issue 20 (7): a user who tried her valid code five times from outside the perimeter
    was locked out of her real token too. A code that matched is no wrong guess: nothing
    is counted, nothing used up, the audit row has the reason (and says it was not
    counted); the Reject itself is like any other (no Reply-Message)."""
    refused = verdict()
    assert isinstance(refused, Reject) and refused.reason is reason, case
    assert refused.commits == ()
    assert refused.detail["counted"] is False


@pytest.mark.parametrize("case,password,emergency,reason", [
    ("wrong PIN", b"9999" + CODES[0], emergency_set(), RejectReason.BAD_PIN),
    ("wrong code", b"4821" + b"00000001", emergency_set(), RejectReason.BAD_CODE),
    ("used code", b"4821" + CODES[0], emergency_set(used={0}), RejectReason.CODE_USED),
    ("wrong PIN outside", b"9999" + CODES[0], emergency_set(), RejectReason.BAD_PIN),
])
def test_a_wrong_pin_a_wrong_code_and_a_used_code_still_count(case, password, emergency,
                                                              reason):
    """Issue 20 (7): only a matching code refused for the perimeter or an ended set is
    spared; a guess (or a one-time code sent again) counts as before."""
    origin = OUTSIDE if "outside" in case else INSIDE
    refused = decide(password, emergency, origin=origin)
    assert isinstance(refused, Reject) and refused.reason is reason, case
    assert refused.commits == (RecordFailure(USER_ID, at=NOW, max_failures=5),)
    assert "counted" not in refused.detail


def test_a_code_of_the_replaced_set_is_told_apart_from_a_wrong_code():
    """Issue 20 (12): a code of a superseded set was logged as `bad_code`."""
    refused = decide_with_replaced(b"4821" + OLD_CODES[1], replaced_set())
    assert isinstance(refused, Reject)
    assert refused.reason is RejectReason.CODE_OF_REPLACED_SET
    assert (refused.detail["set"], refused.detail["code"], refused.detail["replaced_by"]) == (
        OLD_SET_ID, 2, SET_ID)
    # Without the replaced set in the snapshot, the same digits are just a wrong code.
    plain = decide(b"4821" + OLD_CODES[1], emergency_set())
    assert plain.reason is RejectReason.BAD_CODE and plain.commits


@pytest.mark.parametrize("revoked_reason,expires_in,reason", [
    ("revoked by an admin", timedelta(hours=70), RejectReason.SET_REVOKED),
    ("token used", timedelta(hours=70), RejectReason.SET_REVOKED),
    (None, timedelta(hours=-1), RejectReason.SET_EXPIRED),
    (None, timedelta(hours=70), RejectReason.CODE_OF_REPLACED_SET),  # never accepted
])
def test_a_code_of_the_earlier_set_says_how_that_set_ended(revoked_reason, expires_in, reason):
    """Issue 20 (12): the earlier set ended before the new one came (an admin revoked it,
    the token came back, it expired): its own reason, never an Accept."""
    refused = decide_with_replaced(b"4821" + OLD_CODES[0],
                                   replaced_set(revoked_reason=revoked_reason,
                                                expires_in=expires_in))
    assert isinstance(refused, Reject) and refused.reason is reason
    assert refused.commits == ()


def test_the_latest_set_still_accepts_beside_a_replaced_one():
    """Issue 20 (12): loading the earlier set changes nothing for the latest one's codes."""
    verdict = decide_with_replaced(b"4821" + CODES[2], replaced_set())
    assert isinstance(verdict, Accept) and verdict.authenticator == f"emergency:{SET_ID}"

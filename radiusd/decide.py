"""The Access-Request decision: who may log in with this passcode, now.

Owns: ``decide_access`` (the SPEC "Authentication rules" for a PAP passcode: PIN + code, no
replay, lockout) and the table of authenticators a passcode is tried against. Pure: the
request, the user snapshot, the policy, the keys and ``now`` come in; a verdict (``Accept``
or ``Reject``) with the one-time effects to commit goes out. Nothing is written here: the
store applies the commits (compare-and-set) and the shell answers.

Fail closed (FreeRADIUS: NOOP → reject): every path that does not end in an explicit
``Accept`` is a ``Reject``.

Must not import: twisted, sqlalchemy, pyrad. Must not know: SQL, sockets, clocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable, Iterator, Mapping

import netaddr

from radiusd import otp
from radiusd.crypto import DECOY_OWNER, DECOY_SERIAL, Keys, SealError
from radiusd.emergency.codes import find_code
from radiusd.emergency.export import accepted_reply
from radiusd.emergency.rules import SUPERSEDED, PerimeterResult, check_perimeter
from radiusd.model import (Accept, AdvanceToken, Commit, EmergencySet, RadiusRequest,
                           RecordFailure, Reject, RejectReason, ResetFailures,
                           RevokeEmergencySet, Subject, Token, TokenKind, UseEmergencyCode)
from radiusd.passcode import split_passcode
from radiusd.settings import Settings
from radiusd.wire_text import user_name_problem


@dataclass(frozen=True, slots=True)
class Origin:
    """Where the request came from and where emergency codes may be used.

    Attributes:
        client: the RADIUS client's name (``[[clients]] name``), for the audit trail.
        nas_address: the UDP source address of the request.
        check, networks, ip_set: the ``[perimeter]`` config (``nas``/``user``/``both``).
    """

    client: str = ""
    nas_address: str = ""
    check: str = "nas"
    networks: tuple[netaddr.IPNetwork, ...] = ()
    ip_set: netaddr.IPSet = field(default_factory=netaddr.IPSet)
    # check_nas_perimeter(nas_address) worked out in advance (it depends on nothing else):
    # the shell keeps one Origin per NAS.
    nas_perimeter: PerimeterResult | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """Everything an authenticator may consult to check a code (all read-only)."""

    request: RadiusRequest
    subject: Subject
    settings: Settings
    keys: Keys
    now: datetime
    origin: Origin


@dataclass(frozen=True, slots=True)
class CodeCheck:
    """What one authenticator says about one code.

    Attributes:
        is_match: the code is accepted by this authenticator.
        commits: the one-time effects an Accept must commit (e.g. ``AdvanceToken``).
        reason: when not matched, a reason more specific than ``BAD_CODE`` (e.g.
            ``REPLAYED_CODE``); ``None`` for a plain wrong code.
        error: a non-secret label when the authenticator could not be checked at all
            (``seal_error``, ``token_error``); it counts as not matching.
        reply_messages: Reply-Message lines for an Accept.
        detail: non-secret facts for the audit row (never a code, PIN or seed).
    """

    is_match: bool
    commits: tuple[Commit, ...] = ()
    reason: RejectReason | None = None
    error: str | None = None
    reply_messages: tuple[str, ...] = ()
    detail: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One authenticator the passcode may be meant for.

    The passcode is split by ``code_length`` (SPEC: "by the length of the code each of the
    user's authenticators expects"); ``check`` receives the code part (ASCII digits) only
    after the PIN part passed.
    """

    kind: str  # "totp", "hotp", ...: with ``name`` it forms Accept.authenticator
    name: str  # the token serial, ...
    code_length: int
    check: Callable[[bytes], CodeCheck]

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}"


CandidateSource = Callable[[Context], Iterable[Candidate]]
"""Lists the candidates of one authenticator family for a user."""


# --- tokens (TOTP RFC 6238, HOTP RFC 4226) ----------------------------------------------

# SPEC: "A TOTP code is accepted once (no replay) within ±1 step; an HOTP code once, within a
# look-ahead of 10."
TOTP_WINDOW = 1  # RFC 6238 §5.2: at most one time step of network delay / drift
HOTP_LOOK_AHEAD = 10  # RFC 4226 §7.4: look-ahead window s


def _match_totp(token: Token, seed: bytes, code: str, now: datetime) -> tuple[otp.OtpMatch, int]:
    found = otp.match_totp(seed, code, now, period=token.period, digits=token.digits,
                           algorithm=token.algorithm, last_used=token.last_used,
                           window=TOTP_WINDOW)
    return found, otp.totp_step(now, token.period)


def _match_hotp(token: Token, seed: bytes, code: str, now: datetime) -> tuple[otp.OtpMatch, int]:
    found = otp.match_hotp(seed, code, digits=token.digits, algorithm=token.algorithm,
                           last_used=token.last_used, look_ahead=HOTP_LOOK_AHEAD)
    return found, token.last_used + 1


# kind -> (token, seed, code, now) -> (match, the value expected without drift)
_OTP_MATCHERS: Mapping[TokenKind, Callable[[Token, bytes, str, datetime],
                                           tuple[otp.OtpMatch, int]]] = {
    TokenKind.TOTP: _match_totp,
    TokenKind.HOTP: _match_hotp,
}


def _check_token(context: Context, token: Token, code: bytes) -> CodeCheck:
    matcher = _OTP_MATCHERS.get(token.kind)
    if matcher is None:
        return CodeCheck(is_match=False, error="token_error")
    try:
        seed = context.keys.open_seed(token.sealed_seed, context.subject.name,
                                      token.serial).reveal()
    except SealError:
        # Wrong key file or a tampered row: this token cannot match; others still may.
        return CodeCheck(is_match=False, error="seal_error")
    try:
        found, expected = matcher(token, seed, code.decode("ascii"), context.now)
    except ValueError:
        # Bad stored parameters (digits, period, algorithm): never crash the request.
        return CodeCheck(is_match=False, error="token_error")
    if found.value is None:
        return CodeCheck(is_match=False,
                         reason=RejectReason.REPLAYED_CODE if found.is_replay else None)
    return CodeCheck(is_match=True, commits=(AdvanceToken(token.id, found.value),),
                     detail={"drift": found.value - expected})


def token_candidates(context: Context) -> Iterator[Candidate]:
    """The user's TOTP/HOTP tokens, in the order given."""
    for token in context.subject.tokens:
        yield Candidate(kind=str(token.kind), name=token.serial, code_length=token.digits,
                        check=lambda code, token=token: _check_token(context, token, code))


# --- one-time emergency tokencodes -------------------------------------------------------

EMERGENCY = "emergency"


def _check_emergency(context: Context, emergency: EmergencySet, code: bytes) -> CodeCheck:
    """A code of the user's latest set: right code, set active, unused, inside the perimeter.

    A refusal for lifetime, revocation or perimeter uses up nothing (no commit); the Accept
    commits ``UseEmergencyCode``, a compare-and-set on ``used_at IS NULL``.
    """
    found = find_code(context.keys, emergency, code)
    if found is None:
        return CodeCheck(is_match=False)
    detail: dict[str, object] = {"set": emergency.id, "code": found.position}
    if emergency.revoked_at is not None:
        return CodeCheck(is_match=False, reason=RejectReason.SET_REVOKED, detail=detail)
    if context.now >= emergency.expires_at:
        return CodeCheck(is_match=False, reason=RejectReason.SET_EXPIRED, detail=detail)
    if found.used_at is not None:
        return CodeCheck(is_match=False, reason=RejectReason.CODE_USED, detail=detail)
    origin = context.origin
    if origin.check == "nas" and origin.nas_perimeter is not None:
        perimeter = origin.nas_perimeter
    else:
        perimeter = check_perimeter(check=origin.check, networks=origin.networks,
                                    ip_set=origin.ip_set, nas_address=origin.nas_address,
                                    request=context.request)
    detail["perimeter"] = perimeter.reason
    if not perimeter.is_inside:
        return CodeCheck(is_match=False, reason=RejectReason.OUTSIDE_PERIMETER, detail=detail)
    codes_left = emergency.codes_left - 1
    detail["codes_left"] = codes_left
    return CodeCheck(is_match=True,
                     commits=(UseEmergencyCode(found.id, emergency.id, context.now,
                                               origin.client),),
                     reply_messages=accepted_reply(codes_left, emergency.expires_at),
                     detail=detail)


def emergency_candidates(context: Context) -> Iterator[Candidate]:
    """The user's latest emergency set, whatever its state (the check says why it fails)."""
    emergency = context.subject.emergency
    if emergency is not None:
        yield Candidate(kind=EMERGENCY, name=emergency.id, code_length=emergency.code_length,
                        check=lambda code: _check_emergency(context, emergency, code))


def _check_replaced(context: Context, replaced: EmergencySet, code: bytes) -> CodeCheck:
    """A code of the set before the user's latest one: never accepted; recognised so that
    the audit row says why it failed (issue 20, 12): the set was replaced by a newer one
    (``code_of_replaced_set``), revoked (``set_revoked``) or had expired (``set_expired``).
    """
    found = find_code(context.keys, replaced, code)
    if found is None:
        return CodeCheck(is_match=False)
    latest = context.subject.emergency
    detail: dict[str, object] = {"set": replaced.id, "code": found.position,
                                 "replaced_by": latest.id if latest is not None else None}
    if replaced.revoked_at is not None and replaced.revoked_reason != SUPERSEDED:
        reason = RejectReason.SET_REVOKED
        detail["revoked_reason"] = replaced.revoked_reason
    elif replaced.revoked_at is None and context.now >= replaced.expires_at:
        reason = RejectReason.SET_EXPIRED
    else:
        reason = RejectReason.CODE_OF_REPLACED_SET
    return CodeCheck(is_match=False, reason=reason, detail=detail)


def replaced_set_candidates(context: Context) -> Iterator[Candidate]:
    """The set before the user's latest one, when loaded (``Subject.replaced``)."""
    replaced = context.subject.replaced
    if replaced is not None:
        yield Candidate(kind=EMERGENCY, name=replaced.id, code_length=replaced.code_length,
                        check=lambda code: _check_replaced(context, replaced, code))


# The authenticator families a passcode is tried against, in order: the tokens, then the
# emergency set; while the set is active, the set first. A user has an active set only
# while the token is lost or away, so an emergency passcode is the likely one then, and
# the set's check costs one keyed hash where a token's costs a PIN check and (for a PIN
# part of the right length) a sealed seed and a TOTP window or an HOTP look-ahead; an
# ended set stays the user's latest for good, and comes second. The order never changes
# a verdict: a passcode splits differently for codes of different lengths, so only one
# split can carry the right PIN; for a set and a token with codes of the same length, the
# same digits would have to be both an unused code of the set and the token's code of
# the moment. The set before the latest one never accepts: it comes last.
TOKENS_FIRST: tuple[CandidateSource, ...] = (token_candidates, emergency_candidates,
                                             replaced_set_candidates)
SET_FIRST: tuple[CandidateSource, ...] = (emergency_candidates, token_candidates,
                                          replaced_set_candidates)


def candidate_sources(subject: Subject, now: datetime) -> tuple[CandidateSource, ...]:
    """The authenticator families to try for ``subject``'s passcode, in order."""
    emergency = subject.emergency
    return SET_FIRST if emergency is not None and emergency.is_active(now) else TOKENS_FIRST


# When nothing matched, the most specific reason wins; BAD_CODE when no candidate said more.
_REASON_PRECEDENCE: tuple[RejectReason, ...] = (
    RejectReason.CODE_USED, RejectReason.SET_REVOKED, RejectReason.SET_EXPIRED,
    RejectReason.CODE_OF_REPLACED_SET, RejectReason.OUTSIDE_PERIMETER,
    RejectReason.REPLAYED_CODE)

# Refusals of a code that matched, for something else than the code (issue 20, 7): the
# perimeter, or a set that ended (expired, revoked, replaced). They are no wrong guess: not
# counted toward lockout.max_failures (a user trying her valid code from outside the
# perimeter must not lock out her real token), nothing is used up, the audit row says why.
# A wrong PIN still counts (the PIN is checked first), and so does a used code or a
# replayed token code: a one-time value sent again is what a replay attack looks like. The
# Reply is the same Access-Reject as for any other refusal (SPEC: never which part).
NOT_A_GUESS: frozenset[RejectReason] = frozenset({
    RejectReason.OUTSIDE_PERIMETER, RejectReason.SET_EXPIRED, RejectReason.SET_REVOKED,
    RejectReason.CODE_OF_REPLACED_SET})


# --- the decision --------------------------------------------------------------------------


def _lock_state(subject: Subject, settings: Settings, now: datetime) -> tuple[bool, bool]:
    """``(is_locked, is_lock_expired)``; a lockout of duration 0 lasts until an admin unlocks."""
    if subject.locked_at is None:
        return False, False
    if not settings.lockout_duration or now < subject.locked_at + settings.lockout_duration:
        return True, False
    return False, True


def decide_access(request: RadiusRequest, subject: Subject | None, settings: Settings,
                  keys: Keys, now: datetime, origin: Origin = Origin()) -> Accept | Reject:
    """Decide an Access-Request (SPEC "Authentication rules").

    Rules, in order: a User-Name that breaks ``wire_text``'s rule (control characters,
    NUL included, invalid UTF-8, empty, over 253 octets) is refused (``bad_user_name``;
    the handler does not look it up, so ``subject`` is None); CHAP and a missing
    User-Password are refused; unknown, disabled and
    locked users are refused without counting a failure; then the passcode is split by each
    candidate's code length, its PIN part checked (or required empty for a user without
    PIN) and its code matched. The first match accepts; otherwise the failure is counted,
    unless the code matched and was refused for the perimeter or an ended set
    (``NOT_A_GUESS``: audited, not counted).

    Args:
        request: the decoded Access-Request.
        subject: the user named in it, or ``None`` when there is no such user.
        settings: the lockout policy.
        keys: opens sealed seeds and checks PIN hashes.
        now: the time of the request (aware UTC), read once by the shell.
        origin: the client and the perimeter rules (emergency codes).
    Returns:
        ``Accept`` with the commits to apply (advance the token; reset failures), or
        ``Reject`` with the audit reason and the commits to apply (count the failure, but
        for ``NOT_A_GUESS``, whose detail says ``counted: False``). The
        detail never holds the passcode, PIN, code or seed.
    Raises:
        Nothing by design; any exception is a bug, turned into a Reject by the handler.
    """
    if request.user_name is not None:
        problem = user_name_problem(request.user_name)
        if problem is not None:  # issue 21 (1): no such name can exist; Reject, not a drop
            return Reject(RejectReason.BAD_USER_NAME, detail={"user_name": problem})
    # SPEC: "CHAP gets Access-Reject (PAP only)": the PIN + code split needs the cleartext.
    if request.has_chap_password:
        return Reject(RejectReason.CHAP_NOT_SUPPORTED)
    if request.password is None:
        return Reject(RejectReason.NO_PASSWORD)
    if subject is None:
        _decoy_check(request, settings, keys, now)  # issue 21 (10): the same work as a user's
        return Reject(RejectReason.UNKNOWN_USER)  # no user row to count a failure against
    if subject.is_disabled:
        _decoy_check(request, settings, keys, now)
        return Reject(RejectReason.DISABLED)
    is_locked, is_lock_expired = _lock_state(subject, settings, now)
    if is_locked:
        _decoy_check(request, settings, keys, now)
        return Reject(RejectReason.LOCKED)  # attempts during a lockout do not extend it

    context = Context(request=request, subject=subject, settings=settings, keys=keys, now=now,
                      origin=origin)
    tried = 0
    is_any_split = False
    is_any_pin_ok = False
    reasons: set[RejectReason] = set()
    reason_details: dict[RejectReason, Mapping[str, object]] = {}
    errors: dict[str, list[str]] = {}
    pin_results: dict[int, bool] = {}  # by PIN part length: one check per distinct split
    for source in candidate_sources(subject, now):
        for candidate in source(context):
            tried += 1
            parts = _split(request, candidate.code_length)
            if parts is None:
                continue
            pin_part, code = parts
            is_any_split = True
            if len(pin_part) not in pin_results:
                pin_results[len(pin_part)] = _is_pin_ok(subject, keys, pin_part)
            if not pin_results[len(pin_part)]:
                # Issue 21 (10): the code is checked all the same and the outcome dropped,
                # so a wrong PIN costs what a right PIN with a wrong code costs.
                candidate.check(code)
                continue
            is_any_pin_ok = True
            outcome = candidate.check(code)
            if outcome.is_match:
                return _accept(context, candidate, outcome, errors)
            if outcome.error is not None:
                errors.setdefault(outcome.error, []).append(candidate.name)
            if outcome.reason is not None:
                reasons.add(outcome.reason)
                reason_details.setdefault(outcome.reason, outcome.detail)

    if tried == 0:
        _decoy_check(request, settings, keys, now)
        reason = RejectReason.NO_TOKEN
    elif not is_any_split:
        reason = RejectReason.BAD_CODE  # too short, or the code part is not digits
    elif not is_any_pin_ok:
        reason = RejectReason.BAD_PIN
    else:
        reason = next((r for r in _REASON_PRECEDENCE if r in reasons), RejectReason.BAD_CODE)
    detail = {"tokens": len(subject.tokens), **reason_details.get(reason, {}),
              **_error_detail(errors)}
    if reason in NOT_A_GUESS:
        return Reject(reason, detail={**detail, "counted": False})
    failure = RecordFailure(subject.id, at=now, max_failures=settings.max_failures,
                            restart=is_lock_expired)
    return Reject(reason, commits=(failure,), detail=detail)


def _split(request: RadiusRequest, code_length: int) -> tuple[bytes, bytes] | None:
    assert request.password is not None
    try:
        return split_passcode(request.password.reveal(), code_length)
    except ValueError:
        return None  # an authenticator with a nonsensical code length matches nothing


def _is_pin_ok(subject: Subject, keys: Keys, pin_part: bytes) -> bool:
    # SPEC: "a user without a PIN must send the code alone".
    if subject.pin_hash is None:
        keys.verify_pin(pin_part, keys.decoy_pin_hash)  # issue 21 (10): a PIN check's cost
        return not pin_part
    is_match = keys.verify_pin(pin_part, subject.pin_hash)  # also for an empty PIN part
    return bool(pin_part) and is_match


def _decoy_subject(keys: Keys) -> Subject:
    """A user with a PIN and one TOTP token of 6 digits (the defaults of ``token add``),
    whose PIN no passcode carries (``Keys.decoy_pin_hash``: the empty PIN)."""
    token = Token(id=0, serial=DECOY_SERIAL, kind=TokenKind.TOTP, digits=6, period=30,
                  sealed_seed=keys.decoy_sealed_seed, last_used=-1)
    return Subject(id=0, name=DECOY_OWNER, is_disabled=False, pin_hash=keys.decoy_pin_hash,
                   failures=0, locked_at=None, tokens=(token,))


def _decoy_check(request: RadiusRequest, settings: Settings, keys: Keys,
                 now: datetime) -> None:
    """Decide the passcode for the decoy user and drop the verdict (issue 21, 10).

    A Reject for a user that does not exist, is disabled, locked or has no authenticator
    would otherwise skip the PIN check, the seed opening and the code window, and answer
    measurably sooner (0.45 ms for an unknown user): who exists would show in the timing
    though the replies are identical. The decoy goes through ``decide_access`` itself, so
    it costs what a real user with one TOTP token costs whatever the passcode. Users with
    several tokens, an HOTP token (a look-ahead of 10) or an emergency set cost more.
    """
    decide_access(request, _decoy_subject(keys), settings, keys, now)


def _accept(context: Context, candidate: Candidate, outcome: CodeCheck,
            errors: Mapping[str, list[str]]) -> Accept | Reject:
    subject = context.subject
    commits: tuple[Commit, ...] = outcome.commits
    detail = {**outcome.detail, **_error_detail(errors)}
    emergency = subject.emergency
    if (candidate.kind != EMERGENCY and emergency is not None
            and emergency.is_active(context.now)):
        # SPEC emergency.on_token_use: the real token authenticated while a set is active.
        match context.settings.on_token_use:
            case "deny":  # RSA: "deny authentication with tokencode"
                return Reject(RejectReason.TOKEN_DENIED,
                              detail={"set": emergency.id, "on_token_use": "deny"})
            case "keep":
                pass
            case _:  # "revoke" (default): the token is back, the codes end now
                commits += (RevokeEmergencySet(emergency.id, context.now, "token used"),)
                detail.update({"revoked_set": emergency.id, "on_token_use": "revoke"})
    if subject.failures > 0 or subject.locked_at is not None:
        commits += (ResetFailures(subject.id),)
    return Accept(reply_messages=outcome.reply_messages, commits=commits,
                  authenticator=candidate.label, detail=detail)


def _error_detail(errors: Mapping[str, list[str]]) -> dict[str, str]:
    """``{"seal_error": "SERIAL1,SERIAL2"}``: which authenticators could not be checked."""
    return {error: ",".join(names) for error, names in errors.items()}


def with_codes_left(verdict: Accept, codes_left: int, expires_at: datetime) -> Accept:
    """An emergency code's Accept told the count its commit left (issue 21, 11).

    ``decide_access`` counts from the snapshot it was given; codes of one set used at once
    (one batch, several batches or servers) all saw the same snapshot. The store returns
    the set's count as the use's own update left it, and the Reply-Message (with the
    "get your token back" warning from 2 left) and the audit detail are told from that.

    Args:
        verdict: the Accept of a ``UseEmergencyCode`` (its reply is ``accepted_reply``).
        codes_left: the set's unused codes after this use, as committed.
        expires_at: the set's end.
    Returns:
        ``verdict`` itself when its count is already that one, else the Accept with the
        reply and ``detail["codes_left"]`` of ``codes_left``.
    """
    codes_left = max(codes_left, 0)
    if verdict.detail.get("codes_left") == codes_left:
        return verdict
    return Accept(reply_messages=accepted_reply(codes_left, expires_at),
                  commits=verdict.commits, authenticator=verdict.authenticator,
                  detail={**verdict.detail, "codes_left": codes_left})

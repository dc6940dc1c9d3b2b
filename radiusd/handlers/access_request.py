"""Access-Request: load the subject and policy, decide, commit, answer.

The whole unit runs in one DB-thread hop, for all the requests that arrived while the
previous batch was being committed (group commit, ``authenticate_batch``): load → pure
``decide_access`` → receipt look-up for the Rejects (a retransmission answered before) →
``store.apply_batch`` (one transaction, one fsync: every request's compare-and-set
effects, audit row and receipt). No Access-Accept leaves before its batch is committed; a
lost compare-and-set turns it into a Reject (``LOST_RACE``) unless the winner was this very
request on another server (its receipt is found: same answer). Anything unexpected is a
Reject (fail closed), except a database that cannot be reached: then nothing is sent and
the NAS fails over (FreeRADIUS: backend timeout → do not respond).

Hostile text (issue 21, 1): a User-Name that breaks ``wire_text``'s rule is never looked
up (``decide_access`` rejects it, ``bad_user_name``), and the text attributes are recorded
in their escaped form. A batch the database refuses for one request's data
(``DataRefused``) is committed again one request at a time: the others get their answers,
the refused one a Reject (``data_refused``), and the database is not called down.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Sequence

from twisted.logger import Logger

from radiusd.decide import Origin, decide_access, with_codes_left
from radiusd.emergency.codes import candidate_hash
from radiusd.emergency.rules import check_nas_perimeter
from radiusd.errors import DataRefused, StoreUnavailable
from radiusd.escaping import word
from radiusd.handlers.context import HandlerContext, Response
from radiusd.model import (Accept, AdvanceToken, AuditEvent, Client, Commit, PacketCode,
                           RadiusRequest, Receipt, Reject, RejectReason, SaveReceipt, Subject,
                           Verdict)
from radiusd.wire_text import recorded, user_name_problem

log = Logger(namespace="radiusd.access")

# A NAS retransmits for a few seconds (typically 3 tries, 3–5 s apart); SPEC: 60 s.
RECEIPT_LIFETIME = timedelta(seconds=60)


def audit_event(request: RadiusRequest, client: Client, address: str, verdict: Verdict,
                now: datetime, node: str) -> AuditEvent:
    """The audit row of one decided request: never the passcode."""
    detail: dict[str, object] = dict(verdict.detail)
    if isinstance(verdict, Accept):
        result, reason = "accept", None
        if verdict.authenticator:
            detail["authenticator"] = verdict.authenticator
    else:
        result, reason = "reject", verdict.reason.value
    # Text from the wire, escaped if it holds control characters or is not UTF-8.
    if request.calling_station_id:
        detail["calling_station_id"] = recorded(request.calling_station_id)
    if request.nas_identifier:
        detail["nas_identifier"] = recorded(request.nas_identifier)
    return AuditEvent(at=now, action="auth", result=result, actor="radius",
                      user_name=recorded(request.user_name), reason=reason, client=client.name,
                      nas_address=address, node=node, detail=detail)


def origin_of(ctx: HandlerContext, client: Client, address: str) -> Origin:
    """The client, its address and the perimeter rules, with the NAS's perimeter verdict
    worked out once per NAS (the config does not change while the server runs)."""
    key = (client.name, address)
    origin = ctx.origins.get(key)
    if origin is None:
        perimeter = ctx.perimeter
        if perimeter is None:
            origin = Origin(client=client.name, nas_address=address)
        else:
            origin = Origin(client=client.name, nas_address=address, check=perimeter.check,
                            networks=perimeter.networks, ip_set=perimeter.ip_set,
                            nas_perimeter=check_nas_perimeter(
                                networks=perimeter.networks, ip_set=perimeter.ip_set,
                                nas_address=address))
        if len(ctx.origins) >= 4096:
            ctx.origins.clear()
        ctx.origins[key] = origin
    return origin


def receipt_key(ctx: HandlerContext, request: RadiusRequest, source: tuple[str, int]) -> bytes:
    """What identifies this request wherever it arrives (SPEC: a retransmission)."""
    return ctx.keys.receipt_hash(source[0].encode(), str(source[1]).encode(),
                                 bytes([request.identifier]), request.authenticator,
                                 (request.user_name or "").encode("utf-8", "surrogateescape"))


def _from_receipt(receipt: Receipt) -> Verdict:
    if receipt.code == PacketCode.ACCESS_ACCEPT:
        return Accept(reply_messages=receipt.reply_messages, authenticator="receipt")
    return Reject(RejectReason.RETRANSMISSION)


def _receipt(key: bytes, verdict: Verdict, now: datetime) -> Receipt | None:
    """An Accept that used a one-time effect leaves a receipt; nothing else does: a
    retransmitted Reject decided again on another server is rejected again."""
    if not isinstance(verdict, Accept) or not verdict.commits:
        return None
    return Receipt(key=key, code=PacketCode.ACCESS_ACCEPT,
                   reply_messages=tuple(verdict.reply_messages),
                   expires_at=now + RECEIPT_LIFETIME)


@dataclass(frozen=True, slots=True)
class Pending:
    """One Access-Request waiting for its group commit."""

    request: RadiusRequest
    client: Client
    source: tuple[str, int]
    now: datetime


def _name(request: RadiusRequest) -> str | None:
    """The User-Name to look up: none when it breaks the rule (``decide_access`` rejects
    the request as ``bad_user_name``; the store never sees such a name)."""
    name = request.user_name
    return name if name and user_name_problem(name) is None else None


def _load_subjects(ctx: HandlerContext, batch: Sequence[Pending]) -> list[Subject | None]:
    """Per request, its user as ``decide_access`` needs them: tokens, and the latest
    emergency set holding only the code this passcode may be (found by its keyed hash).
    Three queries whatever the batch size."""
    names = [_name(item.request) for item in batch]
    subjects = ctx.store.load_subjects([name for name in names if name], with_codes=False)
    candidates: list[tuple[str, bytes] | None] = []
    for item, name in zip(batch, names):
        subject = subjects.get(name) if name else None
        emergency = subject.emergency if subject is not None else None
        password = item.request.password
        code_hash = (None if emergency is None or password is None
                     else candidate_hash(ctx.keys, emergency, password.reveal()))
        candidates.append(None if code_hash is None else (emergency.id, code_hash))
    codes = ctx.store.find_emergency_codes(
        [candidate for candidate in candidates if candidate is not None])
    per_request: list[Subject | None] = []
    for name, candidate in zip(names, candidates):
        subject = subjects.get(name) if name else None
        code = codes.get(candidate) if candidate is not None else None
        if subject is not None and subject.emergency is not None and code is not None:
            # The set was loaded without codes: it holds this passcode's code, if any.
            subject = subject.with_emergency(subject.emergency.with_codes((code,)))
        per_request.append(subject)
    return per_request


def _recognise_replaced_codes(ctx: HandlerContext, batch: Sequence[Pending],
                              subjects: list[Subject | None], verdicts: list[Verdict],
                              settings) -> None:
    """A Reject for a wrong code (``BAD_CODE``) of a user who has an emergency set is
    decided again with the set before that one (``Subject.replaced``) and the code of it
    the passcode may be, if any: a code of a replaced set is then logged as such (issue 20,
    12), and not counted as a guess (issue 20, 7). In place, in ``subjects`` and
    ``verdicts``.

    Only such Rejects read more (two queries for the batch: the earlier sets' headers, then
    the candidate codes by keyed hash); an Accept, nearly every request, reads nothing more.
    """
    wanted = [index for index, verdict in enumerate(verdicts)
              if isinstance(verdict, Reject) and verdict.reason is RejectReason.BAD_CODE
              and subjects[index] is not None and subjects[index].emergency is not None
              and batch[index].request.password is not None]
    if not wanted:
        return
    replaced = ctx.store.load_replaced_sets([subjects[index].name for index in wanted])
    candidates = {}
    for index in wanted:
        earlier = replaced.get(subjects[index].id)
        if earlier is None:
            continue
        code_hash = candidate_hash(ctx.keys, earlier,
                                   batch[index].request.password.reveal())
        if code_hash is not None:
            candidates[index] = (earlier, (earlier.id, code_hash))
    codes = ctx.store.find_emergency_codes([candidate for _, candidate in candidates.values()])
    for index, (earlier, candidate) in candidates.items():
        code = codes.get(candidate)
        if code is None:
            continue
        item = batch[index]
        subjects[index] = subjects[index].with_replaced(earlier.with_codes((code,)))
        verdicts[index] = decide_access(item.request, subjects[index], settings, ctx.keys,
                                        item.now, origin_of(ctx, item.client, item.source[0]))


def _row_receipt(subject: Subject | None, key: bytes, now: datetime) -> Receipt | None:
    """The receipt of request ``key`` on a row its user's one-time effects use (a token
    it advanced, the emergency code it used), if still valid."""
    if subject is None:
        return None
    for token in subject.tokens:
        if token.receipt is not None and token.receipt.answers(key, now):
            return token.receipt
    for emergency in (subject.emergency, subject.replaced):
        for code in emergency.codes if emergency is not None else ():
            if code.receipt is not None and code.receipt.answers(key, now):
                return code.receipt
    return None


def _displaced(subject: Subject | None, verdict: Verdict, now: datetime) -> tuple[Commit, ...]:
    """An Accept that advances a token replaces the receipt on the token's row: if that
    receipt is still valid (the token's previous Accept, less than its lifetime ago), it
    moves to the receipt table, so that a late retransmission of that request still finds
    it. An emergency code is used once: its receipt is never replaced."""
    if subject is None or not isinstance(verdict, Accept) or not verdict.commits:
        return ()
    first = verdict.commits[0]
    if not isinstance(first, AdvanceToken):
        return ()
    for token in subject.tokens:
        if (token.id == first.token_id and token.receipt is not None
                and now < token.receipt.expires_at):
            return (SaveReceipt(token.receipt),)
    return ()


def authenticate_batch(ctx: HandlerContext, batch: Sequence[Pending]) -> list[Verdict]:
    """Decide and commit the Access-Requests of one group commit (runs in a DB thread).

    Two queries for the users (with their tokens) and their emergency sets (headers only),
    one for the candidate emergency codes (by keyed hash), two more if a wrong emergency
    code may be one of a replaced set (``_recognise_replaced_codes``), one for the receipt
    table if a
    Reject is not answered by a row's receipt, one transaction (one fsync) for every
    request's effects and audit row, each Accept's receipt written on the row it used;
    each request keeps its own compare-and-set check (``Store.apply_batch``).

    Returns once what the batch committed and read is on disk: one ``Store.sync`` after
    its last query, outside the writer lock.

    Raises:
        StoreUnavailable: the database cannot be reached; nothing was committed.
    """
    now = batch[0].now
    keys = [receipt_key(ctx, item.request, item.source) for item in batch]
    try:
        settings = ctx.settings.get(now)
        subjects = _load_subjects(ctx, batch)
        verdicts: list[Verdict] = [
            decide_access(item.request, subject, settings, ctx.keys, item.now,
                          origin_of(ctx, item.client, item.source[0]))
            for item, subject in zip(batch, subjects)]
        _recognise_replaced_codes(ctx, batch, subjects, verdicts, settings)
        # A retransmission of a request answered before (by another server, or before a
        # restart) is decided again and, its one-time code being spent, rejected: only a
        # Reject can be one, so only a Reject looks for a receipt, before any failure of
        # its own is counted: on the rows its user's effects use (loaded already), else in
        # the receipt table (one query, and none in a batch without Rejects).
        rejected = [index for index, verdict in enumerate(verdicts)
                    if isinstance(verdict, Reject)]
        answered = _answered(ctx, batch, keys, rejected,
                             [subjects[index] for index in rejected])
    except DataRefused:
        # A read refused one request's data (e.g. a name the database's encoding cannot
        # hold). Nothing is committed yet: each request again, in a batch of its own.
        if len(batch) > 1:
            return [verdict for item in batch for verdict in authenticate_batch(ctx, [item])]
        _commit(ctx, [((), _refused_audit(ctx, batch[0]), None)])
        ctx.store.sync(ctx.store.sync_ticket())
        return [Reject(RejectReason.DATA_REFUSED)]
    to_apply: list[int] = []
    effects = []
    for index, (item, key, verdict) in enumerate(zip(batch, keys, verdicts)):
        if index in answered:
            verdicts[index] = answered[index]
            continue
        to_apply.append(index)
        effects.append((verdict.commits + _displaced(subjects[index], verdict, item.now),
                        audit_event(item.request, item.client, item.source[0], verdict,
                                    item.now, ctx.node),
                        _receipt(key, verdict, item.now)))

    def recount(position: int, codes_left: int) -> tuple[AuditEvent, Receipt | None] | None:
        # Inside the commit: the Reply-Message from the count the use left (issue 21, 11).
        index = to_apply[position]
        verdict, subject = verdicts[index], subjects[index]
        if (not isinstance(verdict, Accept) or subject is None
                or subject.emergency is None):
            return None
        settled = with_codes_left(verdict, codes_left, subject.emergency.expires_at)
        if settled is verdict:
            return None
        verdicts[index] = settled
        item = batch[index]
        return (audit_event(item.request, item.client, item.source[0], settled, item.now,
                            ctx.node),
                _receipt(keys[index], settled, item.now))

    results = _commit(ctx, effects, recount)
    lost = [index for index, is_done in zip(to_apply, results) if is_done is False]
    refused = [index for index, is_done in zip(to_apply, results) if is_done is None]
    audits = []
    for index in refused:
        # Nothing of it was committed: never an Accept.
        verdicts[index] = Reject(RejectReason.DATA_REFUSED)
        audits.append(((), _refused_audit(ctx, batch[index]), None))
    if lost:
        # A compare-and-set lost. If the winner was this same request (a retransmission
        # that reached another server at the same moment), its receipt has the answer.
        answered = _answered(ctx, batch, keys, lost,
                             _load_subjects(ctx, [batch[index] for index in lost]))
        for index in lost:
            if index in answered:
                verdicts[index] = answered[index]
                continue
            item = batch[index]
            verdict = Reject(RejectReason.LOST_RACE,
                             detail={"lost": getattr(verdicts[index], "authenticator", "")})
            verdicts[index] = verdict
            audits.append(((), audit_event(item.request, item.client, item.source[0],
                                           verdict, item.now, ctx.node), None))
    if audits:
        _commit(ctx, audits)  # an audit row refused even so is left out
    ctx.store.sync(ctx.store.sync_ticket())
    return verdicts


def _commit(ctx: HandlerContext, effects: list,
            recount: Callable[[int, int], object] | None = None) -> list[bool | None]:
    """``store.apply_batch`` without sync; when the database refuses the batch for the data
    of one of its requests (``DataRefused``: which one, pipeline mode does not say), each
    request again in a transaction of its own, so that the others still commit.
    ``recount(position, codes_left)`` is ``apply_batch``'s, by position in ``effects``.

    Returns:
        Per request: True committed, False its compare-and-set lost, None refused (nothing
        of it committed). Only a batch that failed pays for the retries.
    Raises:
        StoreUnavailable: the database cannot be reached; nothing was committed.
    """
    try:
        return ctx.store.apply_batch(effects, sync=False, recount=recount)
    except DataRefused:
        if len(effects) == 1:
            return [None]
    results: list[bool | None] = []
    for position, effect in enumerate(effects):
        alone = None if recount is None else (
            lambda _, codes_left, position=position: recount(position, codes_left))
        try:
            results.extend(ctx.store.apply_batch([effect], sync=False, recount=alone))
        except DataRefused:
            results.append(None)
    return results


def _refused_audit(ctx: HandlerContext, item: Pending) -> AuditEvent:
    """Log a request whose data the database refused, and its audit row, in a form the
    database takes whatever it refused (ASCII, no detail), if it takes that."""
    log.warn("the database refused the data of a request for {user} from {client}: "
             "rejected", user=_ascii(item.request.user_name), client=item.client.name)
    return AuditEvent(at=item.now, action="auth", result="reject", actor="radius",
                      user_name=_ascii(item.request.user_name),
                      reason=RejectReason.DATA_REFUSED.value, client=item.client.name,
                      nas_address=item.source[0], node=ctx.node)


def _ascii(text: str | None) -> str | None:
    """``text`` as printable ASCII (Python's ``ascii``: every control character, non-ASCII
    character and lone surrogate escaped), what any database takes: the last resort for a
    request whose data was refused, so it does not depend on ``recorded``."""
    return None if text is None else ascii(text)[1:-1]


def _answered(ctx: HandlerContext, batch: Sequence[Pending], keys: Sequence[bytes],
              indexes: Sequence[int], subjects: Sequence[Subject | None]
              ) -> dict[int, Verdict]:
    """The requests of the batch at ``indexes`` that were answered before (a receipt is
    found), with that answer; ``subjects`` are their users, in the same order."""
    receipts = {index: _row_receipt(subject, keys[index], batch[index].now)
                for index, subject in zip(indexes, subjects)}
    unanswered = [keys[index] for index, receipt in receipts.items() if receipt is None]
    table = ctx.store.find_receipts(unanswered, batch[0].now)
    answered: dict[int, Verdict] = {}
    for index, receipt in receipts.items():
        receipt = receipt or table.get(keys[index])
        if receipt is None:
            continue
        item = batch[index]
        log.info("retransmission of a request answered before (another server or a "
                 "restart): same answer for {user} from {client}",
                 user=_shown(item.request.user_name), client=item.client.name)
        answered[index] = _from_receipt(receipt)
    return answered


def _shown(user_name: str | None) -> str:
    """The User-Name as a log line shows it: as the NAS sent it, but escaped
    (``radiusd.escaping``), so a crafted name cannot forge a line or reach a terminal."""
    return word(user_name or "")


async def handle_access_request(request: RadiusRequest, client: Client,
                                source: tuple[str, int], ctx: HandlerContext) -> Response:
    """Raises StoreUnavailable (no reply); every other failure is a Reject."""
    now = ctx.now()
    try:
        pending = Pending(request, client, source, now)
        if ctx.group_commit is not None:
            verdict = await ctx.group_commit(pending)
        else:
            verdict = (await ctx.run_db(authenticate_batch, ctx, [pending]))[0]
    except DataRefused:
        # Not an outage: a read refused this request's data after its commit lost a race.
        log.failure("the database refused the data of a request for {user} from {client}; "
                    "rejecting", user=_ascii(request.user_name), client=client.name)
        verdict = Reject(RejectReason.DATA_REFUSED)
    except StoreUnavailable:
        raise
    except Exception:
        log.failure("internal error deciding for {user} from {client}; rejecting",
                    user=_shown(request.user_name), client=client.name)
        verdict = Reject(RejectReason.INTERNAL_ERROR)
    # Each decision is in the audit trail; the log has it with -X (debug) only: at
    # thousands of logins a second, a log line each cost ~7% of the server's time, and
    # even a filtered-out debug event ~3% (hence the test before the call).
    match verdict:
        case Accept(reply_messages=messages):
            if ctx.debug:
                log.debug("Access-Accept for {user} from {client}",
                          user=_shown(request.user_name), client=client.name)
            return Response(PacketCode.ACCESS_ACCEPT, tuple(messages))
        case Reject(reason=reason):
            if ctx.debug:
                log.debug("Access-Reject for {user} from {client}: {reason}",
                          user=_shown(request.user_name), client=client.name,
                          reason=reason.value)
            return Response(PacketCode.ACCESS_REJECT, delay=ctx.reject_delay)
    return Response(PacketCode.ACCESS_REJECT, delay=ctx.reject_delay)  # fail closed

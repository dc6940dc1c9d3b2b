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
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence

from twisted.logger import Logger

from radiusd.decide import Origin, decide_access, with_codes_left
from radiusd.emergency.codes import candidate_hash
from radiusd.emergency.rules import check_nas_perimeter
from radiusd.errors import StoreUnavailable
from radiusd.handlers.context import HandlerContext, Response
from radiusd.model import (Accept, AdvanceToken, AuditEvent, Client, Commit, PacketCode,
                           RadiusRequest, Receipt, Reject, RejectReason, SaveReceipt, Subject,
                           Verdict)

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
    if request.calling_station_id:
        detail["calling_station_id"] = request.calling_station_id
    if request.nas_identifier:
        detail["nas_identifier"] = request.nas_identifier
    return AuditEvent(at=now, action="auth", result=result, actor="radius",
                      user_name=request.user_name, reason=reason, client=client.name,
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
                                 (request.user_name or "").encode("utf-8"))


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


def _load_subjects(ctx: HandlerContext, batch: Sequence[Pending]) -> list[Subject | None]:
    """Per request, its user as ``decide_access`` needs them: tokens, and the latest
    emergency set holding only the code this passcode may be (found by its keyed hash).
    Three queries whatever the batch size."""
    subjects = ctx.store.load_subjects(
        [item.request.user_name for item in batch if item.request.user_name],
        with_codes=False)
    candidates: list[tuple[str, bytes] | None] = []
    for item in batch:
        subject = subjects.get(item.request.user_name) if item.request.user_name else None
        emergency = subject.emergency if subject is not None else None
        password = item.request.password
        code_hash = (None if emergency is None or password is None
                     else candidate_hash(ctx.keys, emergency, password.reveal()))
        candidates.append(None if code_hash is None else (emergency.id, code_hash))
    codes = ctx.store.find_emergency_codes(
        [candidate for candidate in candidates if candidate is not None])
    per_request: list[Subject | None] = []
    for item, candidate in zip(batch, candidates):
        subject = subjects.get(item.request.user_name) if item.request.user_name else None
        code = codes.get(candidate) if candidate is not None else None
        if subject is not None and subject.emergency is not None and code is not None:
            # The set was loaded without codes: it holds this passcode's code, if any.
            subject = subject.with_emergency(subject.emergency.with_codes((code,)))
        per_request.append(subject)
    return per_request


def _row_receipt(subject: Subject | None, key: bytes, now: datetime) -> Receipt | None:
    """The receipt of request ``key`` on a row its user's one-time effects use (a token
    it advanced, the emergency code it used), if still valid."""
    if subject is None:
        return None
    for token in subject.tokens:
        if token.receipt is not None and token.receipt.answers(key, now):
            return token.receipt
    for code in subject.emergency.codes if subject.emergency is not None else ():
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
    one for the candidate emergency codes (by keyed hash), one for the receipt table if a
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
    settings = ctx.settings.get(now)
    subjects = _load_subjects(ctx, batch)
    verdicts: list[Verdict] = [
        decide_access(item.request, subject, settings, ctx.keys, item.now,
                      origin_of(ctx, item.client, item.source[0]))
        for item, subject in zip(batch, subjects)]
    # A retransmission of a request answered before (by another server, or before a
    # restart) is decided again and, its one-time code being spent, rejected: only a
    # Reject can be one, so only a Reject looks for a receipt, before any failure of its
    # own is counted: on the rows its user's effects use (loaded already), else in the
    # receipt table (one query, and none in a batch without Rejects).
    rejected = [index for index, verdict in enumerate(verdicts) if isinstance(verdict, Reject)]
    answered = _answered(ctx, batch, keys, rejected, [subjects[index] for index in rejected])
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

    lost = [index for index, is_done in zip(to_apply,
                                            ctx.store.apply_batch(effects, sync=False,
                                                                  recount=recount))
            if not is_done]
    if lost:
        # A compare-and-set lost. If the winner was this same request (a retransmission
        # that reached another server at the same moment), its receipt has the answer.
        answered = _answered(ctx, batch, keys, lost,
                             _load_subjects(ctx, [batch[index] for index in lost]))
        audits = []
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
            ctx.store.apply_batch(audits, sync=False)
    ctx.store.sync(ctx.store.sync_ticket())
    return verdicts


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
                 user=item.request.user_name, client=item.client.name)
        answered[index] = _from_receipt(receipt)
    return answered


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
    except StoreUnavailable:
        raise
    except Exception:
        log.failure("internal error deciding for {user} from {client}; rejecting",
                    user=request.user_name, client=client.name)
        verdict = Reject(RejectReason.INTERNAL_ERROR)
    # Each decision is in the audit trail; the log has it with -X (debug) only: at
    # thousands of logins a second, a log line each cost ~7% of the server's time, and
    # even a filtered-out debug event ~3% (hence the test before the call).
    match verdict:
        case Accept(reply_messages=messages):
            if ctx.debug:
                log.debug("Access-Accept for {user} from {client}", user=request.user_name,
                          client=client.name)
            return Response(PacketCode.ACCESS_ACCEPT, tuple(messages))
        case Reject(reason=reason):
            if ctx.debug:
                log.debug("Access-Reject for {user} from {client}: {reason}",
                          user=request.user_name, client=client.name, reason=reason.value)
            return Response(PacketCode.ACCESS_REJECT, delay=ctx.reject_delay)
    return Response(PacketCode.ACCESS_REJECT, delay=ctx.reject_delay)  # fail closed

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

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Sequence

from twisted.logger import Logger

from radiusd.decide import Origin, decide_access
from radiusd.emergency.codes import candidate_hash
from radiusd.emergency.rules import check_nas_perimeter
from radiusd.errors import StoreUnavailable
from radiusd.handlers.context import HandlerContext, Response
from radiusd.model import (Accept, AuditEvent, Client, PacketCode, RadiusRequest, Receipt,
                           Reject, RejectReason, Verdict)

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


def _emergency_candidates(ctx: HandlerContext, batch: Sequence[Pending],
                          subjects) -> list[tuple[str, bytes] | None]:
    """Per request, ``(set_id, code_hash)`` of the emergency code its passcode may hold."""
    candidates: list[tuple[str, bytes] | None] = []
    for item in batch:
        subject = subjects.get(item.request.user_name) if item.request.user_name else None
        emergency = subject.emergency if subject is not None else None
        password = item.request.password
        if emergency is None or password is None:
            candidates.append(None)
            continue
        code_hash = candidate_hash(ctx.keys, emergency, password.reveal())
        candidates.append(None if code_hash is None else (emergency.id, code_hash))
    return candidates


def authenticate_batch(ctx: HandlerContext, batch: Sequence[Pending]) -> list[Verdict]:
    """Decide and commit the Access-Requests of one group commit (runs in a DB thread).

    Two queries for the users and their emergency sets (headers only), one for the
    candidate emergency codes (by keyed hash), one for the receipts of the rejected
    requests (if any), one transaction (one fsync) for every request's effects, audit row
    and receipt; each request keeps its own compare-and-set check (``Store.apply_batch``).

    Raises:
        StoreUnavailable: the database cannot be reached; nothing was committed.
    """
    keys = [receipt_key(ctx, item.request, item.source) for item in batch]
    settings = ctx.settings.get(batch[0].now)
    subjects = ctx.store.load_subjects(
        [item.request.user_name for item in batch if item.request.user_name],
        with_codes=False)
    candidates = _emergency_candidates(ctx, batch, subjects)
    codes = ctx.store.find_emergency_codes(
        [candidate for candidate in candidates if candidate is not None])
    verdicts: list[Verdict] = []
    for index, item in enumerate(batch):
        subject = subjects.get(item.request.user_name) if item.request.user_name else None
        if subject is not None and subject.emergency is not None:
            # The set as loaded holds no codes; give it the one this passcode may be.
            code = codes.get(candidates[index]) if candidates[index] else None
            subject = replace(subject, emergency=replace(
                subject.emergency, codes=(code,) if code is not None else ()))
        verdicts.append(decide_access(item.request, subject, settings, ctx.keys, item.now,
                                      origin_of(ctx, item.client, item.source[0])))
    # A retransmission of a request answered before (by another server, or before a
    # restart) is decided again and, its one-time code being spent, rejected: only a
    # Reject can be one, so only rejected requests look for a receipt (one query, and
    # none at all in a batch of accepts), before any failure of theirs is counted.
    rejected = [index for index, verdict in enumerate(verdicts) if isinstance(verdict, Reject)]
    found = ctx.store.find_receipts([keys[index] for index in rejected], batch[0].now)
    to_apply: list[int] = []
    effects = []
    for index, (item, key, verdict) in enumerate(zip(batch, keys, verdicts)):
        if key in found:
            log.info("retransmission of a request answered before (another server or a "
                     "restart): same answer for {user} from {client}",
                     user=item.request.user_name, client=item.client.name)
            verdicts[index] = _from_receipt(found[key])
            continue
        to_apply.append(index)
        effects.append((verdict.commits,
                        audit_event(item.request, item.client, item.source[0], verdict,
                                    item.now, ctx.node),
                        _receipt(key, verdict, item.now)))
    lost = [index for index, is_done in zip(to_apply, ctx.store.apply_batch(effects))
            if not is_done]
    if lost:
        # A compare-and-set lost. If the winner was this same request (a retransmission
        # that reached another server at the same moment), its receipt has the answer.
        found = ctx.store.find_receipts([keys[index] for index in lost], batch[0].now)
        audits = []
        for index in lost:
            item = batch[index]
            if keys[index] in found:
                verdicts[index] = _from_receipt(found[keys[index]])
                continue
            verdict = Reject(RejectReason.LOST_RACE,
                             detail={"lost": getattr(verdicts[index], "authenticator", "")})
            verdicts[index] = verdict
            audits.append(((), audit_event(item.request, item.client, item.source[0],
                                           verdict, item.now, ctx.node), None))
        if audits:
            ctx.store.apply_batch(audits)
    return verdicts


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

"""Access-Request: load the subject and policy, decide, commit, answer.

The whole unit runs in one DB-thread hop (``authenticate``): load → pure ``decide_access`` →
``store.apply`` (one transaction: the compare-and-set effects and the audit row). No
Access-Accept leaves before ``apply`` returned True; a lost compare-and-set turns it into
a Reject (``LOST_RACE``). Anything unexpected is a Reject (fail closed), except a database
that cannot be reached: then nothing is sent and the NAS fails over (FreeRADIUS: backend
timeout → do not respond).
"""

from __future__ import annotations

from datetime import datetime

from twisted.logger import Logger

from radiusd.decide import Origin, decide_access
from radiusd.errors import StoreUnavailable
from radiusd.handlers.context import HandlerContext, Response
from radiusd.model import (Accept, AuditEvent, Client, PacketCode, RadiusRequest, Reject,
                           RejectReason, Verdict)

log = Logger(namespace="radiusd.access")


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
                      nas_address=address,
                      node=node, detail=detail)


def origin_of(ctx: HandlerContext, client: Client, address: str) -> Origin:
    perimeter = ctx.perimeter
    if perimeter is None:
        return Origin(client=client.name, nas_address=address)
    return Origin(client=client.name, nas_address=address, check=perimeter.check,
                  networks=perimeter.networks, ip_set=perimeter.ip_set)


def authenticate(ctx: HandlerContext, request: RadiusRequest, client: Client, address: str,
                 now: datetime) -> Verdict:
    """Decide and commit one Access-Request (runs in a DB thread).

    Raises:
        StoreUnavailable: the database cannot be reached; nothing was committed.
    """
    settings = ctx.settings.get(now)
    subject = ctx.store.load_subject(request.user_name) if request.user_name else None
    verdict = decide_access(request, subject, settings, ctx.keys, now,
                            origin_of(ctx, client, address))
    audit = audit_event(request, client, address, verdict, now, ctx.node)
    if ctx.store.apply(verdict.commits, audit):
        return verdict
    # A compare-and-set lost: another request (or server) used this step/code first.
    lost = Reject(RejectReason.LOST_RACE, detail={"lost": getattr(verdict, "authenticator", "")})
    ctx.store.apply((), audit_event(request, client, address, lost, now, ctx.node))
    return lost


async def handle_access_request(request: RadiusRequest, client: Client, address: str,
                                ctx: HandlerContext) -> Response:
    """Raises StoreUnavailable (no reply); every other failure is a Reject."""
    now = ctx.now()
    try:
        verdict = await ctx.run_db(authenticate, ctx, request, client, address, now)
    except StoreUnavailable:
        raise
    except Exception:
        log.failure("internal error deciding for {user} from {client}; rejecting",
                    user=request.user_name, client=client.name)
        verdict = Reject(RejectReason.INTERNAL_ERROR)
    match verdict:
        case Accept(reply_messages=messages):
            log.info("Access-Accept for {user} from {client}", user=request.user_name,
                     client=client.name)
            return Response(PacketCode.ACCESS_ACCEPT, tuple(messages))
        case Reject(reason=reason):
            log.info("Access-Reject for {user} from {client}: {reason}",
                     user=request.user_name, client=client.name, reason=reason.value)
            return Response(PacketCode.ACCESS_REJECT, delay=ctx.reject_delay)
    return Response(PacketCode.ACCESS_REJECT, delay=ctx.reject_delay)  # fail closed

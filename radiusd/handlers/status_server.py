"""Status-Server (RFC 5997): a signed Access-Accept, no side effects (§4.2).

While the database is unreachable the server answers nothing (RFC 5997 §4.2 MAY), so a
NAS's or load balancer's health check sees this server as down.
"""

from __future__ import annotations

from radiusd.handlers.context import HandlerContext, Response
from radiusd.model import Client, PacketCode, RadiusRequest


def handle_status_server(request: RadiusRequest, client: Client, source: tuple,
                         ctx: HandlerContext) -> Response | None:
    if ctx.health.is_down:
        return None
    return Response(PacketCode.ACCESS_ACCEPT)

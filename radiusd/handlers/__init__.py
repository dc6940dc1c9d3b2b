"""One handler per packet code, dispatched through ``HANDLERS`` (twisted.names' opcode
dispatch, as data). Handlers orchestrate load → decide → apply → reply and hold no rules.

A handler is ``handle(request, client, source, ctx)`` returning a ``Response`` or ``None``,
or a coroutine (``async def``) or Deferred firing with one (``source``: the UDP source
``(address, port)``); ``None`` means "send nothing" (the NAS fails over).
``StoreUnavailable`` propagates: no reply. The protocol calls it through
``maybeDeferred``; a handler that never waits (Status-Server) is a plain function, which
spares it the ~6 µs a request of running a coroutine through ``Deferred.fromCoroutine``.
"""

from __future__ import annotations

from radiusd.handlers.access_request import handle_access_request
from radiusd.handlers.context import HandlerContext, Response
from radiusd.handlers.status_server import handle_status_server
from radiusd.model import PacketCode

HANDLERS = {
    PacketCode.ACCESS_REQUEST: handle_access_request,
    PacketCode.STATUS_SERVER: handle_status_server,
}

__all__ = ["HANDLERS", "HandlerContext", "Response"]

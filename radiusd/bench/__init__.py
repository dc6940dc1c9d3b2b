"""``python -m radiusd.bench`` (``make bench``): radiusd under load, side by side with
FreeRADIUS (issue 6).

Modules: ``packets`` builds the requests and checks every reply (independent of
``radiusd.codec``: stdlib ``hashlib``/``hmac`` only, so a codec bug cannot hide itself);
``loadgen`` is the closed-loop UDP load generator (non-blocking sockets and epoll, every
packet built before the timed phase); ``population`` creates the users, tokens and
emergency code sets through the bulk import and ``emergency.issuing``; ``servers`` starts
``radiusd serve`` and FreeRADIUS and reads their CPU time and peak memory from ``/proc``;
``report`` prints the table and writes the JSON; ``run`` ties them together.

A tool, not part of the server: nothing in ``radiusd`` imports this package.
"""

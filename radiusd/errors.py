"""The one exception tree of radiusd.

A Reject is a value (``model.RejectReason``), never an exception: exceptions mean
"cannot decide" or "must not answer".

    RadiusdError
    ├── ConfigError(problems)         the config file is wrong; each problem names its key
    ├── PacketDropped                 the packet gets no answer (silently discarded, logged)
    │   ├── MalformedPacket           fails the rad_packet_ok() checks or cannot be decoded
    │   ├── UnknownClient             source address matches no [[clients]] entry (RFC 2865 §2)
    │   ├── BadMessageAuthenticator   HMAC does not verify (RFC 3579 §3.2)
    │   ├── MissingMessageAuthenticator  required but absent (CVE-2024-3596)
    │   └── UnexpectedPacketCode      not Access-Request/Status-Server on the auth port
    ├── StoreUnavailable              the database cannot be reached or timed out: no answer
    │   └── DataRefused               the database is up, but refused one statement for the
    │                                 data it carried: only that request fails (a Reject)
    ├── NotInitialised                the database has no schema: run `radiusd init`
    ├── KeyMismatch                   the key file is not the one the database was set up with
    └── UsageError                    bad CLI/web input: one line naming the problem
        ├── NotFound                  unknown user, token, ...
        └── AlreadyExists             duplicate user, token serial, ...
"""

from __future__ import annotations


class RadiusdError(Exception):
    """Base of every error radiusd raises on purpose."""


class ConfigError(RadiusdError):
    """The configuration has problems; ``problems`` is a list of (key_path, message)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = list(problems)
        super().__init__("; ".join(f"{key}: {msg}" for key, msg in self.problems))


class PacketDropped(RadiusdError):
    """The packet is silently discarded (RFC 2865 §1.2); the shell logs ``str(self)``."""


class MalformedPacket(PacketDropped):
    """Fails the rad_packet_ok() checks, or cannot be decoded."""


class UnknownClient(PacketDropped):
    """The source address matches no [[clients]] entry (RFC 2865 §2)."""


class BadMessageAuthenticator(PacketDropped):
    """The Message-Authenticator does not verify (RFC 3579 §3.2)."""


class MissingMessageAuthenticator(PacketDropped):
    """Message-Authenticator required but absent (CVE-2024-3596)."""


class UnexpectedPacketCode(PacketDropped):
    """Not Access-Request or Status-Server on the authentication port."""


class StoreUnavailable(RadiusdError):
    """The database is unreachable or too slow; RADIUS gets no reply so the NAS fails over."""


class DataRefused(StoreUnavailable):
    """The database is reachable but refused a statement for the data it carried (driver
    DataError, IntegrityError, ProgrammingError; a string it cannot encode): the request
    that carried it fails alone, and the database is not down (issue 21, 1).

    A subclass of StoreUnavailable so that the admin paths (CLI, web) keep reporting it as
    they did; the request path tells the two apart.
    """


class NotInitialised(RadiusdError):
    """The database has no radiusd schema yet."""

    def __init__(self, message: str = "the database is not initialised: run `radiusd init`"):
        super().__init__(message)


class UsageError(RadiusdError):
    """Bad input from an admin or user; the message is one line naming the problem."""


class NotFound(UsageError):
    """An unknown user, token, set or admin."""


class AlreadyExists(UsageError):
    """A duplicate user, token serial or admin."""


class KeyMismatch(RadiusdError):
    """The key file is not the key the database was initialised with (issue 21, 7): every
    PIN, seed and code stored there would fail to verify, so the server does not start."""

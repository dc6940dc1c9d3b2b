"""The passcode a user types at the VPN prompt: PIN followed by a tokencode (SPEC
"Authentication rules"), and the PIN format (SPEC "CLI": 4–8 letters and digits).

Owns: splitting a passcode into PIN part and code by the code length an authenticator
expects; validating a PIN an admin sets. Pure: no I/O, no clock, no keys.

Must not import: twisted, sqlalchemy, pyrad.
"""

from __future__ import annotations

import re

# SPEC: "PIN: 4–8 characters, letters and digits". ASCII only, so that a PIN typed on any
# NAS keyboard layout arrives as the same bytes it was hashed from (no Unicode digits or
# normalisation forms). ``fullmatch``: "$" would also accept a trailing newline.
_PIN = re.compile(r"[A-Za-z0-9]{4,8}")


def split_passcode(passcode: bytes, code_length: int) -> tuple[bytes, bytes] | None:
    """Split ``PIN || code`` by the length of the code an authenticator expects.

    The last ``code_length`` octets are the code, everything before it the PIN part (empty
    for a user without a PIN, who sends the code alone).

    Args:
        passcode: the decrypted PAP User-Password octets.
        code_length: the number of digits the authenticator's codes have.
    Returns:
        ``(pin_part, code)``, or ``None`` when the passcode is shorter than ``code_length``
        or the code part is not all ASCII digits (it cannot be a code of this authenticator).
    Raises:
        ValueError: ``code_length`` is less than 1.
    """
    if code_length < 1:
        raise ValueError(f"code length {code_length} must be at least 1")
    if len(passcode) < code_length:
        return None
    cut = len(passcode) - code_length
    pin_part, code = bytes(passcode[:cut]), bytes(passcode[cut:])
    # bytes.isdigit() is ASCII-only: b"0".."9", never other Unicode digits.
    if not code.isdigit():
        return None
    return pin_part, code


def validate_pin(pin: str) -> None:
    """Check a PIN an admin or the CLI sets against SPEC's format.

    Args:
        pin: the candidate PIN.
    Raises:
        ValueError: not 4–8 ASCII letters or digits. The message does not repeat the PIN.
    """
    if not isinstance(pin, str) or _PIN.fullmatch(pin) is None:
        raise ValueError("PIN must be 4–8 letters or digits")

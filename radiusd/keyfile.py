"""The key file: 32 random bytes, hex-encoded, mode 0600, created once by ``radiusd init``.

Owns the file I/O for the master key; ``crypto.Keys`` derives everything from its content.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from radiusd.crypto import MASTER_KEY_BYTES, Keys
from radiusd.errors import UsageError


def create_key_file(path: Path) -> bool:
    """Create the key file if it does not exist (atomically, mode 0600).

    Returns:
        True if a new key was written, False if the file already existed.
    Raises:
        UsageError: the file cannot be written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    except OSError as exc:
        raise UsageError(f"cannot create key file {path}: {exc.strerror}") from None
    try:
        os.write(fd, (secrets.token_bytes(MASTER_KEY_BYTES).hex() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def load_keys(path: Path) -> Keys:
    """Read the key file.

    Raises:
        UsageError: missing ("run `radiusd init`"), unreadable, readable by others, or malformed.
    """
    try:
        info = path.stat()
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise UsageError(f"key file {path} does not exist: run `radiusd init`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read key file {path}: {exc}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"key file {path} is readable by others: chmod 600 {path}")
    try:
        master = bytes.fromhex(text)
        return Keys.from_master(master)
    except ValueError:
        raise UsageError(f"key file {path} is malformed (expected 64 hex digits)") from None

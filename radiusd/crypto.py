"""The server key and what is derived from it: sealed token seeds, keyed PIN hashes,
keyed hashes of emergency codes and of retransmission receipts, password hashes.

The master key lives in the key file (``keyfile.py``), never in the database, so a stolen
database alone gives no seed, PIN or code. Sub-keys are derived with HKDF-SHA256, one per
purpose, so no two uses share a key.

Must not import: sqlalchemy, twisted, pyrad, os.environ. No I/O.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from radiusd.keyedhash import HmacKey
from radiusd.model import RandomSource, Secret

MASTER_KEY_BYTES = 32
_SEAL_VERSION = b"\x01"
_NONCE_BYTES = 12
_SALT_BYTES = 16


DECOY_OWNER = ""  # no user name is empty (accounts: a name has 1–253 octets)
DECOY_SERIAL = "decoy"


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"radiusd/" + purpose).derive(master)


class SealError(ValueError):
    """A sealed value does not open with this key (wrong key file, or tampered data)."""


@dataclass(frozen=True, slots=True)
class Keys:
    """Purpose keys derived from the master key. Never printed (fields are ``Secret``)."""

    seed_key: Secret
    pin_key: Secret
    code_key: Secret
    receipt_key: Secret
    # The key check value's own key (``key_check``): no other use shares it.
    check_key: Secret
    # AES-GCM with seed_key, set up once: its key schedule per login was a measurable cost.
    _seed_aead: AESGCM = field(init=False, repr=False, compare=False)
    # The HMAC keys' hash states, likewise (keyedhash: 4–5 µs a hash saved down to ~2).
    _pin_mac: HmacKey = field(init=False, repr=False, compare=False)
    _code_mac: HmacKey = field(init=False, repr=False, compare=False)
    _receipt_mac: HmacKey = field(init=False, repr=False, compare=False)
    # A decoy user's PIN hash and sealed seed (issue 21, 10), for ``decide`` to check a
    # passcode against when there is no real one to check (unknown user, no PIN), so that
    # every Reject costs the same keyed hashes. Derived from the keys, no randomness.
    decoy_pin_hash: bytes = field(init=False, repr=False, compare=False)
    decoy_sealed_seed: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_seed_aead", AESGCM(self.seed_key.reveal()))
        object.__setattr__(self, "_pin_mac", HmacKey(self.pin_key.reveal(), "sha256"))
        object.__setattr__(self, "_code_mac", HmacKey(self.code_key.reveal(), "sha256"))
        object.__setattr__(self, "_receipt_mac", HmacKey(self.receipt_key.reveal(), "sha256"))
        # The decoy's PIN is the empty one, which no passcode can carry (a user with a PIN
        # must send one). Its seed is a fixed value sealed with a nonce derived from the key:
        # it protects nothing, and a random nonce of a real seed meets it with the same odds
        # (2^-96) as it meets another random nonce.
        salt = bytes(_SALT_BYTES)
        object.__setattr__(self, "decoy_pin_hash", salt + self._pin_mac.digest(salt))
        nonce = _derive(self.seed_key.reveal(), b"decoy-nonce")[:_NONCE_BYTES]
        object.__setattr__(self, "decoy_sealed_seed", self.seal_seed(
            bytes(20), DECOY_OWNER, DECOY_SERIAL, lambda size: nonce[:size]))

    @classmethod
    def from_master(cls, master: bytes) -> "Keys":
        """Raises ValueError if ``master`` is not 32 bytes."""
        if len(master) != MASTER_KEY_BYTES:
            raise ValueError(f"the server key must be {MASTER_KEY_BYTES} bytes")
        return cls(
            seed_key=Secret(_derive(master, b"seed")),
            pin_key=Secret(_derive(master, b"pin")),
            code_key=Secret(_derive(master, b"emergency-code")),
            receipt_key=Secret(_derive(master, b"receipt")),
            check_key=Secret(_derive(master, b"key-check")),
        )

    # --- token seeds: AES-256-GCM, bound to their owner and serial ---------------------

    def seal_seed(self, seed: bytes, owner: str, serial: str,
                  random: RandomSource) -> bytes:
        """Encrypt a token seed; ``owner``/``serial`` are bound as associated data."""
        nonce = random(_NONCE_BYTES)
        return _SEAL_VERSION + nonce + self._seed_aead.encrypt(nonce, seed, _seed_aad(owner, serial))

    def open_seed(self, sealed: bytes, owner: str, serial: str) -> Secret:
        """Decrypt a sealed seed.

        Raises:
            SealError: wrong key, wrong owner/serial, or tampered ciphertext.
        """
        if len(sealed) < 1 + _NONCE_BYTES + 16 or sealed[:1] != _SEAL_VERSION:
            raise SealError("sealed seed has an unknown format")
        nonce, ciphertext = sealed[1:1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES:]
        try:
            seed = self._seed_aead.decrypt(
                nonce, ciphertext, _seed_aad(owner, serial))
        except InvalidTag:
            raise SealError("sealed seed does not open with this key") from None
        return Secret(seed)

    # --- PINs: keyed hash with a per-user salt ----------------------------------------

    def hash_pin(self, pin: Secret, random: RandomSource) -> bytes:
        """``salt || HMAC-SHA256(pin_key, salt || pin)``: 48 bytes to store."""
        salt = random(_SALT_BYTES)
        return salt + self._pin_mac.digest(salt + pin.reveal())

    def verify_pin(self, pin: bytes, stored: bytes) -> bool:
        """Constant-time check of a candidate PIN against ``hash_pin``'s output."""
        salt, expected = stored[:_SALT_BYTES], stored[_SALT_BYTES:]
        actual = self._pin_mac.digest(salt + pin)
        return hmac.compare_digest(actual, expected)

    # --- emergency codes and receipts ---------------------------------------------------

    def code_hash(self, set_id: str, user_id: int, code: bytes) -> bytes:
        """Keyed hash of one emergency code, bound to its set and user (NIST 800-63B §5.1.2)."""
        message = b"%s\x00%d\x00%s" % (set_id.encode(), user_id, code)
        return self._code_mac.digest(message)

    def receipt_hash(self, *parts: bytes) -> bytes:
        """Keyed hash of a request's identity (client, port, Identifier, authenticator, name)."""
        message = b"".join(len(part).to_bytes(4, "big") + part for part in parts)
        return self._receipt_mac.digest(message)


    # --- which key this is -------------------------------------------------------------

    def key_check(self) -> str:
        """The key check value stored in the database at ``init`` (issue 21, 7): an HMAC
        of a fixed label under a key of its own, in hex. Equal for equal key files, and
        different for any other key; it reveals nothing of the key or its sub-keys."""
        return hmac.digest(self.check_key.reveal(), _KEY_CHECK_LABEL, "sha256").hex()


_KEY_CHECK_LABEL = b"radiusd key check\x00v1"


def _seed_aad(owner: str, serial: str) -> bytes:
    return b"token-seed\x00" + owner.encode("utf-8") + b"\x00" + serial.encode("utf-8")


# --- passwords (self-service and admin): scrypt, parameters stored with the hash ----------

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def hash_password(password: Secret, random: RandomSource) -> str:
    """``scrypt$N$r$p$salthex$hashhex`` (RFC 7914 via ``cryptography``)."""
    salt = random(_SALT_BYTES)
    digest = Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P).derive(
        password.reveal())
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: Secret, stored: str) -> bool:
    """Constant-time check; a malformed stored value never matches."""
    try:
        scheme, n, r, p, salt_hex, digest_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = Scrypt(salt=bytes.fromhex(salt_hex), length=32, n=int(n), r=int(r),
                        p=int(p)).derive(password.reveal())
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, bytes.fromhex(digest_hex))


def fingerprint(data: bytes) -> str:
    """A short non-secret fingerprint (for logs: which key file, never its value)."""
    return hashlib.sha256(b"radiusd-fingerprint" + data).hexdigest()[:12]

"""``keyedhash.HmacKey``: the same HMAC as ``hmac.digest`` (RFC 2104, RFC 4231 vectors),
computed from hash states set up once per key."""

from __future__ import annotations

import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from radiusd.keyedhash import HmacKey


@pytest.mark.parametrize("name, key, message, expected", [
    # RFC 2104 Appendix (and RFC 2202 §2 test case 2): HMAC-MD5.
    ("md5", b"Jefe", b"what do ya want for nothing?", "750c783e6ab0b503eaa86e310a5db738"),
    # RFC 2202 §3 test case 1: HMAC-SHA-1.
    ("sha1", b"\x0b" * 20, b"Hi There", "b617318655057264e28bc0b6fb378c8ef146be00"),
    # RFC 4231 §4.7 test case 6: a key longer than the block size is hashed first.
    ("sha256", b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
])
def test_rfc_vectors(name, key, message, expected):
    assert HmacKey(key, name).digest(message).hex() == expected


@given(name=st.sampled_from(["md5", "sha1", "sha256", "sha512"]),
       key=st.binary(max_size=200), messages=st.lists(st.binary(max_size=300), max_size=4))
def test_every_message_under_one_key_matches_hmac_digest(name, key, messages):
    mac = HmacKey(key, name)
    for message in messages:  # the key's states are reused, never consumed
        assert mac.digest(message) == hmac.digest(key, message, name)


def test_repr_shows_the_hash_but_not_the_key():
    assert repr(HmacKey(b"hunter2-radius-secret", "md5")) == "HmacKey(md5, <hidden>)"


def test_an_unknown_hash_is_refused():
    with pytest.raises(ValueError):
        HmacKey(b"k", "no-such-hash")

"""The rules a new password of the web consoles must pass (issue 20, 13).

Owns: the minimum lengths (admins 12, self-service 8), the refusal of passwords made of one
repeated character, of a short deny-list of the most common passwords (compared ignoring
case, and also with digits and symbols at the end taken off: ``Password1234!`` is
``password``), and of a password that is the account's own name. NIST SP 800-63B §5.1.1.2:
check new passwords against commonly used ones; no composition rules.

Pure: no I/O. Must not import: twisted, sqlalchemy, pyrad.
"""

from __future__ import annotations

from radiusd.errors import UsageError
from radiusd.model import Secret

ADMIN_MIN_LENGTH = 12
SELF_SERVICE_MIN_LENGTH = 8

# The most common passwords of public breach corpora (e.g. the top of SecLists'
# "10-million-password-list-top-1000"), and the longer ones that pass a 12-character rule.
COMMON_PASSWORDS = frozenset("""
123456 1234567 12345678 123456789 1234567890 12345678910 123456789012 1234567890123
0123456789 987654321 9876543210 111111 000000 121212 123123 123321 654321 666666 696969
112233 159753 147258369 123qwe 1q2w3e4r 1q2w3e4r5t 1q2w3e4r5t6y 1qaz2wsx 1qaz2wsx3edc
zaq12wsx qwerty qwertyu qwertyui qwertyuiop qwertyuiopas qwerty123 qwerty1234 qwertz
asdfgh asdfghjkl asdfghjkl; zxcvbnm zxcvbnm123 azerty abc123 abcd1234 abcdef abcdefgh
abcdefghijkl password passw0rd p@ssword p@ssw0rd pass password1 password12 password123
password1234 passwordpassword pa55word secret secret123 letmein letmeinnow welcome
welcome1 welcome123 welcometo admin admin123 administrator root toor changeme changeit
default guest test test123 testing login master monkey dragon shadow sunshine princess
football baseball soccer hockey superman batman trustno1 iloveyou loveme lovely michael
jennifer jordan hunter ranger buster harley charlie thomas robert daniel andrew george
summer winter spring autumn freedom whatever starwars computer internet server network
radius radiusd vpnpassword qazwsx qazwsxedc mustang access killer pepper ginger
flower cheese biteme fuckyou 11111111 00000000 88888888 12341234 11223344 1234qwer
q1w2e3r4 q1w2e3r4t5 aa123456 a123456 abc12345
""".split())


def check_password(password: Secret, *, minimum: int, name: str | None = None,
                   what: str = "the password") -> None:
    """Refuse a new password that is short, one repeated character, common, or the name.

    Args:
        password: the new password. minimum: its least number of characters.
        name: the account's name (refused as its own password).
        what: how the message names it ("the admin password").
    Raises:
        UsageError: one line saying which rule refused it (never repeating it).
    """
    text = password.reveal().decode("utf-8", "replace")
    if len(text) < minimum:
        raise UsageError(f"{what} must have at least {minimum} characters")
    if len(set(text)) == 1:
        raise UsageError(f"{what} must not be one character repeated")
    lowered = text.lower()
    stem = lowered.rstrip("0123456789!@#$%^&*()-_=+.,;:?/\\|~`'\" ")
    if lowered in COMMON_PASSWORDS or stem in COMMON_PASSWORDS \
            or lowered.replace(" ", "") in COMMON_PASSWORDS:
        raise UsageError(f"{what} is one of the most common passwords: choose another")
    if name and lowered == name.lower():
        raise UsageError(f"{what} must not be the account's name")

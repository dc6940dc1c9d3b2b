"""radiusd: a RADIUS authentication server (PIN + TOTP/HOTP) with one-time emergency tokencodes."""

__version__ = "0.1.0"

"""The bench's users, tokens and emergency code sets, and the request specs of each phase.

Everything is created the way an admin would: the users and their TOTP seeds through the
bulk import (``radiusd.importing`` + ``radiusd.store.bulk``, the code behind
``radiusd user import``), the emergency sets through ``radiusd.emergency.issuing``
(``prepare_set`` gives the plaintext codes the bench then types). The seeds and codes stay
in this process's memory only, to compute what a user would type.

Three groups, so no phase disturbs another:

* ``bt…`` users (PIN + TOTP): the TOTP phase. A user accepts one code per time step, so a
  user sent in one round is sent again only in a later time step (``totp_specs``).
* ``be…`` users (PIN + TOTP + a set of 100 emergency codes): the emergency phase; every code
  is typed once, round-robin over the users.
* ``br…`` users (PIN + TOTP): the reject phase, the right PIN with a wrong code. The bench
  raises ``lockout.max_failures`` to 1000 and sends each user at most 900 wrong codes, so
  every reject is a full check with a failure counted, never the cheaper "locked".
"""

from __future__ import annotations

import base64
import io
import math
import os
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from radiusd import otp
from radiusd.accounts import Accounts
from radiusd.bench.loadgen import Pap
from radiusd.emergency import issuing
from radiusd.importing import import_users, read_rows
from radiusd.keyfile import load_keys
from radiusd.store import Store
from radiusd.store.bulk import import_batch

CODES_PER_SET = 100
MAX_FAILURES = 1000
FAILURE_BUDGET = 900  # wrong codes per reject user over the whole run (< MAX_FAILURES)
PERIOD = 30


def _pin(index: int) -> str:
    return f"{(index * 7919) % 9000 + 1000}"


@dataclass
class _User:
    name: str
    pin: str
    seed: bytes
    last_step: int = -1  # the TOTP step last sent for (bt…)
    budget: int = FAILURE_BUDGET  # wrong codes still to send (br…)


@dataclass
class Population:
    """The users the bench made, and what is left of their one-time codes."""

    totp: list[_User]
    reject: list[_User]
    emergency: deque[Pap]  # (user, PIN + code), not yet sent, round-robin over users
    import_seconds: float = 0.0
    issue_seconds: float = 0.0
    imported_users: int = 0
    _totp_queue: deque[int] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self._totp_queue = deque(range(len(self.totp)))

    # --- TOTP ------------------------------------------------------------------------------

    def totp_step_now(self) -> int:
        return otp.totp_step(datetime.now(UTC), PERIOD)

    def totp_available(self, step: int) -> int:
        return sum(user.last_step < step for user in self.totp)

    def totp_specs(self, step: int, limit: int) -> tuple[list[Pap], list[int]]:
        """One request per user not yet sent in ``step``: PIN + the code of ``step``.

        Returns:
            The specs, and the user index of each (for ``totp_sent``).
        """
        specs, owners = [], []
        for index in self._totp_queue:
            if len(specs) >= limit:
                break
            user = self.totp[index]
            if user.last_step < step:
                specs.append(Pap(user.name, (user.pin + otp.hotp(user.seed, step)).encode()))
                owners.append(index)
        return specs, owners

    def totp_sent(self, owners: list[int], sent: list[int], step: int) -> None:
        """Mark the users whose request went out; they move to the back of the queue."""
        used = {owners[index] for index in sent}
        for index in used:
            self.totp[index].last_step = step
        self._totp_queue = deque([i for i in self._totp_queue if i not in used]
                                 + [i for i in self._totp_queue if i in used])

    # --- rejects --------------------------------------------------------------------------

    def reject_specs(self, step: int, limit: int) -> tuple[list[Pap], list[int]]:
        """Right PIN, wrong code (one no step from ``step``-1 to ``step``+2 shows)."""
        wrong: dict[int, str] = {}
        for index, user in enumerate(self.reject):
            window = {otp.hotp(user.seed, s) for s in range(step - 1, step + 3)}
            wrong[index] = next(f"{n:06d}" for n in range(1000) if f"{n:06d}" not in window)
        budgets = [user.budget for user in self.reject]
        specs, owners = [], []
        while len(specs) < limit and any(budgets):
            for index, user in enumerate(self.reject):
                if budgets[index] and len(specs) < limit:
                    budgets[index] -= 1
                    specs.append(Pap(user.name, (user.pin + wrong[index]).encode()))
                    owners.append(index)
        return specs, owners

    def rejects_sent(self, owners: list[int], sent: list[int]) -> None:
        for index in sent:
            self.reject[owners[index]].budget -= 1

    def reject_budget(self) -> int:
        return sum(user.budget for user in self.reject)

    # --- emergency codes ------------------------------------------------------------------

    def emergency_specs(self, limit: int) -> list[Pap]:
        return [self.emergency[i] for i in range(min(limit, len(self.emergency)))]

    def emergency_sent(self, specs: list[Pap], sent: list[int]) -> None:
        used = {id(specs[index]) for index in sent}
        self.emergency = deque(spec for spec in self.emergency if id(spec) not in used)


def create(database_url: str, key_path, *, totp_users: int, reject_users: int,
           emergency_codes: int, progress=print) -> Population:
    """Create the three groups in the bench's (migrated, empty) database.

    Args:
        database_url, key_path: the bench's database and key file (after ``radiusd init``).
        totp_users, reject_users: sizes of the bt…/br… groups.
        emergency_codes: codes in total; sets of 100, one be… user per set.
        progress: called with one line per step.
    """
    keys = load_keys(key_path)
    now = datetime.now(UTC)
    random = os.urandom
    sets = math.ceil(emergency_codes / CODES_PER_SET)
    groups = {"bt": totp_users, "br": reject_users, "be": sets}
    users: dict[str, list[_User]] = {prefix: [] for prefix in groups}
    lines = ["name,pin,token_type,secret,digits,period,counter,serial\n"]
    for prefix, count in groups.items():
        for index in range(count):
            user = _User(name=f"{prefix}{index:06d}", pin=_pin(index), seed=os.urandom(20))
            users[prefix].append(user)
            lines.append(f"{user.name},{user.pin},totp,"
                         f"{base64.b32encode(user.seed).decode()},6,{PERIOD},,\n")
    store = Store.open(database_url, pool_size=1)
    try:
        started = time.perf_counter()
        report = import_users(read_rows(io.StringIO("".join(lines), newline="")),
                              lambda batch, audit_for: import_batch(store, batch, audit_for),
                              keys, random, now=now, actor="bench", node="bench",
                              source="bench")
        import_seconds = time.perf_counter() - started
        if report.bad_rows:
            raise RuntimeError(f"bench import refused rows: {report.bad_rows[:3]}")
        progress(f"imported {report.users} users with TOTP seeds in {import_seconds:.1f} s "
                 f"({report.users / import_seconds:,.0f}/s)")
        accounts = Accounts(store, keys, random, "bench")
        accounts.set_setting("lockout.max_failures", str(MAX_FAILURES), actor="bench",
                             now=now)
        settings = store.load_settings()
        started = time.perf_counter()
        codes: list[list[Pap]] = []
        for user in users["be"]:
            prepared = issuing.prepare_set(
                store, keys, random, settings, user_name=user.name, count=CODES_PER_SET,
                lifetime=timedelta(days=7), issued_by="bench", reason="bench", now=now)
            issuing.commit_set(store, prepared, actor="bench", destination="bench",
                               node="bench", now=now)
            codes.append([Pap(user.name, user.pin.encode() + code.reveal())
                          for code in prepared.codes])
        issue_seconds = time.perf_counter() - started
        if sets:
            progress(f"issued {sets} emergency sets of {CODES_PER_SET} codes in "
                     f"{issue_seconds:.1f} s")
    finally:
        store.close()
    # Round-robin over users: consecutive requests belong to different users.
    emergency = deque(column[position] for position in range(CODES_PER_SET)
                      for column in codes)
    while len(emergency) > emergency_codes:
        emergency.pop()
    return Population(totp=users["bt"], reject=users["br"], emergency=emergency,
                      import_seconds=import_seconds, issue_seconds=issue_seconds,
                      imported_users=report.users)

"""The composition root: the one place concrete classes meet (like twisted.names' tap.py).

``open_store``/``open_keys`` serve the CLI; ``start_server`` wires config, keys, store, the
DB thread pool, the handlers and one ``RadiusProtocol`` per listen address onto a reactor;
``serve`` runs it until SIGTERM/SIGINT.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import hmac
import logging
import os
import queue
import socket
import struct
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Callable

from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import (FilteringLogObserver, LogLevel, LogLevelFilterPredicate, Logger,
                            globalLogBeginner, textFileLogObserver)
from twisted.python.failure import Failure

from admin_web.server import start_admin_web
from radiusd.clients import ClientTable
from radiusd.config import Config, ListenAddress
from radiusd.crypto import Keys
from radiusd.dedup import ReplyCache
from radiusd.errors import (ConfigError, DataRefused, KeyMismatch, NotInitialised,
                            RadiusdError, StoreUnavailable)
from radiusd.handlers import HANDLERS
from radiusd.handlers.access_request import authenticate_batch
from radiusd.handlers.context import HandlerContext, SettingsCache, StoreHealth
from radiusd.keyfile import create_key_file, load_keys
from radiusd.protocol import RadiusProtocol
from radiusd.settings import stored_problems
from radiusd.store import Store

log = Logger(namespace="radiusd")

# A DB call slower than this gets no reply: below the NAS's usual 3–5 s retry interval.
DB_TIMEOUT = 3.0
# How often "database unreachable" is logged, and probed, while it lasts.
OUTAGE_LOG_INTERVAL = 60.0
# A DB call that answers but takes this long is logged (at most once per
# OUTAGE_LOG_INTERVAL, with the slowest since): its requests were answered, but late
# enough for a NAS to retransmit or give up (a disk stall, a long write lock).
SLOW_DB_CALL = 1.0
OUTAGE_PROBE_INTERVAL = 2.0
# Expired retransmission receipts are deleted this often, a bounded number at a time.
RECEIPT_PRUNE_INTERVAL = 1.0
# SQLite's write-ahead log is checkpointed this often, off the request path. Often, so
# that each checkpoint is small: its writes and its fsync of the database file delay the
# commits' own fsyncs while they last (measured: once a second, one batch a second took
# 6-14 ms instead of ~1). At 870 logins/s, p99 PIN+TOTP / PIN+emergency over two runs of
# three rounds each: every 0.2 s 12.8 / 26.7 and 9.1 / 16.8 ms; every 0.05 s 8.0 / 12.7 and
# 6.0 / 13.0 ms; every 0.02 s 6.1 / 11.6 and 5.4 / 11.1 ms (docs/performance.md). A
# checkpoint with nothing to copy is a read of the WAL index.
CHECKPOINT_INTERVAL = 0.02


def node_name() -> str:
    """This server's name in audit rows: the host name and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _sqlite_file(url: str) -> Path | None:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url in ("sqlite:///:memory:",):
        return None
    return Path(url[len(prefix):])


# SQLite's own files beside the database; the unix VFS creates the -wal and -shm with the
# database file's mode (findCreateFileMode), so a private database keeps them private.
_SQLITE_COMPANIONS = ("", "-wal", "-shm")


def _create_private(path: Path) -> None:
    """Create an empty database file with mode 0600 (SQLite takes a zero-length file as an
    empty database): it holds user names, audit rows and password hashes, and sqlite3 would
    create it 0644 under the usual umask."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        pass  # another process (a second `init`) created it first


def database_files_open_to_others(config: Config) -> list[tuple[Path, int]]:
    """The SQLite database and its -wal/-shm that group or others may read or write, with
    their modes (``serve`` and ``init`` warn about each). Empty for PostgreSQL."""
    path = _sqlite_file(config.database.url)
    if path is None:
        return []
    found = []
    for suffix in _SQLITE_COMPANIONS:
        companion = Path(f"{path}{suffix}")
        try:
            mode = companion.stat().st_mode
        except OSError:
            continue
        if mode & 0o077:
            found.append((companion, mode & 0o777))
    return found


def database_file_warning(path: Path, mode: int) -> str:
    """The line ``serve`` logs and ``init`` prints for each ``database_files_open_to_others``."""
    return (f"database file {path} has mode {mode:04o}: group or others can read or write "
            f"it (user names, audit rows, password hashes): chmod 600 {path}")


def open_store(config: Config, *, create: bool = False, pool_size: int = 1) -> Store:
    """Open the configured database; with ``create`` make its folder (``init``/``serve``).

    Raises:
        NotInitialised: without ``create``, the SQLite file does not exist (nothing is
            created behind the admin's back) or the schema is not at head.
        StoreUnavailable: the database cannot be reached.
    """
    path = _sqlite_file(config.database.url)
    if path is not None:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                _create_private(path)
        elif not path.exists():
            raise NotInitialised(f"database {path} does not exist: run `radiusd init`")
    store = Store.open(config.database.url, pool_size=pool_size)
    if not create:
        try:
            store.check_schema()
        except Exception:
            store.close()
            raise
    return store


def db_threads(config: Config) -> int:
    """DB thread-pool size: SQLite has one writer, so one thread (measured: a second thread
    to overlap reads with the fsync lost ~25% to GIL contention on one core). PostgreSQL:
    two, so one batch is decided while the other waits for the server; more threads only
    make smaller batches that fight over the GIL (measured with ``make bench BENCH=
    "--database postgresql"``, PIN+TOTP/s: 1 thread 4,303, 2: 4,387, 4: 3,342, 8: 3,474)."""
    return 1 if config.database.url.startswith("sqlite") else 2


def initialise(config: Config) -> tuple[bool, Store]:
    """``radiusd init``: key file (mode 0600) and schema at head. Idempotent.

    Returns:
        (whether a new key file was created, the open store).
    """
    created = create_key_file(config.keys.path)
    store = open_store(config, create=True, pool_size=db_threads(config))
    try:
        store.migrate()
        check_key(config, store, open_keys(config), record=True)
    except Exception:
        store.close()
        raise
    return created, store


def open_keys(config: Config) -> Keys:
    return load_keys(config.keys.path)


def check_key(config: Config, store: Store, keys: Keys, *, record: bool) -> None:
    """Refuse a key file that is not the database's own (issue 21, 7).

    Another valid key (a restored database, a server of a cluster with a key of its own)
    opens no seed and matches no PIN or code: the server would start and reject everyone,
    counting each login towards lockout. The database holds the key's check value
    (``Keys.key_check``); ``init`` and ``serve`` (``record``) store it when it is absent (a
    database initialised before radiusd stored one gets the value of the key in use then),
    and every start compares it.

    Raises:
        KeyMismatch: the stored value is another key's (one line naming both).
        StoreUnavailable, NotInitialised: from the store.
    """
    expected = keys.key_check()
    stored = (store.record_key_check(expected, datetime.now(UTC)) if record
              else store.key_check())
    if stored is not None and not hmac.compare_digest(stored, expected):
        raise KeyMismatch(
            f"key file {config.keys.path} does not match database {_safe_url(config)}: "
            "the database was initialised with another key, and no PIN, token or "
            "emergency code stored in it would verify (use that database's own key file, "
            "or another database)")


def key_problem(config: Config) -> str | None:
    """``check-config``: the ``check_key`` refusal for this config's key file and database,
    when both can be read; None when they match or cannot be compared (no key file yet, a
    database that is not reachable or not initialised, or without a check value)."""
    try:
        keys = open_keys(config)
        store = open_store(config)
    except RadiusdError:
        return None
    try:
        check_key(config, store, keys, record=False)
    except KeyMismatch as exc:
        return str(exc)
    except RadiusdError:
        return None
    finally:
        store.close()
    return None


class BlockingThreads:
    """A fixed set of threads that run blocking calls (the database) for the reactor.

    ``run(fn, *args)`` returns a Deferred that fires on the reactor thread with ``fn``'s
    result or failure. Twisted's ``ThreadPool`` was used first; it wraps every call in a
    closure that refers to itself (``callInThreadWithCallback``'s ``inContext``), so each
    DB call left a reference cycle of four objects that only the cyclic collector frees:
    at 1,600 logins/s a generation-0 collection of ~45,000 such objects every ~11 s
    stopped the reactor for 12-50 ms (found with a ``gc.callbacks`` timer;
    docs/performance.md). Here a call is a tuple on a queue and nothing refers back to itself.
    """

    def __init__(self, reactor, size: int, name: str):
        self.reactor = reactor
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{index}",
                                          daemon=True) for index in range(size)]
        self._stopped = False

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Let the calls already queued finish, then end the threads (waits for them)."""
        if self._stopped:
            return
        self._stopped = True
        for _ in self._threads:
            self._calls.put(None)
        for thread in self._threads:
            if thread.is_alive():
                thread.join()

    def run(self, fn: Callable[..., Any], *args: Any) -> defer.Deferred:
        """Run ``fn(*args)`` in one of the threads.

        Once stopped, fails at once with StoreUnavailable (no reply is sent for a request
        that arrives while the server shuts down).
        """
        if self._stopped:
            return defer.fail(StoreUnavailable("the server is stopping"))
        done: defer.Deferred = defer.Deferred()
        self._calls.put((fn, args, done))
        return done

    def _work(self) -> None:
        call_from_thread = self.reactor.callFromThread
        while (call := self._calls.get()) is not None:
            fn, args, done = call
            try:
                outcome = fn(*args)
            except BaseException:
                call_from_thread(done.errback, Failure())
            else:
                call_from_thread(done.callback, outcome)
            # Nothing of this call is kept alive while the thread waits for the next one.
            call = fn = args = done = outcome = None


class DatabaseRunner:
    """``run_db(fn, *args)``: runs ``fn`` in the dedicated DB pool, never on the reactor.

    A timeout or an unreachable database becomes ``StoreUnavailable`` (no reply is sent)
    and marks the database down; ``DataRefused`` (a statement refused for its data) passes
    through and is no outage. Only evidence that logins can commit marks it up again: a
    successful ``probe``, a small committed write (``Store.probe_commit``) run every
    ``OUTAGE_PROBE_INTERVAL`` while it is down, when no call failed in the interval before
    it. A read that answers, or any other call,
    never does: with a full disk or SQLite's writer held by another process, reads answer
    while every login fails, and Status-Server must stay quiet (issue 21, 4).

    ``database unreachable`` is logged when an outage starts, then once a minute while it
    lasts, and ``database reachable again`` once when it ends; at most one
    ``unreachable`` line a minute, whatever flaps: an outage starting within a minute of
    the last such line is not logged (nor its end) unless it lasts to the minute.

    A call that succeeds after ``SLOW_DB_CALL`` seconds or more (queueing included) is
    logged as a warning, at most once a minute, with how many were slow and the slowest.
    """

    log = Logger(namespace="radiusd.store")

    def __init__(self, reactor, threads: BlockingThreads, health: StoreHealth,
                 probe: Callable[[], Any], timeout: float = DB_TIMEOUT):
        self.reactor = reactor
        self.threads = threads
        self.health = health
        self.probe = probe
        self.timeout = timeout
        self._logged_at: float | None = None    # the last "database unreachable" line
        self._outage_logged = False             # this outage's start (or a minute) logged
        self._prober: LoopingCall | None = None
        self._failed_at = float("-inf")         # the last call that found it down
        self._slow_logged_at: float | None = None
        self._slow_calls = 0        # slow calls not yet logged, and the slowest of them
        self._slowest = 0.0

    def __call__(self, fn: Callable[..., Any], *args: Any) -> defer.Deferred:
        return self._run(fn, args, is_evidence=False)

    def _run(self, fn: Callable[..., Any], args: tuple, *, is_evidence: bool) -> defer.Deferred:
        d = self.threads.run(fn, *args)
        d.addTimeout(self.timeout, self.reactor)
        d.addCallbacks(self._succeeded, self._failed,
                       callbackArgs=(self.reactor.seconds(), is_evidence))
        return d

    def _succeeded(self, result: Any, started: float, is_evidence: bool) -> Any:
        now = self.reactor.seconds()
        if now - started >= SLOW_DB_CALL:
            self._slow(now, now - started)
        # A probe that commits ends the outage only when no call failed for a whole probe
        # interval before it: on a full disk a tiny commit may fit where the logins' do not,
        # and Status-Server must not come back while they still fail.
        if is_evidence and self._failed_at <= started - OUTAGE_PROBE_INTERVAL \
                and self.health.mark_up():
            if self._outage_logged:
                self.log.info("database reachable again: answering requests")
            self._outage_logged = False
            if self._prober is not None and self._prober.running:
                self._prober.stop()
        return result

    def _slow(self, now: float, seconds: float) -> None:
        self._slow_calls += 1
        self._slowest = max(self._slowest, seconds)
        if self._slow_logged_at is not None and now - self._slow_logged_at < OUTAGE_LOG_INTERVAL:
            return
        self.log.warn("database slow: {calls} call(s) took over {limit:g} s since the last "
                      "such warning, the slowest {slowest:.1f} s (a disk stall, or a long "
                      "write lock); their replies left that late, and NASes may have "
                      "retransmitted or given up",
                      calls=self._slow_calls, slowest=self._slowest, limit=SLOW_DB_CALL)
        self._slow_logged_at = now
        self._slow_calls, self._slowest = 0, 0.0

    def _failed(self, failure):
        if failure.check(DataRefused):
            # The database answered: one statement's data was refused (issue 21, 1). Not
            # an outage; the caller fails that request alone.
            return failure
        if failure.check(defer.TimeoutError, defer.CancelledError):
            reason = f"no answer within {self.timeout:g} s"
        elif failure.check(StoreUnavailable):
            reason = str(failure.value)
        else:
            return failure
        now = self.reactor.seconds()
        self._failed_at = now
        self.health.mark_down(now, reason)
        if self._prober is None or not self._prober.running:
            self._prober = LoopingCall(self._probe)
            self._prober.clock = self.reactor
            self._prober.start(OUTAGE_PROBE_INTERVAL, now=False)
        if self._logged_at is None or now - self._logged_at >= OUTAGE_LOG_INTERVAL:
            self._logged_at = now
            self._outage_logged = True
            self.log.error("database unreachable ({reason}): not answering, so NASes fail "
                           "over to the next server", reason=reason)
        raise StoreUnavailable(reason)

    def _probe(self) -> defer.Deferred:
        # Returned, so the LoopingCall waits for it: one probe at a time.
        return self._run(self.probe, (), is_evidence=True).addErrback(
            lambda f: f.trap(StoreUnavailable))


class GroupCommit:
    """Group commit: the Access-Requests that arrive while a batch is in the database are
    decided and committed together in the next one (one transaction, one fsync).

    A request that finds the database idle is a batch of its own and waits for nothing;
    under load, batches grow by themselves (up to ``max_batch``), because requests queue
    while the previous batch commits, and so the cost of a batch (its queries, its
    commit) is shared by more requests exactly when the server is busiest. No request
    ever waits for company: holding small batches back for 2 ms (tried) tripled the
    median latency at half load and saved no CPU (docs/performance.md). ``concurrency``
    batches run at once (the DB thread-pool size: 1 on SQLite, which has one writer).
    Every request still gets its own compare-and-set, and its reply only after its batch
    committed.
    """

    def __init__(self, run_db: Callable[..., defer.Deferred], process: Callable[..., list],
                 ctx: HandlerContext, *, max_batch: int = 256, concurrency: int = 1):
        self.run_db = run_db
        self.process = process
        self.ctx = ctx
        self.max_batch = max_batch
        self.concurrency = concurrency
        self._pending: list[tuple[Any, defer.Deferred]] = []
        self._running = 0

    def __call__(self, item: Any) -> defer.Deferred:
        waiting: defer.Deferred = defer.Deferred()
        self._pending.append((item, waiting))
        self._start()
        return waiting

    def _start(self) -> None:
        while self._running < self.concurrency and self._pending:
            batch = self._pending[:self.max_batch]
            del self._pending[:self.max_batch]
            self._running += 1
            self.run_db(self.process, self.ctx, [item for item, _ in batch]).addBoth(
                self._finished, batch)

    def _finished(self, result: Any, batch: list[tuple[Any, defer.Deferred]]) -> None:
        self._running -= 1
        if isinstance(result, Failure):
            for _, waiting in batch:
                waiting.errback(result)
        else:
            for (_, waiting), verdict in zip(batch, result, strict=True):
                waiting.callback(verdict)
        self._start()


@dataclass
class RunningServer:
    ports: list
    ctx: HandlerContext
    threads: BlockingThreads


# A burst of requests (a VPN concentrator rebooting, 9:00 on a Monday) waits in the RADIUS
# socket's receive buffer while the server works through it; what does not fit is dropped
# by the kernel ("receive buffer errors" in `netstat -su`) and waits for the NAS to
# retransmit, seconds later. Linux's default buffer (net.core.rmem_default, 208 KiB) holds
# 256 requests on loopback (832 bytes each by the kernel's count, whatever their size): the
# bench with 512 requests in flight lost 256 of them. Asked for: 8 MiB, which Linux doubles
# (~20,000 requests); memory is only used while requests wait.
RECEIVE_BUFFER = 8 * 1024 * 1024
# Sets the size beyond net.core.rmem_max, for a process with CAP_NET_ADMIN (<asm/socket.h>).
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def enlarge_receive_buffer(sock: socket.socket, size: int = RECEIVE_BUFFER) -> int:
    """Ask for a ``size``-byte receive buffer on ``sock``; returns what the kernel granted
    (as ``SO_RCVBUF`` reads back: Linux doubles the size asked, for its bookkeeping).

    With CAP_NET_ADMIN (root) the size is forced; otherwise the kernel caps it at
    net.core.rmem_max.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:  # EPERM without CAP_NET_ADMIN
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        except OSError:  # refused too: the default stays, and the caller reports its size
            pass
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


# Linux's socket option that attaches a classic BPF program to a SO_REUSEPORT group: the
# program's result is the index of the socket that gets the datagram (<linux/socket.h>).
SO_ATTACH_REUSEPORT_CBPF = getattr(socket, "SO_ATTACH_REUSEPORT_CBPF", 51)


def _identifier_steering(workers: int) -> bytes:
    """A classic BPF program (``struct sock_filter[]``) for a SO_REUSEPORT group of
    ``workers`` UDP sockets: socket index = RADIUS Identifier mod ``workers``.

    The kernel runs it with the packet's data starting at the UDP payload, whose second
    byte is the Identifier (RFC 2865 §3). An index past the group's size (a worker gone)
    or a payload too short falls back to the kernel's own choice.
    """
    instructions = ((0x30, 1),        # BPF_LD | BPF_B | BPF_ABS: A = payload[1]
                    (0x94, workers),  # BPF_ALU | BPF_MOD | BPF_K: A = A % workers
                    (0x16, 0))        # BPF_RET | BPF_A: return A
    return b"".join(struct.pack("=HBBI", code, 0, 0, k) for code, k in instructions)


def reuse_port_socket(host: str, port: int, workers: int) -> socket.socket:
    """A UDP socket bound with SO_REUSEPORT: ``workers`` processes each bind one to the
    same address.

    Left to itself, the kernel picks the socket by a hash of the source address and port,
    so one NAS that sends everything from one port (most VPN concentrators) would keep
    one worker busy and leave the others idle, and a few NASes split unevenly. The
    group's BPF program picks by Identifier instead (``_identifier_steering``): every
    NAS's requests spread evenly, and a retransmission, which keeps its Identifier,
    reaches the worker whose reply cache holds its answer. Where the kernel refuses the
    program, the hash stays (logged); receipts cover the rest either way.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    if workers > 1:
        instructions = _identifier_steering(workers)
        program = ctypes.create_string_buffer(instructions, len(instructions))
        # struct sock_fprog: the number of instructions (8 bytes each), then a pointer.
        fprog = struct.pack("HP", len(instructions) // 8, ctypes.addressof(program))
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)
        except OSError as exc:
            log.warn("cannot steer requests to workers by Identifier ({error}): the "
                     "kernel spreads them by source port", error=str(exc))
    return sock


IN_USE = "already in use (another radiusd or RADIUS server?)"
# The supervisor hands each worker its bound sockets: their descriptors, one per listen
# address in config order, comma-separated.
WORKER_SOCKETS = "RADIUSD_WORKER_SOCKETS"


def cannot_listen(address: ListenAddress, exc: OSError) -> str:
    """The one line for a RADIUS address that cannot be bound."""
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {address}: {IN_USE}"
    return f"cannot listen on {address}: {exc.strerror or exc}"


def check_ports_free(addresses) -> None:
    """Raise RadiusdError (one line) if another process holds one of ``addresses``.

    The probe binds without SO_REUSEPORT, which fails if anyone holds the address with or
    without it, then releases it: a second server's workers, which bind with SO_REUSEPORT,
    would otherwise join the first one's group and say "ready" while the kernel hands
    them a share of its datagrams, or none (issue 21, 8).
    """
    for address in addresses:
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((address.host, address.port))
            except OSError as exc:
                raise RadiusdError(cannot_listen(address, exc)) from None


def worker_sockets(addresses, workers: int) -> list[list[socket.socket]]:
    """For each worker, its SO_REUSEPORT socket on each of ``addresses``, bound now.

    Called by the supervisor right after ``check_ports_free``, so that the time in which
    another server could take the port is that between two binds, not the seconds a
    worker takes to start. Raises RadiusdError (one line) if a bind fails.
    """
    bound: list[list[socket.socket]] = [[] for _ in range(workers)]
    try:
        for address in addresses:
            for index in range(workers):  # join order is the index the BPF program picks
                try:
                    bound[index].append(reuse_port_socket(address.host, address.port,
                                                          workers))
                except OSError as exc:
                    raise RadiusdError(cannot_listen(address, exc)) from None
    except RadiusdError:
        for sock in (sock for socks in bound for sock in socks):
            sock.close()
        raise
    return bound


def _inherited_sockets() -> list[socket.socket]:
    """The sockets the supervisor bound for this worker (``WORKER_SOCKETS``)."""
    value = os.environ.pop(WORKER_SOCKETS, "")
    return [socket.socket(fileno=int(fd)) for fd in value.split(",") if fd]


# prctl(2): the signal this process gets when its parent dies (<linux/prctl.h>).
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, signum: int) -> Callable[[], None]:
    """A ``preexec_fn`` for a worker: it gets ``signum`` when ``parent`` (the supervisor)
    dies, even by SIGKILL, instead of serving on as an orphan (issue 21, 8). The setting
    survives exec. If the parent died before the prctl, the child exits at once."""
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork: nothing to load after

    def set_up() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)
    return set_up


def worker_cpu(workers: int, index: int, cpus: set[int] | None = None) -> int | None:
    """The CPU that worker ``index`` of ``workers`` keeps to: its own when there is one
    worker per CPU this process may use (``cpus``, default its affinity), else None (the
    kernel chooses).

    A worker's threads hand Python's GIL to each other at every datagram and every
    database call; on one CPU that hand-over stays in its caches, and the workers stop
    trading places. Measured with two workers on two cores (`make bench --workers 2`,
    two interleaved runs): +13 % PIN+TOTP, +9 % PIN+emergency, +12 % rejects. With fewer
    workers than CPUs the kernel keeps its choice: it can move a worker off a CPU busy with
    interrupts or the database; with more, several would share one CPU.
    """
    usable = sorted(os.sched_getaffinity(0) if cpus is None else cpus)
    return usable[index] if workers == len(usable) and 0 <= index < workers else None


def start_server(config: Config, reactor, store: Store, keys: Keys, *,
                 debug: bool = False, node: str | None = None,
                 workers: int | None = None,
                 sockets: list[socket.socket] | None = None) -> RunningServer:
    """Wire everything and listen. Raises CannotListenError if a port is taken.

    ``workers``: this process is one of that many sharing the port (SO_REUSEPORT);
    ``sockets``: its sockets, one per listen address, bound by the supervisor.
    """
    threads = BlockingThreads(reactor, db_threads(config), name="radiusd-db")
    threads.start()
    reactor.addSystemEventTrigger("during", "shutdown", threads.stop)
    health = StoreHealth()
    runner = DatabaseRunner(reactor, threads, health, probe=partial(_probe, store))
    ctx = HandlerContext(
        store=store, keys=keys, run_db=runner,
        now=lambda: datetime.fromtimestamp(reactor.seconds(), UTC),
        settings=SettingsCache(store.load_settings, ttl=timedelta(seconds=5)),
        reject_delay=config.radius.reject_delay.total_seconds(),
        node=node or node_name(), perimeter=config.perimeter, health=health, debug=debug)
    ctx.group_commit = GroupCommit(runner, authenticate_batch, ctx,
                                   concurrency=db_threads(config))
    prune = LoopingCall(_prune_receipts, runner, store, ctx)
    prune.clock = reactor
    prune.start(RECEIPT_PRUNE_INTERVAL, now=False)
    reactor.addSystemEventTrigger("before", "shutdown", prune.stop)
    # SQLite's WAL checkpoint on a thread of its own, beside the request path.
    checkpoints = BlockingThreads(reactor, 1, name="radiusd-checkpoint")
    checkpoints.start()
    reactor.addSystemEventTrigger("during", "shutdown", checkpoints.stop)
    checkpoint = LoopingCall(_checkpoint, checkpoints, store)
    checkpoint.clock = reactor
    checkpoint.start(CHECKPOINT_INTERVAL, now=False)
    reactor.addSystemEventTrigger("before", "shutdown", checkpoint.stop)
    clients = ClientTable(config.clients)
    ports = []
    for index, address in enumerate(config.radius.listen):
        protocol = RadiusProtocol(clients=clients, handlers=HANDLERS, ctx=ctx, clock=reactor,
                                  cache=ReplyCache(ttl=30.0), debug=debug)
        if workers is not None:
            sock = sockets[index] if sockets else reuse_port_socket(address.host,
                                                                     address.port, workers)
            ports.append(reactor.adoptDatagramPort(sock.fileno(), sock.family, protocol,
                                                   maxPacketSize=4096))
            sock.close()  # Twisted holds its own duplicate of the descriptor
        else:
            ports.append(reactor.listenUDP(address.port, protocol, interface=address.host,
                                           maxPacketSize=4096))
        size_receive_buffer(ports[-1].socket, str(address))
    return RunningServer(ports=ports, ctx=ctx, threads=threads)


def size_receive_buffer(sock: socket.socket, address: str) -> int:
    """``enlarge_receive_buffer`` on a RADIUS socket, with a warning when the kernel
    granted less than asked for. Returns the size granted."""
    granted = enlarge_receive_buffer(sock)
    if granted < RECEIVE_BUFFER:
        log.warn("RADIUS on {address}: receive buffer {granted} bytes, less than the "
                 "{wanted} asked for: in a burst, requests that do not fit are dropped "
                 "until the NAS retransmits; raise the limit (sysctl -w "
                 "net.core.rmem_max={wanted}) or give radiusd CAP_NET_ADMIN",
                 address=address, granted=granted, wanted=RECEIVE_BUFFER)
    return granted


def _probe(store: Store) -> None:
    """During an outage: can logins commit again? A small committed write and (SQLite) a
    sync of its log, which keeps failing after a failed fdatasync until the server is
    restarted; a read answering is no evidence (issue 21, 4)."""
    store.probe_commit()


def _checkpoint(threads: BlockingThreads, store: Store) -> None:
    # Nothing committed since the last one: nothing to copy, no thread woken.
    if store.has_new_writes():
        threads.run(store.checkpoint).addErrback(
            lambda f: f.trap(StoreUnavailable))


def _prune_receipts(runner: DatabaseRunner, store: Store, ctx: HandlerContext) -> None:
    runner(store.prune_receipts, ctx.now()).addErrback(lambda f: f.trap(StoreUnavailable))


def _stop_on_signals(reactor) -> None:
    """SIGTERM and SIGINT stop the reactor, however often they come.

    systemd signals the whole process group and the supervisor forwards the signal too,
    so a worker gets it twice; Twisted's own handler then calls ``reactor.stop()`` on a
    stopping reactor and logs ReactorNotRunning as a critical traceback (issue 21, 13).
    """
    import signal

    from twisted.internet.error import ReactorNotRunning

    def stop(name: str) -> None:
        try:
            reactor.stop()
        except ReactorNotRunning:  # stopping already
            return
        log.info("received {signal}: stopping", signal=name)

    def handler(signum, frame) -> None:
        reactor.callFromThread(stop, signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


class StdlibToTwistedLog(logging.Handler):
    """Python ``logging`` records (psycopg's "error ignored in rollback ...", its time
    zone warning) as twisted.logger events, so that they carry the same timestamp and
    namespace as every other line instead of reaching stderr bare through logging's
    last-resort handler (issue 21, 13)."""

    LEVELS = ((logging.CRITICAL, LogLevel.critical), (logging.ERROR, LogLevel.error),
              (logging.WARNING, LogLevel.warn), (logging.INFO, LogLevel.info))

    def __init__(self, publisher=None):
        super().__init__(logging.WARNING)
        self.publisher = publisher

    def emit(self, record: logging.LogRecord) -> None:
        level = next((twisted for number, twisted in self.LEVELS if record.levelno >= number),
                     LogLevel.debug)
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format
            message = str(record.msg)
        Logger(namespace=record.name, observer=self.publisher).emit(
            level, "{message}", message=message)


def _begin_logging(debug: bool) -> None:
    level = LogLevel.debug if debug else LogLevel.info
    observer = FilteringLogObserver(textFileLogObserver(sys.stderr),
                                    [LogLevelFilterPredicate(defaultLogLevel=level)])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    logging.getLogger().addHandler(StdlibToTwistedLog())


def _warn_database_files(config: Config) -> None:
    for path, mode in database_files_open_to_others(config):
        log.warn("{warning}", warning=database_file_warning(path, mode))


def serve(config: Config, *, debug: bool = False, workers: int = 1,
          worker_index: int | None = None, ready_fd: int | None = None) -> int:
    """``radiusd serve``: init, listen, run until SIGTERM/SIGINT. Returns the exit code.

    With ``workers`` > 1 this process only supervises: it migrates once, starts N worker
    processes (``worker_index`` 0..N-1) that share the RADIUS port with SO_REUSEPORT, and
    forwards SIGTERM/SIGINT to them. Worker 0 also serves the admin web.
    """
    if workers > 1 and worker_index is None:
        return _supervise(config, debug=debug, workers=workers)
    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError

    if worker_index is None:
        check_ports_free(config.radius.listen)
        created, store = initialise(config)
    else:
        cpu = worker_cpu(workers, worker_index)
        if cpu is not None:  # before any thread starts: they inherit it
            os.sched_setaffinity(0, {cpu})
        created, store = False, open_store(config, pool_size=db_threads(config))
    keys = open_keys(config)
    if worker_index is not None:  # the supervisor's initialise recorded and compared it
        try:
            check_key(config, store, keys, record=False)
        except Exception:
            store.close()
            raise
    _begin_logging(debug)
    for key, message in config.warnings:
        log.warn("config warning: {key}: {message}", key=key, message=message)
    if worker_index is None:
        _warn_database_files(config)
    if worker_index in (None, 0):
        # A stored policy value out of bounds is read as its default (issue 20, 1): say so
        # at every start, not only when an admin happens to run `settings show`.
        for problem in stored_problems(store.load_setting_rows()).values():
            log.warn("settings: {problem}", problem=problem)
    if created:
        log.info("created key file {path}", path=str(config.keys.path))
    if config.admin_web.listen is not None and worker_index in (None, 0) \
            and store.count_admins() == 0:
        log.info("no admin of the web console yet: create the first one with "
                 "`radiusd admin add NAME --password-stdin`")
    exit_code = [0]
    sockets = _inherited_sockets() if worker_index is not None else None

    def go() -> None:
        _stop_on_signals(reactor)  # after Twisted installed its own handlers
        try:
            server = start_server(config, reactor, store, keys, debug=debug,
                                  workers=None if worker_index is None else workers,
                                  sockets=sockets)
        except (CannotListenError, OSError) as exc:
            # Taken since check_ports_free, or refused for another reason.
            log.critical("{error}", error=cannot_listen(
                ListenAddress(exc.interface, exc.port), exc.socketError)
                if isinstance(exc, CannotListenError) else f"cannot listen for RADIUS: {exc}")
            exit_code[0] = 1
            reactor.stop()
            return
        if worker_index in (None, 0):
            # Web sessions live in one process's memory: only one worker serves the web.
            try:
                web = start_admin_web(config, reactor, store=store, keys=keys,
                                      run_db=server.ctx.run_db, node=server.ctx.node)
            except (CannotListenError, OSError, ConfigError) as exc:
                log.critical("cannot start the admin web: {error}", error=str(exc))
                exit_code[0] = 1
                reactor.stop()
                return
            except Exception:  # never serve RADIUS alone, silently without the consoles
                log.failure("cannot start the admin web")
                exit_code[0] = 1
                reactor.stop()
                return
            if web is not None:
                host = web.getHost()
                scheme = "https" if config.admin_web.tls_cert else "http"
                shown = f"[{host.host}]" if ":" in host.host else host.host
                log.info("admin web on {url}", url=f"{scheme}://{shown}:{host.port}/")
        listening = ", ".join(f"{p.getHost().host}:{p.getHost().port}" for p in server.ports)
        if worker_index is None:
            log.info("radiusd ready: RADIUS on {listening}, {clients} client(s), database "
                     "{db}", listening=listening, clients=len(config.clients),
                     db=_safe_url(config))
        else:
            cpu = os.sched_getaffinity(0)
            log.info("worker {index} ready: RADIUS on {listening}, {cpus}",
                     index=worker_index, listening=listening,
                     cpus=f"CPU {min(cpu)}" if len(cpu) == 1 else f"{len(cpu)} CPUs")
        if ready_fd is not None:
            try:
                os.write(ready_fd, b"r")
            except BrokenPipeError:  # the supervisor gave up waiting, and stops us
                log.info("worker {index}: the supervisor stopped waiting: stopping",
                         index=worker_index)
                exit_code[0] = 1
                reactor.stop()
            finally:
                os.close(ready_fd)

    reactor.callWhenRunning(go)
    reactor.addSystemEventTrigger("after", "shutdown", store.close)
    # Long-lived objects made at start-up are never garbage: keep the cyclic collector off
    # them, and run it less often (a request allocates many short-lived objects; a profile
    # under load showed 17% in gc with the default thresholds).
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    reactor.run()
    log.info("radiusd stopped")
    return exit_code[0]


def _supervise(config: Config, *, debug: bool, workers: int) -> int:
    """Run ``workers`` worker processes until a signal; a worker that dies stops them all
    (exit 1) so the service manager restarts a whole, consistent server.

    The supervisor refuses a port another process holds, binds the workers' sockets
    itself and hands them over; a worker gets SIGTERM when the supervisor dies."""
    import select
    import signal
    import subprocess
    import time

    check_ports_free(config.radius.listen)
    bound = worker_sockets(config.radius.listen, workers)
    created, store = initialise(config)  # migrate once, before the workers open it
    store.close()
    _begin_logging(debug)
    _warn_database_files(config)
    if created:
        log.info("created key file {path}", path=str(config.keys.path))
    read_end, write_end = os.pipe()
    command = [sys.executable, "-m", "radiusd.cli", "--config", str(config.path), "serve",
               *(["-X"] if debug else []), "--ready-fd", str(write_end), "--workers",
               str(workers), "--worker-index"]
    die = die_with_parent(os.getpid(), signal.SIGTERM)
    children = []
    for index, socks in enumerate(bound):
        fds = tuple(sock.fileno() for sock in socks)
        children.append(subprocess.Popen(
            [*command, str(index)], pass_fds=(write_end, *fds), preexec_fn=die,
            env={**os.environ, WORKER_SOCKETS: ",".join(map(str, fds))}))
        for sock in socks:  # the worker holds it now
            sock.close()
    os.close(write_end)
    stopping = [False]

    def stop(signum, frame) -> None:
        stopping[0] = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ready, deadline = 0, time.monotonic() + 60
    while ready < workers and not stopping[0] and time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            break
        if select.select([read_end], [], [], 0.2)[0]:
            chunk = os.read(read_end, workers)
            if not chunk:
                break
            ready += len(chunk)
    os.close(read_end)
    if ready == workers:
        listening = ", ".join(str(address) for address in config.radius.listen)
        log.info("radiusd ready: {workers} workers sharing RADIUS on {listening}, database "
                 "{db}", workers=workers, listening=listening, db=_safe_url(config))
    elif not stopping[0]:
        log.critical("only {ready} of {workers} workers started", ready=ready,
                     workers=workers)
        stop(None, None)
    exit_code = 0
    while any(child.poll() is None for child in children):
        for child in children:
            if child.poll() is not None and child.returncode != 0 and not stopping[0]:
                log.critical("worker {pid} exited with {code}: stopping all workers",
                             pid=child.pid, code=child.returncode)
                stop(None, None)
                exit_code = 1
        time.sleep(0.1)
    if not stopping[0] or ready < workers:
        exit_code = 1
    log.info("radiusd stopped")
    return exit_code


def _safe_url(config: Config) -> str:
    """The database URL without its password, for logs."""
    url = config.database.url
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}@{host}"
    return url

"""The servers under test: ``radiusd serve`` and Debian's FreeRADIUS, as child processes.

Owns: the radiusd config the bench writes, FreeRADIUS's private configuration (a copy of
``/etc/freeradius/3.0`` that listens on 127.0.0.1 only, the recipe of
``notes/radius-protocol.md`` §6), starting either pinned to given CPUs, waiting until it
answers, stopping it (only the processes started here, by their id), and reading a
process tree's CPU time and peak resident size (``VmHWM``) from ``/proc``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

FREERADIUS_CONFIG = Path("/etc/freeradius/3.0")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """The bench cannot run (a missing part, a server that does not start): one line."""


# --- /proc -------------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants still alive (workers of ``serve --workers``)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        if not Path(f"/proc/{current}").exists():
            continue
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                pending.extend(int(child) for child in
                               (task / "children").read_text().split())
            except OSError:
                continue
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of these processes so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / _CLOCK_TICKS


def peak_rss_kib(pid: int) -> int | None:
    """``VmHWM``: the most resident memory this process has used, in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def free_udp_ports(count: int = 1, spacing: Sequence[int] = (0,)) -> int:
    """A port P such that P + each of ``spacing`` is free on 127.0.0.1 (UDP)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + max(spacing) > 65535:
            continue
        held = []
        try:
            for offset in spacing:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(sock)
                sock.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return base
    raise BenchError("no free UDP ports on 127.0.0.1")


def _pinned(cpus: set[int] | None) -> Callable[[], None] | None:
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


class _Child:
    """A child process started here; stopped by its own id only."""

    name = "process"

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def pids(self) -> list[int]:
        return process_tree(self.pid) if self.process is not None else []

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pids())

    def peak_rss(self) -> dict[str, int]:
        """Peak resident KiB per process of the tree (read before stopping it)."""
        values = {}
        for pid in self.pids():
            value = peak_rss_kib(pid)
            if value is not None:
                values[str(pid)] = value
        return values

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None:
            return
        children = [pid for pid in self.pids() if pid != self.pid]
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in children:  # workers it started, if it left any behind: by id
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


# --- radiusd -------------------------------------------------------------------------------


def write_radiusd_config(directory: Path, *, port: int, secret: str, database_url: str,
                         key_path: Path | None = None) -> Path:
    """The bench's radiusd.toml: one client (127.0.0.1), no reject delay, no admin web;
    the key file ``key_path`` (default ``DIRECTORY/radiusd.key``)."""
    path = directory / "radiusd.toml"
    path.write_text(f"""# written by python -m radiusd.bench
[radius]
listen = ["127.0.0.1:{port}"]
reject_delay = "0s"          # measure the work, not the FreeRADIUS-style hold-back

[database]
url = "{database_url}"

[keys]
path = "{key_path or directory / 'radiusd.key'}"

[[clients]]
name = "bench"
address = "127.0.0.1"
secret = "{secret}"

[admin_web]
listen = ""
""")
    return path


def radiusd_command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "radiusd.cli", "--config", str(config), *args]


def serve_has_workers_option(config: Path) -> bool:
    result = subprocess.run(radiusd_command(config, "serve", "--help"), capture_output=True,
                            text=True, timeout=60)
    return "--workers" in result.stdout


class RadiusdServer(_Child):
    """``radiusd serve`` with the bench config, its output in ``radiusd.log``."""

    name = "radiusd"

    def __init__(self, config: Path, *, workers: int = 1, cpus: set[int] | None = None,
                 name: str = "radiusd"):
        super().__init__()
        self.name = name
        self.config = config
        self.workers = workers
        self.cpus = cpus
        self.log_path = config.parent / "radiusd.log"

    def start(self, is_ready: Callable[[], bool], timeout: float = 60.0) -> None:
        """Start, wait for "radiusd ready" in the log and for ``is_ready()`` (a probe).

        Raises:
            BenchError: it exited or did not answer within ``timeout``.
        """
        args = ["serve"] + (["--workers", str(self.workers)] if self.workers > 1 else [])
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                radiusd_command(self.config, *args), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, preexec_fn=_pinned(self.cpus))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"radiusd serve exited with {self.process.returncode}:\n"
                                 f"{self.log_tail()}")
            if "radiusd ready" in self.log_path.read_text(errors="replace") and is_ready():
                return
            time.sleep(0.1)
        self.stop()
        raise BenchError(f"radiusd serve did not answer within {timeout:g} s:\n"
                         f"{self.log_tail()}")


# --- FreeRADIUS ----------------------------------------------------------------------------


def freeradius_binary() -> str | None:
    return shutil.which("freeradius") or shutil.which("radiusd", path="/usr/sbin")


def _drop_listen_blocks(text: str) -> str:
    """Remove every top-level ``listen { ... }`` block of a FreeRADIUS site."""
    out, index = [], 0
    while (match := re.search(r"\nlisten \{", text[index:])):
        start = index + match.start()
        out.append(text[index:start])
        depth, cursor = 0, start + 1
        while True:
            depth += {"{": 1, "}": -1}.get(text[cursor], 0)
            if text[cursor] == "}" and depth == 0:
                break
            cursor += 1
        index = cursor + 1
    return "".join(out) + text[index:]


class FreeRadiusServer(_Child):
    """Debian's FreeRADIUS from a private copy of its config, on 127.0.0.1 only.

    ``files`` users with ``Cleartext-Password`` (PAP), one client 127.0.0.1 with
    ``require_message_authenticator = no``, no proxying; the system config is only copied.
    """

    name = "freeradius"

    def __init__(self, directory: Path, *, secret: str, users: Sequence[tuple[str, str]],
                 cpus: set[int] | None = None):
        super().__init__()
        self.directory = directory
        self.secret = secret
        self.users = users
        self.cpus = cpus
        self.port = 0
        self.log_path = directory / "log" / "radius.log"

    def configure(self) -> None:
        """Write the private config (auth port P, inner-tunnel P+1, accounting P+10).

        Raises:
            BenchError: FreeRADIUS is not installed, or rejects the config.
        """
        binary = freeradius_binary()
        if binary is None or not FREERADIUS_CONFIG.is_dir():
            raise BenchError("--vs-freeradius needs Debian's FreeRADIUS: "
                             "apt-get install -y freeradius")
        self.port = free_udp_ports(spacing=(0, 1, 10))
        raddb = self.directory / "raddb"
        if self.directory.exists():
            shutil.rmtree(self.directory)
        (self.directory / "run").mkdir(parents=True)
        (self.directory / "log").mkdir()
        shutil.copytree(FREERADIUS_CONFIG, raddb, symlinks=True)
        conf = raddb / "radiusd.conf"
        text = conf.read_text()
        for pattern, replacement in [
                (r"(?m)^raddbdir = .*$", f"raddbdir = {raddb}"),
                (r"(?m)^run_dir = .*$", f"run_dir = {self.directory / 'run'}"),
                (r"(?m)^logdir = .*$", f"logdir = {self.directory / 'log'}"),
                (r"(?m)^proxy_requests\s*= yes", "proxy_requests = no"),
                (r"(?m)^(\s*)user = freerad", r"\1#user = freerad"),
                (r"(?m)^(\s*)group = freerad", r"\1#group = freerad")]:
            text = re.sub(pattern, replacement, text)
        conf.write_text(text)
        inner = raddb / "sites-available" / "inner-tunnel"
        inner.write_text(inner.read_text().replace("port = 18120", f"port = {self.port + 1}"))
        site = raddb / "sites-available" / "default"
        listen = (f"\nlisten {{\n\ttype = auth\n\tipaddr = 127.0.0.1\n\tport = {self.port}\n}}\n"
                  f"listen {{\n\ttype = acct\n\tipaddr = 127.0.0.1\n"
                  f"\tport = {self.port + 10}\n}}\n")
        site.write_text(_drop_listen_blocks(site.read_text()).replace(
            "server default {", "server default {" + listen, 1))
        (raddb / "clients.conf").write_text(
            "client localhost {\n\tipaddr = 127.0.0.1\n\tproto = udp\n"
            f"\tsecret = {self.secret}\n\trequire_message_authenticator = no\n"
            "\tnas_type = other\n}\n")
        authorize = raddb / "mods-config" / "files" / "authorize"
        entries = "".join(f'{name}\tCleartext-Password := "{password}"\n\n'
                          for name, password in self.users)
        authorize.write_text(entries + authorize.read_text())
        check = subprocess.run([binary, "-C", "-d", str(raddb)], capture_output=True,
                               text=True, timeout=60)
        if check.returncode != 0:
            raise BenchError(f"FreeRADIUS rejects the bench config ({raddb}):\n"
                             + "\n".join((check.stdout + check.stderr).splitlines()[-10:]))

    def start(self, is_ready: Callable[[], bool], timeout: float = 30.0) -> None:
        """Start ``freeradius -f`` (threaded, foreground) and wait until it answers.

        Raises:
            BenchError: it exited or did not answer within ``timeout``.
        """
        binary = freeradius_binary()
        assert binary is not None
        with (self.directory / "log" / "stdout.log").open("ab") as out:
            self.process = subprocess.Popen(
                [binary, "-f", "-d", str(self.directory / "raddb"), "-l", str(self.log_path)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_pinned(self.cpus))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"freeradius exited with {self.process.returncode}:\n"
                                 f"{self.log_tail()}")
            if is_ready():
                return
            time.sleep(0.1)
        self.stop()
        raise BenchError(f"freeradius did not answer within {timeout:g} s:\n{self.log_tail()}")

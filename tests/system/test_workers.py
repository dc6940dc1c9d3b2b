"""``radiusd serve --workers N``: N processes share the RADIUS port with SO_REUSEPORT."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter

from pyrad import packet

from radius_client import build_request, send_raw
from radiusd.app import worker_cpu
from support import (REPO, ServerProcess, free_udp_port, missing_part, run_cli,
                     write_server_config)
from system.conftest import SECRET


def _start_workers(tmp_path, workers: int, cpus: set[int] | None = None,
                   port: int | None = None) -> ServerProcess:
    port = port or free_udp_port()
    config = write_server_config(tmp_path, port=port, secret=SECRET, reject_delay="0s")
    server = ServerProcess(directory=tmp_path, port=port, secret=SECRET, config=config,
                           log_path=tmp_path / "radiusd.log")
    log = server.log_path.open("ab")
    server.process = subprocess.Popen(
        [sys.executable, "-m", "radiusd.cli", "--config", str(config), "serve",
         *(["--workers", str(workers)] if workers > 1 else [])], stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
        preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus))
    log.close()
    deadline = time.monotonic() + 30
    ready = f"{workers} workers sharing RADIUS" if workers > 1 else "radiusd ready"
    while ready not in server.log_text():
        assert server.process.poll() is None, server.log_text()
        assert time.monotonic() < deadline, server.log_text()
        time.sleep(0.1)
    return server


def _auth_rows(server: ServerProcess) -> list[dict]:
    return [row for row in json.loads(server.cli_ok("audit", "--json"))
            if row["action"] == "auth"]


def test_two_workers_share_the_port_and_stop_together(tmp_path):
    server = _start_workers(tmp_path, 2)
    try:
        replies = [send_raw(build_request(SECRET, f"nobody{i}", "12345678").RequestPacket(),
                            server.port) for i in range(40)]   # a new source port each time
        assert all(reply is not None and reply[0] == packet.AccessReject for reply in replies)
        nodes = {row["node"] for row in _auth_rows(server)}
        assert len(nodes) == 2, nodes   # both workers answered (host:pid differ)
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log_text()
    assert server.log_text().count("worker") >= 2 and "radiusd stopped" in server.log_text()


def test_one_source_port_is_spread_over_the_workers_by_identifier(tmp_path):
    """A NAS that sends every request from one port (most VPN concentrators) still uses
    every worker: the port's group steers by Identifier, not by source address and port.
    A retransmission keeps its Identifier, so it reaches the worker that answered it."""
    server = _start_workers(tmp_path, 3)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            requests = {}
            for identifier in range(12):
                request = build_request(SECRET, f"nobody{identifier}", "12345678")
                request.id = identifier
                requests[identifier] = request.RequestPacket()
                reply = send_raw(requests[identifier], server.port, sock=sock)
                assert reply is not None and reply[0] == packet.AccessReject
                assert reply[1] == identifier
            again = send_raw(requests[7], server.port, sock=sock)   # a retransmission
        rows = _auth_rows(server)
        node_of = {row["user"]: row["node"] for row in rows}
        # Every Identifier went to the worker of its residue mod 3, and all three answered.
        for identifier in range(12):
            assert node_of[f"nobody{identifier}"] == node_of[f"nobody{identifier % 3}"]
        assert len({node_of[f"nobody{residue}"] for residue in range(3)}) == 3, node_of
        # The retransmission was answered from that worker's reply cache: the same reply,
        # and no second decision.
        assert again is not None and again[0] == packet.AccessReject and again[1] == 7
        assert Counter(row["user"] for row in rows)["nobody7"] == 1
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log_text()
    assert "cannot steer" not in server.log_text()


def test_a_worker_per_cpu_keeps_to_its_own_cpu_otherwise_the_kernel_chooses():
    assert [worker_cpu(2, index, {0, 1}) for index in range(2)] == [0, 1]
    assert [worker_cpu(3, index, {2, 5, 7}) for index in range(3)] == [2, 5, 7]
    assert worker_cpu(2, 0, {0, 1, 2, 3}) is None   # fewer workers than CPUs
    assert worker_cpu(3, 0, {0, 1}) is None          # more workers than CPUs
    assert worker_cpu(1, 0, {4}) == 4


def test_two_workers_on_two_cpus_are_pinned_one_each(tmp_path):
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        missing_part("a machine with two CPUs (this process may use one)")
    server = _start_workers(tmp_path, 2, cpus=set(usable[:2]))
    try:
        supervisor = server.process.pid
        children = [int(pid) for task in os.listdir(f"/proc/{supervisor}/task")
                    for pid in open(f"/proc/{supervisor}/task/{task}/children").read().split()]
        assert len(children) == 2
        pinned = sorted(tuple(os.sched_getaffinity(pid)) for pid in children)
        assert pinned == [(usable[0],), (usable[1],)]
        # Every thread of a worker, started after the pinning, inherited it.
        for pid in children:
            for task in os.listdir(f"/proc/{pid}/task"):
                assert os.sched_getaffinity(int(task)) in ({usable[0]}, {usable[1]})
        assert f"CPU {usable[0]}" in server.log_text() and f"CPU {usable[1]}" in server.log_text()
        replies = [send_raw(build_request(SECRET, f"nobody{i}", "12345678").RequestPacket(),
                            server.port) for i in range(10)]
        assert all(reply is not None and reply[0] == packet.AccessReject for reply in replies)
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log_text()


IN_USE = "already in use (another radiusd or RADIUS server?)"


def _status_server_answered(port: int) -> bool:
    reply = send_raw(build_request(SECRET, None, code=packet.StatusServer).RequestPacket(), port)
    return reply is not None and reply[0] == packet.AccessAccept


def _children(pid: int) -> list[int]:
    return [int(child) for task in os.listdir(f"/proc/{pid}/task")
            for child in open(f"/proc/{pid}/task/{task}/children").read().split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:   # a zombie is not serving
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_second_server_on_a_served_port_refuses_to_start(tmp_path):
    """Issue 21 (8): a second `serve --workers 2` (or a plain `serve`) on a port that
    another radiusd's workers serve does not join their SO_REUSEPORT group and say
    "ready" while receiving nothing: one line naming the address, exit 1; the first
    server goes on answering."""
    server = _start_workers(tmp_path / "first", 2)
    try:
        assert _status_server_answered(server.port)
        second = write_server_config(tmp_path / "second", port=server.port, secret=SECRET)
        for extra in (["--workers", "2"], []):
            result = subprocess.run(
                [sys.executable, "-m", "radiusd.cli", "--config", str(second), "serve", *extra],
                capture_output=True, text=True, timeout=60, cwd=REPO)
            output = result.stdout + result.stderr
            assert result.returncode == 1, output
            assert output.splitlines() == [
                f"radiusd: error: cannot listen on 127.0.0.1:{server.port}: {IN_USE}"], output
            assert _status_server_answered(server.port)
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log_text()


def test_workers_die_with_their_supervisor(tmp_path):
    """Issue 21 (8): after a kill -9 of the supervisor its workers do not serve on as
    orphans: each gets SIGTERM (parent-death signal) and the port is free again."""
    server = _start_workers(tmp_path, 2)
    workers = _children(server.process.pid)
    assert len(workers) == 2
    server.process.kill()
    server.process.wait()
    deadline = time.monotonic() + 10
    try:
        while any(_alive(pid) for pid in workers):
            assert time.monotonic() < deadline, f"workers still running: {workers}"
            time.sleep(0.05)
    finally:
        for pid in filter(_alive, workers):   # no orphan outlives a failed test
            os.kill(pid, signal.SIGKILL)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", server.port))   # no SO_REUSEPORT: fails if anyone holds it


QUIET_STOP = ("Traceback", "ReactorNotRunning", "Unhandled error", "BrokenPipeError")


def test_sigterm_to_the_process_group_stops_every_worker_quietly(tmp_path):
    """Issue 21 (13): systemd signals the whole group, so each worker gets SIGTERM from
    it and again from the supervisor: exit 0, and no ReactorNotRunning traceback. The
    second signal lands while the worker stops in about one stop of three; the test sends
    a third, directly to each worker, and runs four rounds."""
    port = free_udp_port()
    for round in range(4):
        server = _start_workers(tmp_path / f"round{round}", 2, port=port)
        os.killpg(server.process.pid, signal.SIGTERM)
        for worker in _children(server.process.pid):   # and once more, as the supervisor does
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0, server.log_text()
        log = server.log_text()
        assert log.count("radiusd stopped") == 3, log
        for noise in QUIET_STOP:
            assert noise not in log, log


def test_sigterm_to_the_process_group_stops_a_single_server_quietly(tmp_path):
    """Issue 21 (13): the same for a plain `serve`."""
    server = _start_workers(tmp_path, 1)
    os.killpg(server.process.pid, signal.SIGTERM)
    assert server.process.wait(timeout=15) == 0, server.log_text()
    assert "radiusd stopped" in server.log_text()
    for noise in QUIET_STOP:
        assert noise not in server.log_text(), server.log_text()


def test_a_worker_ready_after_its_supervisor_gave_up_stops_quietly(tmp_path):
    """Issue 21 (13): a worker that is ready only after its supervisor stopped waiting for
    it (the read end of its ready pipe closed) says so in one line and stops, exit 1,
    without a BrokenPipeError traceback."""
    port = free_udp_port()
    config = write_server_config(tmp_path, port=port, secret=SECRET)
    assert run_cli(config, "init").returncode == 0
    read_end, write_end = os.pipe()
    os.close(read_end)   # the supervisor gave up
    try:
        worker = subprocess.run(
            [sys.executable, "-m", "radiusd.cli", "--config", str(config), "serve",
             "--ready-fd", str(write_end), "--workers", "2", "--worker-index", "1"],
            pass_fds=(write_end,), capture_output=True, text=True, timeout=60, cwd=REPO)
    finally:
        os.close(write_end)
    log = worker.stdout + worker.stderr
    assert worker.returncode == 1, log
    assert "worker 1: the supervisor stopped waiting: stopping" in log, log
    for noise in QUIET_STOP:
        assert noise not in log, log

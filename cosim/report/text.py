"""Human output of ``pi-cosim``: outcomes side by side, every differing field marked with its
class, the state at rest after the drain, and the verdict and summary lines.

Marks: ``~`` a deviation, ``!`` a known KVM bug (named) or an unexplained divergence. Colours
only on a terminal, and never with ``NO_COLOR`` set (the caller decides).
"""

from dataclasses import dataclass
from pathlib import Path

from cosim.judge.findings import by_id, is_known_bug
from cosim.judge.scoreboard import Verdict
from cosim.reference.kvm import ModelRun
from cosim.scenario.drain import MAX_DRAIN_STEPS
from cosim.scenario.format import Scenario
from cosim.scenario.outcome import FIELDS, Outcome

__all__ = ["NAME_WIDTH", "Tally", "describe_event", "format_value", "print_model",
           "print_verdict", "result_line", "summary_line"]


NAME_WIDTH = max(map(len, FIELDS)) + 2


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


def describe_event(event) -> str:
    parts = [event.kind]
    for key, value in event.to_dict().items():
        if key != "kind":
            if isinstance(value, bool):
                parts.append(f"{key}={str(value).lower()}")
            else:
                parts.append(f"{key}={value:#04x}" if isinstance(value, int)
                             else f"{key}={value}")
    return " ".join(parts)


def _print_rows(before, now, all_fields: bool, width: int) -> None:
    for name in FIELDS:
        values = [o.get(name) for o in now]
        differ = len(set(map(format_value, values))) > 1
        if not (differ or _row_shown(name, now, before, all_fields)):
            continue
        mark = "*" if differ else " "
        print(f" {mark} {name.ljust(NAME_WIDTH)}" + "".join(format_value(v).ljust(width + 2)
                                                   for v in values).rstrip())


def print_model(runs: list[ModelRun], all_fields: bool, trace: bool) -> None:
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
        print(f"-- event {i}: {describe_event(event)}")
        print(header)
        now = [r.outcomes[i] for r in runs]
        _print_rows(previous, now, all_fields, width)
        if trace:
            for r in runs:
                for line in r.traces[i]:
                    print(f"     [{r.version.value}] {line}")
        previous = list[Outcome | None](now)
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
        _print_rows(previous, [r.side.final for r in runs], all_fields, width)
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


@dataclass(frozen=True)
class Tally:
    """What :func:`summary_line` needs of one verdict: small, so that a replay's worker
    process can send its verdicts' tallies back instead of the verdicts."""

    agree: bool
    impossible: bool
    known_bugs: tuple[str, ...]
    divergent: bool
    expect_ok: bool | None
    deviations: bool

    @classmethod
    def of(cls, verdict: Verdict) -> "Tally":
        return cls(agree=verdict.agree, impossible=verdict.impossible is not None,
                   known_bugs=tuple(verdict.known_bugs), divergent=bool(verdict.divergent),
                   expect_ok=verdict.expect_ok, deviations=bool(verdict.deviations))


def summary_line(tallies: list[Tally]) -> str:
    """One line over many verdicts: how many agree, show known bugs (which), diverge
    unexplained, stop at an impossible event, miss their [expect]."""
    agree = [t for t in tallies if t.agree and not t.impossible]
    bugs = sorted({b for t in tallies for b in t.known_bugs})
    with_bugs = sum(1 for t in tallies if t.known_bugs)
    unexplained = sum(1 for t in tallies if t.divergent)
    impossible = sum(1 for t in tallies if t.impossible)
    missed = sum(1 for t in tallies if t.expect_ok is False)
    with_deviations = sum(1 for t in agree if t.deviations)
    return (f"summary: {len(tallies)} runs: {len(agree)} agree ({with_deviations} with "
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


def print_verdict(verdict: Verdict, waves, all_fields: bool, color: bool) -> None:
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
        print(f"-- event {i}: {describe_event(e.event)}")
        print(header)
        _print_comparison(e, e.hardware, e.software, before, all_fields, width, color)
        before = [e.hardware, e.software]
    if verdict.impossible is not None:
        print(f"-- event {verdict.impossible.index}: "
              f"{describe_event(verdict.impossible.event)}")
        print("   " + verdict.impossible.message())
    d = verdict.drain
    if d is not None:
        steps = [" ".join(e.kind for e in s) or "nothing to do"
                 for s in (d.hardware_steps, d.software_steps)]
        print("-- drain: each side runs to rest as L1 and L2 would (L1 EOIs what is in service, "
              "takes what its APIC presents and re-enters L2; L2 EOIs)")
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

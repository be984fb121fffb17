"""Shrinking a scenario to a minimal one that still shows the same thing (``pi-cosim regress``).

Greedy, in rounds: each round lists every one-step simplification of the current scenario in a
fixed order (:func:`simplifications`): drop a run of events (halves, quarters, ... then single
events, as delta debugging does), drop a race, move a race to an earlier
cycle, drop a vector from a set (L1's IRR, ISR and TMR, PIR, VIRR, VISR), put a scalar back to
its plain value (TPR, VTPR, SN, interrupt-window exiting, in_l0, RFLAGS.IF) and keeps the first
that is still a valid scenario (it loads: the mode and VM-entry rules hold) and still shows the
property (``keeps``, asked for a whole round at once so that its hardware runs go in one
batch). It stops when no simplification keeps the property: the result is 1-minimal (no single
step of the list makes it smaller and keeps it), and the same input always gives the same
output. The order puts fewest events first, then smallest vector sets, then earliest race
offsets.
"""

from collections.abc import Callable, Iterator
from dataclasses import replace

from cosim.scenario.format import (
    InterruptEvent,
    L1Apic,
    L2State,
    PidState,
    Scenario,
    ScenarioError,
    Vmcs12Controls,
    parse_scenario,
)

__all__ = ["loads", "simplifications", "shrink"]

_SETS: tuple[tuple[str, str], ...] = (("l1_apic", "irr"), ("l1_apic", "isr"), ("l1_apic", "tmr"),
                                      ("pid", "pir"), ("l2", "virr"), ("l2", "visr"))


def _without_event(s: Scenario, i: int) -> Scenario:
    races = tuple(replace(r, event=r.event - (r.event > i)) for r in s.races if r.event != i)
    return replace(s, events=s.events[:i] + s.events[i + 1:], races=races)


def _with(s: Scenario, table: str, **changes) -> Scenario:
    return replace(s, **{table: replace(getattr(s, table), **changes)})


def simplifications(s: Scenario) -> Iterator[Scenario]:
    """Every one-step simplification of ``s``, in the shrinker's order of preference."""
    n = len(s.events)
    size = 1 << (n - 1).bit_length() if n > 1 else 0
    while size >= 1:  # runs of events, the longest first (a prefix that only leads back to
        # the same guest goes at once), then single events from the last
        for i in reversed(range(n - size + 1)) if size < n else ():
            shorter = s
            for _ in range(size):
                shorter = _without_event(shorter, i)
            yield shorter
        size //= 2
    for i in range(len(s.races)):
        yield replace(s, races=s.races[:i] + s.races[i + 1:])
    for i, race in enumerate(s.races):
        for cycle in sorted({0, race.cycle // 2, race.cycle - 1}):
            if cycle < race.cycle:
                yield replace(s, races=s.races[:i] + (replace(race, cycle=cycle),)
                              + s.races[i + 1:])
    for table, name in _SETS:
        for v in sorted(getattr(getattr(s, table), name), reverse=True):
            smaller = getattr(getattr(s, table), name) - {v}
            changed = _with(s, table, **{name: smaller})
            # RVI and SVI stay what they were to VIRR and VISR: the highest bit, or (RVI, C9)
            # below it, never above every bit
            if (table, name) == ("l2", "virr"):
                if s.l2.rvi == v:
                    changed = _with(changed, "l2", rvi=max(smaller, default=0))
                elif s.l2.rvi > max(smaller, default=0):
                    continue  # RVI would be above every VIRR bit
            if (table, name) == ("l2", "visr") and s.l2.svi == v:
                changed = _with(changed, "l2", svi=max(smaller, default=0))
            yield changed
    plain = ((L1Apic, "l1_apic", "tpr"), (L2State, "l2", "vtpr"), (PidState, "pid", "sn"),
             (Vmcs12Controls, "vmcs12", "interrupt_window_exiting"))
    for cls, table, name in plain:
        default = cls.__dataclass_fields__[name].default
        if getattr(getattr(s, table), name) != default:
            yield _with(s, table, **{name: default})
    if not s.l2.rflags_if:
        yield _with(s, "l2", rflags_if=True)
    for i, event in enumerate(s.events):
        if isinstance(event, InterruptEvent) and event.in_l0:
            yield replace(s, events=s.events[:i] + (replace(event, in_l0=False),)
                          + s.events[i + 1:])


def loads(s: Scenario) -> bool:
    """``s`` is a valid scenario: the format's mode and VM-entry rules hold."""
    try:
        parse_scenario(s.to_dict(), s.path)
    except ScenarioError:
        return False
    return True


def shrink(scenario: Scenario, keeps: Callable[[list[Scenario]], list[bool]],
           max_rounds: int = 200) -> tuple[Scenario, int]:
    """The minimal scenario reached from ``scenario`` and the number of rounds it took.
    ``keeps(candidates)`` says, for each, whether it still shows the property."""
    current = scenario
    for rounds in range(1, max_rounds + 1):
        candidates = [c for c in simplifications(current) if loads(c)]
        verdicts = keeps(candidates) if candidates else []
        kept = next((c for c, ok in zip(candidates, verdicts, strict=True) if ok), None)
        if kept is None:
            return current, rounds
        current = kept
    return current, max_rounds


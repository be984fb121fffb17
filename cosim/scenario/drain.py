"""The drain: after a scenario's last event, each side runs to quiescence as a real L1 and L2
would, so that "KVM does it later" is checked rather than trusted (``docs/architecture.md``).

The drain is a policy over one side's own outcomes, applied by both sides (the hardware
testbench and the KVM model) with the same code: while L1 runs, L1 writes EOI for what is in
service, then takes the interrupt its local APIC presents, if any, through its IDT (``sti``:
after a VM exit that did not acknowledge it; not L2's notification vector, which L1 leaves to
the processing at its VM entry), then re-enters L2 (``vm_entry``); while L2 runs,
L2 writes EOI for what is in service (``l2_eoi``); it stops when L2 runs with nothing in
service, when a VM entry fails (L1's pending interrupts then stay pending on both sides), or
when a step changes nothing. Each side drains from its own state, so a side that exited to L1
where the other did not still gets every chance to deliver what it holds.

:class:`SideRun` is what one side did with a scenario: the outcome after every event, the drain
steps and where an impossible event stopped the run.
"""

from dataclasses import dataclass, field, fields

from cosim.scenario.format import (
    EVENT_KINDS,
    L1,
    EoiEvent,
    Event,
    L2EoiEvent,
    Scenario,
    StiEvent,
    VmEntryEvent,
)
from cosim.scenario.outcome import Outcome, to_json

__all__ = ["AFTER", "BEFORE", "DURING", "MAX_DRAIN_STEPS", "RACE_WINDOWS", "Impossible", "SideRun",
           "event_from_dict", "next_drain_event", "presented_vector", "race_windows", "settled"]

#: A bound on the drain: each L1 round (EOI, VM entry, VM exit) consumes one pending vector,
#: so a side still changing after this many steps is stuck.
MAX_DRAIN_STEPS = 512


def presented_vector(outcome: Outcome) -> int | None:
    """The interrupt L1's local APIC presents: the highest IRR vector, if its class is above
    the PPR class (APIC-8, SDM 10.8.3.1), else None; L1 takes it when it enables
    interrupts."""
    top = max(outcome.l1_apic.irr, default=-1)
    return top if top >> 4 > outcome.l1_apic.ppr >> 4 else None


def next_drain_event(last: Outcome, notification: int | None = None) -> Event | None:
    """The next thing a real L1 or L2 does to bring the system to rest, or None at rest.

    ``notification`` is L2's notification vector when posted interrupts are on: L1 leaves it
    pending for the posted-interrupt processing of its next VM entry rather than taking it
    through its IDT (a real L1 hypervisor would then merge PIR into L2's VIRR in software,
    which is not modelled), so the drain takes an L1 interrupt only while NV is not the one
    presented."""
    if last.mode == L1:
        if last.l1_apic.isr:
            return EoiEvent()
        if last.vmentry_error is not None:
            return None  # the same vmcs12 fails the same checks again
        if presented_vector(last) not in (None, notification):
            return StiEvent()
        return VmEntryEvent()
    if last.l2.visr:
        return L2EoiEvent()
    return None


#: The outcome's fields that are state, not the step itself (its VM exit or entry failure).
_STATE_FIELDS = tuple(f.name for f in fields(Outcome) if f.name not in ("vmexit",
                                                                        "vmentry_error"))


def settled(before: Outcome, after: Outcome) -> bool:
    """A drain step changed nothing: running further would repeat it."""
    return all(getattr(before, name) == getattr(after, name) for name in _STATE_FIELDS)


def event_from_dict(data: dict) -> Event:
    """The inverse of ``Event.to_dict()`` (events cross the cocotb process boundary so)."""
    fields = dict(data)
    return EVENT_KINDS[fields.pop("kind")](**fields)


@dataclass(frozen=True)
class Impossible:
    """Event ``index`` could not happen: it needs a mode other than ``mode``, the guest
    that ran at that point on the hardware (the reference for modes)."""

    index: int
    event: Event
    mode: str

    def message(self) -> str:
        need = " or ".join(m.upper() for m in self.event.modes)
        return (f"impossible event: events[{self.index}] ({self.event.kind}) needs {need} "
                f"running, but {self.mode.upper()} runs at that point; the scenario stops "
                "there")


@dataclass(frozen=True)
class SideRun:
    """One side's run of a scenario: an outcome per event applied, the drain's steps (each
    with its outcome) and whether it reached rest, and the impossible event, if one stopped
    the run (then there is no drain). ``cycles`` is how many clock cycles the hardware
    simulated for it (0 for the KVM model; not part of equality: wait states change it).
    ``early`` (the KVM model's only) are the indices of ``in_l0`` interrupts that arrived
    during the previous event's exit to L0: that event's outcome includes them."""

    outcomes: tuple[Outcome, ...]
    drain: tuple[tuple[Event, Outcome], ...] = ()
    drain_settled: bool = True
    impossible: Impossible | None = None
    cycles: int = field(default=0, compare=False)
    early: tuple[int, ...] = ()

    @property
    def final(self) -> Outcome:
        """The state at rest: after the drain, or after the last event applied."""
        return self.drain[-1][1] if self.drain else self.outcomes[-1]

    @property
    def steps(self) -> tuple[Outcome, ...]:
        """Every outcome in order: the events', then the drain's."""
        return self.outcomes + tuple(o for _, o in self.drain)

    def to_json(self) -> dict:
        return {
            "outcomes": [to_json(o) for o in self.outcomes],
            "drain": [[e.to_dict(), to_json(o)] for e, o in self.drain],
            "drain_settled": self.drain_settled,
            "cycles": self.cycles,
            "impossible": None if self.impossible is None else {
                "index": self.impossible.index, "event": self.impossible.event.to_dict(),
                "mode": self.impossible.mode},
        }

    @classmethod
    def from_json(cls, data: dict) -> "SideRun":
        imp = data["impossible"]
        return cls(
            outcomes=tuple(Outcome.from_json(o) for o in data["outcomes"]),
            drain=tuple((event_from_dict(e), Outcome.from_json(o)) for e, o in data["drain"]),
            drain_settled=data["drain_settled"],
            cycles=data["cycles"],
            impossible=None if imp is None else Impossible(imp["index"],
                                                           event_from_dict(imp["event"]),
                                                           imp["mode"]),
        )


#: Where another agent's post (a ``[[races]]`` entry) lands relative to the posted-interrupt
#: processing of its event: before it (harvested, ON cleared), inside it (after step 3's ON
#: clear, before PIR is read: harvested, ON left 1) or after it (left in PIR with ON 1).
BEFORE, DURING, AFTER = "before", "during", "after"
RACE_WINDOWS = (BEFORE, DURING, AFTER)


def race_windows(scenario: Scenario, hardware: SideRun) -> tuple[str, ...]:
    """Where each race's post landed on the hardware, read from the outcome after its event
    (the race's vector is assumed to be in no other part of the scenario): left in PIR, or
    never posted because the run stopped first, is ``after``; harvested into L2's virtual
    APIC with ON 1 is ``during``; harvested with ON 0 is ``before``. The model has no cycles:
    it places each post in the hardware's window, and compares everything else."""
    windows = []
    for race in scenario.races:
        if race.event >= len(hardware.outcomes):
            windows.append(AFTER)
            continue
        o = hardware.outcomes[race.event]
        harvested = (race.vector not in o.pid.pir
                     and race.vector in o.l2.virr | o.l2.visr | set(o.l2.delivered))
        windows.append(AFTER if not harvested else DURING if o.pid.on else BEFORE)
    return tuple(windows)

"""Reference-model adapter: a scenario through the KVM software model at one kernel version.

Translates the scenario's architectural state into ``software_model`` state (L1's APIC becomes
KVM's ``apic->regs``, the vmcs12 switches become control bits, the descriptor and L2's
virtual-APIC page are placed in L1's memory), applies each event through
``software_model.environment`` and reads back one :class:`~cosim.outcome.Outcome` per event.
"""

import functools
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import assert_never

from cosim.scenario.drain import (
    AFTER,
    BEFORE,
    DURING,
    MAX_DRAIN_STEPS,
    Impossible,
    SideRun,
    next_drain_event,
    race_windows,
    settled,
)
from cosim.scenario.format import (
    L1,
    L2,
    EoiEvent,
    Event,
    InterruptEvent,
    L2EoiEvent,
    L2TprEvent,
    PostEvent,
    Race,
    Scenario,
    StiEvent,
    TprEvent,
    VmEntryEvent,
)
from cosim.scenario.outcome import (
    L1ApicOutcome,
    L2Outcome,
    Outcome,
    PidOutcome,
    VmExit,
    bitmap,
    to_json,
    vectors,
)
from software_model import KernelVersion, environment
from software_model.state import ApicPage, PiDesc, Vcpu, Vmcs12
from software_model.version import Change, consulted

__all__ = ["KvmReference", "ModelRun", "run_beside", "run_model", "run_models"]

# The records of a state recur across events and scenarios (a sweep reads millions of them):
# frozen dataclasses are values, so equal ones are shared instead of being built again.
_l1_apic_outcome = functools.lru_cache(maxsize=1 << 14)(L1ApicOutcome)
_pid_outcome = functools.lru_cache(maxsize=1 << 12)(PidOutcome)
_l2_outcome = functools.lru_cache(maxsize=1 << 14)(L2Outcome)


def _virtual_apic_page_addr(desc_addr: int) -> int:
    """A page for L2's virtual-APIC page that does not hold the descriptor."""
    return 0x30000 if desc_addr & ~0xFFF == 0x20000 else 0x20000


_NO_RACES: list = []  # never appended to: what _races_start returns without races


class KvmReference:
    """One vCPU of the software model, started in the scenario's initial state.

    The vCPU starts running the guest the scenario names (L2 by default); start-up effects
    (a pending L1 interrupt that exits, an L2 virtual interrupt delivered at entry) are part of
    the first event's outcome.
    """

    def __init__(self, scenario: Scenario, version: KernelVersion,
                 windows: tuple[str, ...] | None = None):
        self.scenario = scenario
        self.version = version
        # each race's window (RACE_WINDOWS): beside the hardware, where its post landed there
        self.races = tuple(zip(scenario.races, windows or (AFTER,) * len(scenario.races),
                               strict=True))
        self._applied = 0
        self.early: list[int] = []  # in-L0 interrupts taken in the previous event's exit
        self.vcpu = vcpu = environment.new_vcpu(version, maxphyaddr=scenario.maxphyaddr)
        self._seen_exits = 0
        self._seen_errors = 0
        self._arrived: Event | None = None  # an in-L0 interrupt taken early (see apply)
        self._raced: set[int] = set()  # events whose races landed with an earlier event
        a = scenario.l1_apic
        regs = vcpu.apic.regs
        regs.irr, regs.isr, regs.tmr = bitmap(a.irr), bitmap(a.isr), bitmap(a.tmr)
        regs.tpr = a.tpr
        vcpu.apic.spurious_vector = a.spurious_vector

        c = scenario.vmcs12
        self.desc_addr = c.posted_intr_desc_addr
        self.vapic_addr = _virtual_apic_page_addr(c.posted_intr_desc_addr)
        l2 = scenario.l2
        words = c.control_words()
        self.vmcs12 = vmcs12 = Vmcs12(
            pin_based_vm_exec_control=words["pin_based"],
            cpu_based_vm_exec_control=words["proc_based"],
            secondary_vm_exec_control=words["secondary"],
            vm_exit_controls=words["exit_controls"],
            posted_intr_nv=c.posted_intr_nv,
            posted_intr_desc_addr=c.posted_intr_desc_addr,
            virtual_apic_page_addr=self.vapic_addr,
            guest_intr_status=(l2.svi << 8) | l2.rvi,
            guest_rflags_if=l2.rflags_if,
        )
        p = scenario.pid
        if vcpu.memory.is_backed(self.desc_addr):
            vcpu.memory.pi_descs[self.desc_addr] = PiDesc(pir=bitmap(p.pir), on=p.on, sn=p.sn,
                                                         nv=p.nv, ndst=p.ndst)
        vcpu.memory.apic_pages[self.vapic_addr] = ApicPage(irr=bitmap(l2.virr),
                                                           isr=bitmap(l2.visr), tpr=l2.vtpr)
        if scenario.start == "l2":
            environment.start_in_l2(vcpu, vmcs12)
        else:
            environment.start_in_l1(vcpu, vmcs12)

    def apply(self, event: Event, upcoming: Event | None = None) -> Outcome:
        """Apply one event and return the outcome after it.

        ``upcoming`` is the next event: an interrupt that arrives while the vCPU is in L0
        (``in_l0``) is taken within this event if this event makes the vCPU exit to L0 (the
        vCPU stays there until it has arrived); its own event then changes nothing more.
        """
        vcpu = self.vcpu
        holds = isinstance(upcoming, InterruptEvent) and upcoming.in_l0
        vcpu.hold_in_l0 = holds
        index, self._applied = self._applied, self._applied + 1
        racing = self._races_start(index)
        self._apply(event)
        vcpu.hold_in_l0 = False
        if holds and vcpu.held_in_l0:
            assert isinstance(upcoming, InterruptEvent)
            # the vCPU is still in this event's exit to L0: the in-L0 interrupt arrives now,
            # KVM's processing of both runs now, and so do the posts other agents make
            # during either (the hardware's races of this event and of the next)
            racing = [*racing, *self._races_start(index + 1)]
            environment.interrupt_in_l0(vcpu, upcoming.vector, upcoming.route)
            self._arrived = upcoming
            self.early.append(index + 1)
        self._races_end(racing)
        return self.outcome()

    def _races_start(self, index: int) -> "list[tuple[Race, str]]":
        """Land the races of event ``index`` that come before it and arm those that land
        inside its processing (``RACE_WINDOWS``); return them for :meth:`_races_end`. Each
        event's races land once (an in-L0 event's with the event whose exit it arrives in)."""
        if not self.races or index in self._raced:
            return _NO_RACES
        self._raced.add(index)
        races = [(race, window) for race, window in self.races if race.event == index]
        for race, window in races:
            if window == BEFORE:
                environment.post(self.vcpu, race.vector)
            elif window == DURING:
                environment.race(self.vcpu, race.vector)
        return races

    def _races_end(self, races: list[tuple[Race, str]]) -> None:
        """The armed races no processing landed land now; then those that come after."""
        if not races:  # the scenario has none (most runs): nothing to do
            return
        if any(window == DURING for _, window in races):
            environment.race_end(self.vcpu)
        for race, window in races:
            if window == AFTER:
                environment.post(self.vcpu, race.vector)

    def _apply(self, event: Event) -> None:
        vcpu = self.vcpu
        match event:
            case InterruptEvent(in_l0=True) if self._arrived is event:
                vcpu.trace(f"in L0: {event.vector:#04x} already arrived during the previous "
                           "event's exit to L0")
                self._arrived = None
            case InterruptEvent(in_l0=True):
                environment.interrupt_in_l0(vcpu, event.vector, event.route)
            case InterruptEvent():
                environment.interrupt(vcpu, event.vector, event.route)
            case PostEvent():
                environment.post(vcpu, event.vector)
            case EoiEvent():
                environment.eoi(vcpu)
            case TprEvent():
                environment.tpr(vcpu, event.value)
            case StiEvent():
                environment.sti(vcpu)
            case VmEntryEvent():
                environment.vm_entry(vcpu)
            case L2EoiEvent():
                environment.l2_eoi(vcpu)
            case L2TprEvent():
                environment.l2_tpr(vcpu, event.value)
            case _:
                assert_never(event)

    def mode(self) -> str:
        """The guest the vCPU runs now."""
        return L2 if self.vcpu.guest_mode else L1

    def outcome(self) -> Outcome:
        """The record since the previous call.

        L1's IRR includes interrupts still posted in KVM's descriptor for L1: KVM syncs them
        into IRR before L1 could observe its APIC (``vmx_sync_pir_to_irr``).
        """
        vcpu: Vcpu = self.vcpu
        exits = vcpu.nested_exits[self._seen_exits:]
        errors = vcpu.vmentry_errors[self._seen_errors:]
        self._seen_exits = len(vcpu.nested_exits)
        self._seen_errors = len(vcpu.vmentry_errors)
        vmexit = None
        if exits:
            e = exits[-1]
            vmexit = VmExit(reason=e.reason, intr_info=e.intr_info, qualification=e.qualification)
        regs = vcpu.apic.regs
        desc = vcpu.memory.pi_descs.get(self.desc_addr)
        pid = (_pid_outcome(pir=vectors(desc.pir), on=desc.on, sn=desc.sn) if desc is not None
               else _pid_outcome(pir=self.scenario.pid.pir, on=self.scenario.pid.on,
                                 sn=self.scenario.pid.sn))
        page = vcpu.memory.apic_pages[self.vapic_addr]
        status = vcpu.vmcs02.guest_intr_status if vcpu.guest_mode else self.vmcs12.guest_intr_status
        return Outcome(
            vmexit=vmexit,
            vmentry_error=errors[-1] if errors else None,
            mode=self.mode(),
            l1_apic=_l1_apic_outcome(irr=vectors(regs.irr | vcpu.pi_desc.pir),
                                     isr=vectors(regs.isr), ppr=regs.ppr,
                                     eoi_messages=tuple(v for v, level in vcpu.apic.ioapic_eois
                                                        if level)),
            pid=pid,
            l2=_l2_outcome(virr=vectors(page.irr), visr=vectors(page.isr), rvi=status & 0xFF,
                           svi=status >> 8, vppr=page.ppr, delivered=tuple(vcpu.l2_delivered)),
        )


@dataclass(frozen=True)
class ModelRun:
    """A scenario's run at one KVM version (outcomes per event, the drain), with the model's
    explanation per step (events, then drain steps)."""

    scenario: Scenario
    version: KernelVersion
    side: SideRun
    traces: tuple[tuple[str, ...], ...]

    @property
    def outcomes(self) -> tuple[Outcome, ...]:
        """The outcome after each event applied (without the drain)."""
        return self.side.outcomes

    @property
    def expect_mismatches(self) -> list[str] | None:
        """Fields of ``[expect]`` the last event's outcome misses, or None without
        ``[expect]`` (or when an impossible event stopped the run before any outcome)."""
        if self.scenario.expect is None or not self.outcomes:
            return None
        return self.scenario.expect.mismatches(self.outcomes[-1])

    def to_json(self) -> dict:
        """The ``pi-cosim model --json`` document: outcomes and the model's trace per event
        and per drain step."""
        mismatches = self.expect_mismatches
        side = self.side
        n = len(side.outcomes)
        return {
            "scenario": self.scenario.name,
            "file": self.scenario.path,
            "kvm": self.version.value,
            "commit": self.version.commit,
            "expect_ok": None if mismatches is None else not mismatches,
            "impossible": None if side.impossible is None else side.impossible.message(),
            "events": [{"event": event.to_dict(), "software": to_json(outcome),
                        "trace": list(trace)}
                       for event, outcome, trace in zip(self.scenario.events[:n], side.outcomes,
                                                        self.traces[:n], strict=True)],
            "drain": [{"event": event.to_dict(), "software": to_json(outcome),
                       "trace": list(trace)}
                      for (event, outcome), trace in zip(side.drain, self.traces[n:],
                                                         strict=True)],
            "drain_settled": side.drain_settled,
        }


def run_model(scenario: Scenario, version: KernelVersion, *, until: int | None = None,
              own_modes: bool = True, windows: tuple[str, ...] | None = None) -> ModelRun:
    """Run the events of ``scenario`` through the model at ``version``, then the drain.

    Beside the hardware (the reference for modes), ``own_modes`` is false and ``until`` is
    the index of the event the hardware found impossible, if any: the run stops before it,
    with no drain, and ``windows`` places the races where the hardware's landed
    (:func:`race_windows`). Alone (``pi-cosim model``), the model's own mode decides whether an
    event can happen, and every race lands after its event.
    """
    ref = KvmReference(scenario, version, windows)
    outcomes: list[Outcome] = []
    traces: list[tuple[str, ...]] = []
    seen = 0  # start-up steps belong to the first event's explanation

    def step(event: Event, upcoming: Event | None = None) -> Outcome:
        nonlocal seen
        outcome = ref.apply(event, upcoming)
        traces.append(tuple(ref.vcpu.log[seen:]))
        seen = len(ref.vcpu.log)
        return outcome

    def done(**side) -> ModelRun:
        return ModelRun(scenario, version,
                        SideRun(tuple(outcomes), early=tuple(ref.early), **side), tuple(traces))

    for i, event in enumerate(scenario.events):
        if until is not None and i == until:
            return done()
        if own_modes:
            if (current := ref.mode()) not in event.modes:
                return done(impossible=Impossible(i, event, current))
        upcoming = scenario.events[i + 1] if i + 1 < len(scenario.events) else None
        outcomes.append(step(event, upcoming))
    if until is not None:
        return done()
    steps: list[tuple[Event, Outcome]] = []
    last = outcomes[-1]
    controls = scenario.vmcs12
    nv = controls.posted_intr_nv & 0xFF if controls.process_posted_interrupts else None
    for _ in range(MAX_DRAIN_STEPS):
        if (drain_event := next_drain_event(last, nv)) is None:
            break
        outcome = step(drain_event)
        steps.append((drain_event, outcome))
        if settled(last, outcome):
            break
        last = outcome
    else:
        return done(drain=tuple(steps), drain_settled=False)
    return done(drain=tuple(steps))


def run_models(scenario: Scenario, versions: Iterable[KernelVersion],
               **options) -> dict[KernelVersion, ModelRun]:
    """:func:`run_model` of ``scenario`` at each of ``versions`` (same ``options``), each
    version's run made only once it differs: the model reads its version only through
    :class:`~software_model.version.Change` switches, so a version that answers every switch
    an earlier version's run asked about as that version does would run the same statements on
    the same values, and shares that run (pre-patch and post-patch differ in one switch, asked
    about only for an interrupt whose vector is the notification vector)."""
    runs: dict[KernelVersion, ModelRun] = {}
    made: list[tuple[ModelRun, frozenset[Change]]] = []
    for version in versions:
        for run, switches in made:
            if all(change(version) == change(run.version) for change in switches):
                runs[version] = replace(run, version=version)
                break
        else:
            with consulted() as asked:
                run = runs[version] = run_model(scenario, version, **options)
            made.append((run, frozenset(asked)))
    return runs


def run_beside(scenario: Scenario, version: KernelVersion, hardware: SideRun) -> ModelRun:
    """The model's run to compare with the hardware's: the hardware decides which events can
    happen (it is the reference for modes), so the model stops where the hardware stopped."""
    stop = None if hardware.impossible is None else hardware.impossible.index
    return run_model(scenario, version, until=stop, own_modes=False,
                     windows=race_windows(scenario, hardware))

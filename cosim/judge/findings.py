"""What a difference between the hardware and KVM can be: a deviation or a known KVM bug.

Every difference the scoreboard (``cosim.scoreboard``) finds is one of three things
(``docs/architecture.md``):

- a **deviation** (:class:`Deviation`, IDs ``D*``): a documented KVM choice whose effect L1
  and L2 can never observe, or that KVM provably reconciles later. The drain
  (``cosim.drain``) checks the promise: a deviation may leave only the residue it declares at
  rest, and never a lost interrupt. Each deviation says *why* it is unobservable or reconciled
  (``why``);
- a **known KVM bug** (:class:`KnownBug`, IDs ``KB*``): a named finding with what is lost or
  wrong, the kernel source, the versions it affects, the commit that fixed it (or "open") and
  its directed scenario. It is still a divergence (exit status 1): named, never excused;
- an **unexplained divergence**: anything else.

Each finding has a predicate over the state before the event and both outcomes after it
(:class:`Context`); it claims only the fields it names, and only when the predicate holds.

History: the first version of this file had six deviations (D1-D4, D6, D10). Checked against
the drain and the kernel source, D1, D4 and D6 lose interrupts for good and D3 leaves a wrong
RVI at rest: they are known bugs KB4, KB5, KB2 and KB6. D2 and D10 remain deviations. The
random regression's triage (2026-12-02) added KB9-KB11 and D11, D12, and widened D10 to VM
entries (``docs/regress.md``).
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from cosim.scenario.format import Event, InterruptEvent, PostEvent, Scenario, VmEntryEvent
from cosim.scenario.outcome import L2Outcome, Outcome
from software_model import KernelVersion

__all__ = ["DEVIATIONS", "FINDINGS", "KNOWN_BUGS", "L1_APIC", "L1_RUNS", "L2_VIRTUAL_APIC", "PID",
           "POSTING_ROUTES",
           "Context", "Deviation", "DrainContext", "held_behind", "held_posts", "masked_apart",
           "waiting_for_nv", "Finding", "KnownBug", "LOST", "by_id", "is_known_bug"]

PRE, POST, NOV = KernelVersion.PRE_PATCH, KernelVersion.POST_PATCH, KernelVersion.NOV_2024
ALL_VERSIONS = frozenset(KernelVersion)

L2_VIRTUAL_APIC = frozenset({"l2.virr", "l2.visr", "l2.rvi", "l2.svi", "l2.vppr",
                             "l2.delivered"})
L1_APIC = frozenset({"l1_apic.irr", "l1_apic.isr", "l1_apic.ppr"})
PID = frozenset({"pid.pir", "pid.on", "pid.sn"})
#: What a bug that runs L1 where the hardware does not (a VM exit of its own) changes in L1's
#: APIC: also the EOI messages of L1's EOIs of what was in service
L1_RUNS = L1_APIC | frozenset({"l1_apic.eoi_messages"})
EXIT = frozenset({"vmexit", "vmexit.reason", "vmexit.intr_info", "vmexit.qualification",
                  "mode"})

#: The lost-interrupt checks of the drain (``cosim.scoreboard``): a vector delivered to L2 on
#: one side only, a vector delivered to L1 (in a VM exit's interruption information) on one
#: side only, a descriptor left at rest with ON = 1 and PIR bits on one side only. Never a
#: deviation.
LOST = ("lost.l2_delivered", "lost.l1_delivered", "lost.pid_stuck")


def _hsb(vectors) -> int:
    return max(vectors, default=-1)


def held_in_virr(outcome: Outcome, rflags_if: bool) -> frozenset[int]:
    """L2's pending vectors it cannot take: those its VPPR holds back (class at or below
    VPPR's), or, with L2's RFLAGS.IF = 0 (``rflags_if``, the scenario's: no event changes
    it), all of them, since a recognized virtual interrupt is delivered only with IF = 1
    (SDM 29.2.2). Pending, not lost, until L2's priority drops (VID-4) or it sets IF."""
    if not rflags_if:
        return frozenset(outcome.l2.virr)
    return frozenset(v for v in outcome.l2.virr if v >> 4 <= outcome.l2.vppr >> 4)


def _l2_vectors(outcome: Outcome) -> frozenset[int]:
    """Every L2 vector the virtual APIC holds or delivered."""
    return frozenset(outcome.l2.virr | outcome.l2.visr | set(outcome.l2.delivered))


@dataclass(frozen=True)
class Context:
    """What an event predicate sees: the scenario, the KVM version, the event, the agreed
    state before it (the software outcome of the previous event; ``None`` before the first
    event, where the scenario's initial state applies) and both outcomes after it."""

    scenario: Scenario
    version: KernelVersion
    event: Event
    before: Outcome | None
    hardware: Outcome
    software: Outcome
    index: int = -1  # the event's index in the scenario
    early: tuple[int, ...] = ()  # the KVM side's in-L0 interrupts taken in an earlier exit
    windows: tuple[str, ...] = ()  # where each race landed (``race_windows``)

    @property
    def in_l0_arrival(self) -> InterruptEvent | None:
        """The ``in_l0`` interrupt whose arrival this event's outcomes show: the event itself,
        or the next event when KVM took it in this event's exit (the judge then compares this
        event with the hardware's outcome after both)."""
        if self.index + 1 in self.early:
            nxt = self.scenario.events[self.index + 1]
            assert isinstance(nxt, InterruptEvent)
            return nxt
        e = self.event
        return e if isinstance(e, InterruptEvent) and e.in_l0 else None

    @property
    def arrivals(self) -> tuple[InterruptEvent, ...]:
        """The interrupts this comparison stands for: the event, if an interrupt, and the
        next event's when KVM took that in-L0 interrupt in this event's exit."""
        out = (self.event,) if isinstance(self.event, InterruptEvent) else ()
        m = self.in_l0_arrival
        return out + ((m,) if m is not None and m is not self.event else ())

    @property
    def new_deliveries(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """What the hardware and KVM delivered to L2 at this event (after what both had
        delivered before it)."""
        seen = len(self.before.l2.delivered) if self.before is not None else 0
        return self.hardware.l2.delivered[seen:], self.software.l2.delivered[seen:]

    @property
    def pir_before(self) -> frozenset[int]:
        """The descriptor's PIR before the event, with the event's own post and the vectors
        other agents post while it runs (``[[races]]``) that land before its processing
        harvests PIR, if any."""
        pir = self.scenario.pid.pir if self.before is None else self.before.pid.pir
        if isinstance(self.event, PostEvent) and not self.start_processes:
            pir = pir | {self.event.vector}
        return frozenset(pir) | self.raced_during

    @property
    def after_start_entry(self) -> bool:
        """The first event of a scenario that starts in L2: its outcome includes the start,
        which is L1's VM entry on both sides."""
        return self.before is None and self.scenario.start == "l2"

    @property
    def start_processes(self) -> bool:
        """The first event of a scenario that starts in L2 with NV pending above L1's PPR:
        the start's VM entry processes the descriptor before the event's own post lands."""
        s = self.scenario
        return (self.after_start_entry and s.vmcs12.process_posted_interrupts
                and self.nv in s.l1_apic.irr and self.nv >> 4 > s.l1_apic.ppr >> 4)

    @property
    def raced_during(self) -> frozenset[int]:
        """Vectors other agents posted during the event that landed before its processing
        harvested PIR (``before`` and ``during`` windows): part of what the processing saw."""
        return frozenset(r.vector for r, w in zip(self.scenario.races, self.windows,
                                                  strict=False)
                         if r.event in self.merged_events and w != "after")

    @property
    def merged_events(self) -> frozenset[int]:
        """The events this comparison stands for: this one, and the next when KVM took its
        in-L0 interrupt in this event's exit."""
        return frozenset({self.index} | ({self.index + 1} if self.index + 1 in self.early
                                         else set()))

    @property
    def raced_after(self) -> frozenset[int]:
        """Vectors other agents posted during the event after its processing (``after``
        window): in PIR, with ON = 1, on both sides after it; not part of what the
        processing saw."""
        late = frozenset(r.vector for r, w in zip(self.scenario.races, self.windows,
                                                  strict=False)
                         if r.event in self.merged_events and w == "after")
        if isinstance(self.event, PostEvent) and self.start_processes:
            late |= {self.event.vector}
        return late

    @property
    def on_before(self) -> bool:
        if isinstance(self.event, PostEvent) and not self.start_processes:
            return True
        return self.scenario.pid.on if self.before is None else self.before.pid.on

    @property
    def isr_before(self) -> frozenset[int]:
        """L1's ISR before the event."""
        return frozenset(self.scenario.l1_apic.isr if self.before is None
                         else self.before.l1_apic.isr)

    @property
    def irr_before(self) -> frozenset[int]:
        """L1's IRR before the event."""
        return frozenset(self.scenario.l1_apic.irr if self.before is None
                         else self.before.l1_apic.irr)

    @property
    def virr_before(self) -> frozenset[int]:
        return frozenset(self.scenario.l2.virr if self.before is None else self.before.l2.virr)

    @property
    def rvi_before(self) -> int:
        return self.scenario.l2.rvi if self.before is None else self.before.l2.rvi

    @property
    def ppr_before(self) -> int:
        """L1's PPR before the event (the scenario's TPR/ISR rule at the start)."""
        if self.before is not None:
            return self.before.l1_apic.ppr
        return self.scenario.l1_apic.ppr

    @property
    def same_notification_path(self) -> bool:
        """Both sides handled the event the same way at L1: the same VM exit (or none) and
        the same L1 IRR, ISR and PPR (so KVM did take the posted-interrupt path where the
        hardware did)."""
        hw, sw = self.hardware, self.software
        return (hw.vmexit == sw.vmexit and hw.l1_apic.irr == sw.l1_apic.irr
                and hw.l1_apic.isr == sw.l1_apic.isr and hw.l1_apic.ppr == sw.l1_apic.ppr)

    @property
    def nv(self) -> int:
        return self.scenario.vmcs12.posted_intr_nv & 0xFF

    @property
    def posted_interrupts(self) -> bool:
        return self.scenario.vmcs12.process_posted_interrupts


@dataclass(frozen=True)
class DrainContext:
    """What a drain predicate sees: both sides at rest and the differences left."""

    scenario: Scenario
    hardware: Outcome
    software: Outcome
    differences: tuple[str, ...]
    #: for each finding hit earlier in the scenario, the vectors whose fate it decided
    vectors: tuple[tuple[str, frozenset[int]], ...] = ()
    #: vectors whose two arrivals KVM took once (D12), so delivered once fewer there
    coalesced: frozenset[int] = frozenset()
    #: vectors other agents posted after the hardware's processing of a notification that
    #: KVM processes later (D12), so harvested on KVM's side only (``Deviation.harvests``)
    harvested: frozenset[int] = frozenset()

    def vectors_of(self, finding_id: str) -> frozenset[int]:
        return dict(self.vectors).get(finding_id, frozenset())


@dataclass(frozen=True)
class Finding:
    """What deviations and known bugs share: an ID, a title, the kernel reference, the
    outcome fields it may change at an event and the predicate that must hold there."""

    id: str
    title: str
    sdm: str
    kvm: str
    source: str
    fields: frozenset[str]
    predicate: Callable[[Context], bool]
    scenario: str
    #: for an event where the finding shows, the vectors whose fate it decides (a known bug:
    #: what it may leave lost at rest; a deviation: what its residue predicate may see moved)
    vectors: Callable[[Context], frozenset[int]] = lambda ctx: frozenset()

    def applies(self, version: KernelVersion) -> bool:
        return True

    def explains(self, ctx: Context, differing: set[str]) -> set[str]:
        """The differing fields this finding explains (empty unless the predicate holds)."""
        claimed = differing & self.fields
        return (claimed if claimed and self.applies(ctx.version) and self.predicate(ctx)
                else set())


@dataclass(frozen=True)
class Deviation(Finding):
    """A documented KVM choice that L1 and L2 cannot observe or that KVM reconciles.

    ``why`` is the argument; ``residue`` the fields it may leave different at rest (after the
    drain), with ``residue_predicate`` saying exactly how. A deviation with no residue must
    leave both sides equal at rest.
    """

    why: str = ""
    residue: frozenset[str] = frozenset()
    residue_predicate: Callable[[DrainContext, str], bool] | None = None
    #: vectors of which KVM took two arrivals as one (one IRR request): one of the two ways
    #: a deviation may account for a lost-interrupt difference at rest (``coalesced``)
    coalesces: Callable[[Context], frozenset[int]] | None = None
    #: vectors another agent posted after the hardware's processing of a notification that
    #: KVM processes later: the other way (``harvested`` at the drain). The hardware holds
    #: them in PIR with ON = 1, which the post turned from 0 to 1 (processing clears ON
    #: first, PI-3), so their sender owes the notification that harvests them (PI-1, the
    #: posting protocol; the testbench's racing agent writes the descriptor only); KVM's
    #: later processing harvests them with no notification needed
    harvests: Callable[[Context], frozenset[int]] | None = None

    def explains_residue(self, ctx: DrainContext, differing: set[str]) -> set[str]:
        """The fields of ``differing`` at rest that this deviation's residue explains (the
        predicate sees each field: a deviation may leave one field different only in a
        shape it checks there)."""
        if self.residue_predicate is None:
            return set()
        return {name for name in differing & self.residue if self.residue_predicate(ctx, name)}


@dataclass(frozen=True)
class KnownBug(Finding):
    """A named KVM bug: what is lost or wrong, where it came from and where it was fixed.

    ``vectors`` names, for an event where the bug shows, the vectors whose fate it decides;
    at the drain it explains lost interrupts of exactly those vectors.
    """

    lost: str = ""
    versions: frozenset[KernelVersion] = ALL_VERSIONS
    introduced: str = "unknown"
    fixed: str = "open"
    #: the bug seen on KVM's side alone: (scenario, KVM's state before, the step, KVM's state
    #: after) -> the vectors whose fate it decides, or nothing. Only for a step no CPU can
    #: take (an acknowledged vector that goes nowhere), so that it needs no hardware
    #: counterpart: used in the drain once the two sides' steps have gone apart.
    signature: Callable[[Scenario, Outcome, Event, Outcome], frozenset[int]] | None = None

    def applies(self, version: KernelVersion) -> bool:
        return version in self.versions


# --- deviations -------------------------------------------------------------------------------


def _d2(ctx: Context) -> bool:
    """Both took the notification; PIR held bit 0 (only bit 0 as the processing found it:
    with any other bit KVM merges it all); KVM neither merged nor cleared it; the hardware
    moved bit 0 into VIRR; that is all that differs in the descriptor and VIRR (a post that
    landed after the processing, e.g. a ``post`` event after the start's, is in PIR on both
    sides)."""
    hw, sw = ctx.hardware, ctx.software
    return (ctx.same_notification_path and 0 in ctx.pir_before and 0 in sw.pid.pir
            and 0 not in hw.pid.pir and hw.pid.pir == sw.pid.pir - {0}
            and hw.pid.on == sw.pid.on and 0 not in sw.l2.virr
            and hw.l2.virr == sw.l2.virr | {0})


def _d2_residue(ctx: DrainContext, name: str) -> bool:
    """At rest, only bit 0 sits in KVM's PIR and in the hardware's VIRR instead."""
    hw, sw = ctx.hardware, ctx.software
    return (sw.pid.pir - hw.pid.pir == {0} and hw.pid.pir == sw.pid.pir - {0}
            and hw.l2.virr - sw.l2.virr == {0} and sw.l2.virr == hw.l2.virr - {0})


def _d10(ctx: Context) -> bool:
    """KVM handled an interrupt for L1 before L2's recognized virtual interrupt, which the
    hardware delivered first (VID-12), and nothing is lost:

    - both took a VM exit to L1 with the same reason and left the same descriptor; on KVM's
      side L2 still has the recognized virtual interrupt (RVI's class above VPPR's; RVI need
      not be in VIRR, C9): the hardware's L2 state is KVM's with exactly that delivery done
      (or those deliveries, each recognized in turn: a higher VIRR bit nests above RVI)
      (the exits' information and L1's APIC are judged on their own: the same, or another
      finding's difference, D12's taking another L1 interrupt first);
    - or, at a VM entry with the notification pending in L1's IRR (the scenario's start in
      L2 included), both processed it alike (the same L1 state, descriptor and VM exit, if
      any); the hardware delivered the entry's RVI first, KVM merged PIR first (the VM-Enter
      check, or ``vmx_check_nested_events()``, before the CPU enters vmcs02) and still holds
      RVI's vector in VIRR; L2 holds or has received the same vectors on both sides;
    - or, at such an entry, both delivered the entry's RVI first, and the hardware's
      processing of NV after it evaluated (step 7) and delivered more, where KVM (processing
      first) waits for its next evaluation: the hardware's L2 state is KVM's with those
      deliveries done."""
    hw, sw = ctx.hardware, ctx.software
    if hw.pid != sw.pid:
        return False
    if sw.vmexit is not None and hw.vmexit is not None:
        if hw.vmexit.reason != sw.vmexit.reason:
            return False
        if delivered_first(ctx):
            return True
    if not ctx.same_notification_path:
        return False
    v = ctx.rvi_before
    if (_entry_rvi_first(ctx) and v in ctx.virr_before and v in sw.l2.virr
            and _l2_vectors(hw) == _l2_vectors(sw)):
        return True
    # the entry's RVI delivered on both sides, but the hardware processed NV after it, and
    # that processing's evaluation (step 7) delivered more: KVM, which processed NV first,
    # delivers them at its next evaluation
    new_hw, new_sw = ctx.new_deliveries
    return ((_entry_with_nv_pending(ctx) and new_hw[:1] == new_sw[:1] == (v,)
             and bool(delivered_first(ctx))) or bool(_d10_collapsed(ctx)))


def _d10_collapsed(ctx: Context) -> frozenset[int]:
    """At a VM entry with NV pending, the entry's RVI v was also posted in PIR: the hardware
    delivered v first (VID-12) and then merged it again (a second request, delivered later);
    KVM merged first, so v's two requests were pending at once and collapsed into one VIRR
    bit (VIRR is a bitmap, SDM 29.2.1): one delivery of v fewer on KVM's side, the same
    vectors held or delivered in L2 on both sides at this event (the order and the count at
    rest are the residue's to check). Returns {v}, or nothing."""
    v = ctx.rvi_before
    new_hw, _new_sw = ctx.new_deliveries
    if (_entry_with_nv_pending(ctx) and ctx.same_notification_path
            and ctx.hardware.pid == ctx.software.pid and v >> 4 > 0
            and v in ctx.pir_before and v in ctx.virr_before and new_hw[:1] == (v,)
            and _l2_vectors(ctx.hardware) == _l2_vectors(ctx.software)):
        return frozenset({v})
    return frozenset()


def _reevaluated(ctx: Context) -> frozenset[int]:
    """KVM's exit to L0 and re-entry to vmcs02 (a VM entry: it evaluates pending virtual
    interrupts, VID-11) delivered the hardware's RVI, which the hardware has not recognized
    since its last delivery (SDM 29.2.1: recognition ceases after a delivery and only VM
    entry, TPR, EOI or self-IPI virtualization and posted-interrupt processing evaluate
    again): both agree on everything but that one delivery. Only an RVI above VPPR after a
    delivery, that is RVI raised to a VIRR bit above the delivered vector (C9), shows it.
    Returns the vector, or nothing."""
    hw, sw = ctx.hardware, ctx.software
    w = hw.l2.rvi
    if not (ctx.same_notification_path and hw.pid == sw.pid and hw.mode == sw.mode == "l2"
            and ctx.scenario.vmcs12.virtual_interrupt_delivery
            and w in hw.l2.virr and w >> 4 > hw.l2.vppr >> 4
            and sw.l2.delivered == (*hw.l2.delivered, w)
            and sw.l2.visr == hw.l2.visr | {w} and sw.l2.virr == hw.l2.virr - {w}
            and sw.l2.svi == w):
        return frozenset()
    return frozenset({w})


def _duplicate_notification_possible(ctx: Context) -> bool:
    """A CPU could have evaluated at that moment too: posted interrupts are on and L1's PPR
    lets NV through, so another agent's duplicate notification (C4: PIR empty, ON 0)
    would run posted-interrupt processing, whose step 7 evaluates."""
    return (ctx.posted_interrupts and ctx.nv >> 4 > ctx.ppr_before >> 4
            and ctx.nv >> 4 > ctx.hardware.l1_apic.ppr >> 4)


def _d11(ctx: Context) -> bool:
    return bool(_reevaluated(ctx)) and _duplicate_notification_possible(ctx)


def _kb11(ctx: Context) -> bool:
    return bool(_reevaluated(ctx)) and not _duplicate_notification_possible(ctx)


def _together(ctx: Context) -> tuple[int, int] | None:
    """An interrupt for L1 that arrived while KVM was in L0 (``in_l0``) was taken by KVM in
    the previous event's exit together with that event's interrupt, where the hardware took
    the earlier one first. Returns (a, b): the hardware's first vector and the in-L0 one, if
    KVM's outcome is the hardware's with the two arriving at once: L1's APIC acknowledges the
    higher, b (an external-interrupt VM exit, or delivery through L2's IDT), and a waits in
    IRR, or collapses with b in IRR when a = b (SDM 10.8.4: one request per vector)."""
    e, m = ctx.event, ctx.in_l0_arrival
    if m is None or m is e or not isinstance(e, InterruptEvent):
        return None
    hw, sw = ctx.hardware, ctx.software
    a, b = e.vector, m.vector
    if a > b or hw.mode != sw.mode:
        return None
    hl, sl = hw.l1_apic, sw.l1_apic
    if a == ctx.nv and ctx.posted_interrupts and a != b and hw.vmexit == sw.vmexit:
        # the hardware processed the earlier NV (posted-interrupt processing) before b
        # arrived; KVM, holding both, took b and keeps NV pending in IRR with the descriptor
        # untouched (its processing comes at L1's next VM entry)
        harvested = hw.pid == sw.pid or (
            sw.pid.pir - ctx.raced_after == ctx.pir_before and not hw.pid.pir - ctx.raced_after
            and _l2_vectors(hw) - _l2_vectors(sw) <= ctx.pir_before
            and _l2_vectors(sw) <= _l2_vectors(hw))
        return (a, b) if harvested and sl.irr == hl.irr | {a} and sl.isr == hl.isr else None
    if b == ctx.nv and ctx.posted_interrupts and a != b and hw.vmexit == sw.vmexit:
        # the in-L0 interrupt is NV: KVM, holding both, took NV first (posted-interrupt
        # processing: PIR harvested into L2, ON cleared) and then exited for a, as the
        # hardware does with both arriving at once; the hardware exited for a first, and NV
        # waits in L1's IRR with the descriptor untouched (processed at L1's next VM entry)
        pir, late = ctx.pir_before, ctx.raced_after
        processed = (not sw.pid.pir & pir and (not sw.pid.on or bool(late))
                     and pir <= hw.pid.pir and hw.pid.on == (ctx.on_before or bool(late))
                     and _l2_vectors(sw) - _l2_vectors(hw) <= pir
                     and _l2_vectors(hw) <= _l2_vectors(sw))
        return (a, b) if processed and sl.irr == hl.irr - {b} and sl.isr == hl.isr else None
    # (a descriptor difference here is an earlier finding's, carried: D12 leaves PIR alone,
    # and D12's residue at rest admits no descriptor difference)
    if hw.vmexit is not None or sw.vmexit is not None:  # external-interrupt VM exits
        if hw.vmexit is None or sw.vmexit is None or not hw.vmexit.intr_info >> 31:
            return None
        if (hw.vmexit.intr_info & 0xFF, sw.vmexit.intr_info & 0xFF) != (a, b):
            return None
        if a == b:
            return (a, b) if sl.irr == hl.irr - {a} and sl.isr == hl.isr else None
        return ((a, b) if sl.irr == (hl.irr - {b}) | {a} and sl.isr == (hl.isr - {a}) | {b}
                else None)
    new_hw, new_sw = ctx.new_deliveries  # through L2's IDT
    seen = len(hw.l2.delivered) - len(new_hw)
    if hw.l2.delivered[:seen] != sw.l2.delivered[:seen] or new_sw != (b,):
        return None
    if a == b:
        return (a, b) if new_hw == (a,) and sl.irr == hl.irr - {a} and sl.isr == hl.isr \
            else None
    if new_hw == (a, b):  # b nested above a on the hardware
        return (a, b) if sl.irr == hl.irr | {a} and hl.isr == sl.isr | {a} else None
    if new_hw == (a,):  # b of a's class waits on the hardware
        return ((a, b) if sl.irr == (hl.irr - {b}) | {a} and sl.isr == (hl.isr - {a}) | {b}
                else None)
    return None


def _d12(ctx: Context) -> bool:
    return _together(ctx) is not None


def _d12_vectors(ctx: Context) -> frozenset[int]:
    """The two interrupts; with NV the earlier, also what its later processing decides."""
    pair = _together(ctx)
    if pair is None:
        return frozenset()
    return frozenset(pair) | (_merge_vectors(ctx) if ctx.nv in pair else frozenset())


def _d12_coalesced(ctx: Context) -> frozenset[int]:
    """A vector that arrived twice and that KVM took once (IRR collapses the second
    request): one delivery fewer on KVM's side, as on any APIC where they overlap."""
    pair = _together(ctx)
    return frozenset({pair[0]}) if pair is not None and pair[0] == pair[1] else frozenset()


def _d12_harvested(ctx: Context) -> frozenset[int]:
    """With NV the earlier arrival, what is posted after the hardware's processing of it: the
    posts landing after it in this event (``after`` window) and every later post (``post``
    events, races). KVM, holding NV pending, may harvest them at its later processing; the
    hardware's own later processing, if any, harvests them too (then nothing differs)."""
    pair = _together(ctx)
    if pair is None or pair[0] != ctx.nv:
        return frozenset()
    last = max(ctx.merged_events)
    later = ctx.scenario.events[last + 1:]
    return ctx.raced_after | frozenset(e.vector for e in later if isinstance(e, PostEvent)) \
        | frozenset(r.vector for r in ctx.scenario.races if r.event > last)


def held_behind(outcome: Outcome, vectors: frozenset[int]) -> frozenset[int]:
    """L1's pending vectors that one of ``vectors`` in service holds back (class at or below
    the in-service vector's): pending, not lost, until L1 EOIs it."""
    top = max(outcome.l1_apic.isr, default=-1)
    if top not in vectors:
        return frozenset()
    return frozenset(v for v in outcome.l1_apic.irr if v >> 4 <= top >> 4)


def _d12_residue(ctx: DrainContext, name: str) -> bool:
    """At rest only D12's vectors differ (and, in L1's IRR, vectors that one of them in
    service holds back; in L1's ISR, vectors still in service on a side whose L2 runs at
    rest, their handlers unfinished; in L1's EOI messages, those of such vectors, sent on the
    side whose L1 ran: :func:`_ended_on_one_side`): in L1's IRR/ISR, and in L2's
    deliveries, where KVM's are the hardware's with the earlier arrival taken later, or
    missing where KVM still holds it pending in L1's IRR or took the two arrivals of one
    vector once. With NV the earlier arrival, posts that landed after the hardware's
    processing of it may be in the hardware's PIR (ON = 1, their notification owed) and
    delivered once more on KVM's side, whose later processing harvested them (or pending in
    KVM's L2, held by its VPPR or RFLAGS.IF, VIRR and RVI differing by exactly those); or
    KVM still holds NV pending in L1's IRR (held by L1's PPR), so its processing, which
    clears ON, is still to come (:func:`waiting_for_nv`: ON = 1 on KVM's side only, PIR the
    same but for what the hardware's processing delivered to its L2, each delivered once
    more there); nothing else of the descriptor may differ."""
    hw, sw, mine = ctx.hardware, ctx.software, ctx.vectors_of("D12")
    held = held_behind(hw, mine) | held_behind(sw, mine)
    unfinished = _unfinished(sw, hw) | _unfinished(hw, sw)
    if not (hw.l1_apic.irr ^ sw.l1_apic.irr) <= mine | held:
        return False
    if not (hw.l1_apic.isr ^ sw.l1_apic.isr) <= mine | unfinished:
        return False
    if name == "l1_apic.eoi_messages" and not _ended_on_one_side(hw, sw, mine):
        return False
    owed = owed_posts(ctx)
    waiting = waiting_for_nv(ctx)
    unprocessed = waiting is not None
    owed = owed | held_posts(ctx)  # (or held by L1's PPR on the hardware, processed on KVM's)
    if name in PID and not (owed or unprocessed):  # no other descriptor difference is D12's
        return False
    # harvested by KVM's later processing and still pending in its L2 (held by L2's VPPR or
    # RFLAGS.IF): L2's pending state differs by exactly those, RVI following VIRR
    pending = sw.l2.virr - hw.l2.virr
    in_l2 = (bool(pending) and pending <= owed and hw.l2.virr <= sw.l2.virr
             and pending <= held_in_virr(sw, ctx.scenario.l2.rflags_if)
             and sw.l2.rvi == max(sw.l2.virr))
    if name in ("l2.virr", "l2.rvi") and not in_l2:
        return False
    hws, sws = list(hw.l2.delivered), list(sw.l2.delivered)
    for v in sorted(owed - (pending if in_l2 else frozenset())):
        # KVM's last delivery of each, harvested by its later processing
        if sws.count(v) != hws.count(v) + 1:
            return False
        del sws[len(sws) - 1 - sws[::-1].index(v)]
    for v in sorted(waiting or ()):
        # the hardware's last delivery of each, still in KVM's PIR for its processing to come
        if hws.count(v) != sws.count(v) + 1:
            return False
        del hws[len(hws) - 1 - hws[::-1].index(v)]
    for v in sorted(mine):
        extra = hws.count(v) - sws.count(v)
        # the last deliveries of v on one side, held in L1's IRR on the other (or collapsed)
        one, other = (hws, sw) if extra > 0 else (sws, hw)
        if extra and (v in other.l1_apic.irr or (extra > 0 and v in ctx.coalesced)):
            for _ in range(abs(extra)):
                del one[len(one) - 1 - one[::-1].index(v)]
    return _moved_later(tuple(hws), tuple(sws), mine)


def _unfinished(side: Outcome, other: Outcome) -> frozenset[int]:
    """L1's vectors in service on ``side`` only while its L2 runs at rest: delivered to L1,
    their handlers unfinished (L1 ends them when it next runs, which the drain cannot make
    happen while L2 runs)."""
    return side.l1_apic.isr - other.l1_apic.isr if side.mode == "l2" else frozenset()


def _ended_on_one_side(hw: Outcome, sw: Outcome, mine: frozenset[int]) -> bool:
    """L1's EOI messages on one side only are of handlers that side's L1 ended and the other
    side's L1 has not run yet: :func:`_unfinished` there, or pending in its IRR behind one of
    ``mine`` in service (ended, then taken and ended, on the side whose L1 ran). L1 sends
    them when it next runs: pending, not lost."""
    hw_m, sw_m = Counter(hw.l1_apic.eoi_messages), Counter(sw.l1_apic.eoi_messages)
    return (set(hw_m - sw_m) <= _unfinished(sw, hw) | held_behind(sw, mine)
            and set(sw_m - hw_m) <= _unfinished(hw, sw) | held_behind(hw, mine))


def masked_apart(ctx: Context, hw_before: Outcome | None,
                 hits: dict[str, frozenset[int]]) -> tuple[str, frozenset[int]] | None:
    """L2's notification vector arrives (posted interrupts on, L2 running on both sides)
    while L1's PPR differs between the sides because a deviation hit earlier left different
    L1 vectors in service (D12: the ISRs differ in its vectors only), NV's class at or below
    the PPR class on one side and above it on the other. Each side does what the hardware
    does at its own PPR (SDM 29.6, PI-1: only a recognized NV starts posted-interrupt
    processing): where masked, NV waits in L1's IRR and the descriptor and L2 are untouched;
    where not, processing acknowledged NV, harvested PIR into L2 and cleared ON (posts that
    raced in after it stay, with ON = 1). Returns the deviation and the vectors whose fate
    it now decides (NV and the PIR), or None."""
    e, sw_before = ctx.event, ctx.before
    if not (isinstance(e, InterruptEvent) and e.vector == ctx.nv and ctx.posted_interrupts
            and sw_before is not None and hw_before is not None
            and hw_before.pid == sw_before.pid
            and {hw_before.mode, sw_before.mode, ctx.hardware.mode, ctx.software.mode} == {"l2"}):
        return None
    masked = [ctx.nv >> 4 <= side.l1_apic.ppr >> 4 for side in (hw_before, sw_before)]
    if masked[0] == masked[1]:
        return None
    apart = hw_before.l1_apic.isr ^ sw_before.l1_apic.isr
    found = next((d for d, vectors in sorted(hits.items())
                  if apart and apart <= vectors and L1_APIC <= by_id(d).fields), None)
    if found is None:
        return None
    pir, late = ctx.pir_before, ctx.raced_after
    (m_before, m), (p_before, p) = (((hw_before, ctx.hardware), (sw_before, ctx.software))
                                    if masked[0] else
                                    ((sw_before, ctx.software), (hw_before, ctx.hardware)))
    waits = (m.l1_apic.irr == m_before.l1_apic.irr | {ctx.nv}
             and m.l1_apic.isr == m_before.l1_apic.isr
             and m.pid.pir - late == m_before.pid.pir and m.pid.sn == m_before.pid.sn
             and m.pid.on == (m_before.pid.on or bool(late)) and m.l2 == m_before.l2)
    processed = (p.l1_apic.irr == p_before.l1_apic.irr - {ctx.nv}
                 and p.l1_apic.isr == p_before.l1_apic.isr
                 and not p.pid.pir - late and p.pid.on == bool(late)
                 and p.pid.sn == p_before.pid.sn
                 and pir <= _l2_vectors(p) and _l2_vectors(p) - _l2_vectors(p_before) <= pir)
    return (found, frozenset({ctx.nv}) | pir) if waits and processed else None


def waiting_for_nv(ctx: DrainContext) -> frozenset[int] | None:
    """At rest, KVM's processing of L2's notification vector still to come, where the
    hardware's is done: D12 had KVM take the other interrupt first, and NV waits in KVM's L1
    IRR (held by L1's PPR until L1 ends what it has in service). KVM's descriptor is then the
    hardware's before its processing: ON = 1 where the hardware's is 0, the same SN, and PIR
    the hardware's plus what the hardware's processing harvested and delivered to its L2
    (vectors delivered more often there than on KVM's side). Returns those vectors (pending
    in KVM's PIR, not lost: KVM processes them with NV), or None if the descriptors differ in
    any other way."""
    hw, sw = ctx.hardware, ctx.software
    nv = ctx.scenario.vmcs12.posted_intr_nv & 0xFF
    waiting = sw.pid.pir - hw.pid.pir
    if not (nv in ctx.vectors_of("D12") and nv in sw.l1_apic.irr and nv not in hw.l1_apic.irr
            and sw.pid.on and not hw.pid.on and sw.pid.sn == hw.pid.sn
            and hw.pid.pir <= sw.pid.pir
            and waiting <= set(Counter(hw.l2.delivered) - Counter(sw.l2.delivered))):
        return None
    return waiting


def held_posts(ctx: DrainContext) -> frozenset[int]:
    """At rest, the hardware's posts waiting for a notification that L1's APIC holds back:
    NV pending in the hardware's L1 IRR behind a D12 vector in service (:func:`masked_apart`),
    the descriptor's PIR with ON = 1, where KVM, whose L1 PPR let NV through, processed it
    (NV gone, ON = 0, those posts harvested and delivered to L2). Pending, not lost: NV is
    taken when L1's PPR drops. Returns the posts held, if that is the descriptors' only
    difference."""
    hw, sw = ctx.hardware, ctx.software
    nv = ctx.scenario.vmcs12.posted_intr_nv & 0xFF
    held = hw.pid.pir - sw.pid.pir
    if not (held and nv in held_behind(hw, ctx.vectors_of("D12")) and nv not in sw.l1_apic.irr
            and hw.pid.on and not sw.pid.on and sw.pid.pir <= hw.pid.pir
            and sw.pid.sn == hw.pid.sn):
        return frozenset()
    return held


def owed_posts(ctx: DrainContext) -> frozenset[int]:
    """The posts D12 let KVM harvest (``harvested``) that the hardware holds in PIR with
    ON = 1, their notification owed, if that is the descriptors' only difference: KVM's is
    the hardware's with them harvested (ON cleared unless other bits are left)."""
    hw, sw = ctx.hardware.pid, ctx.software.pid
    owed = (hw.pir - sw.pir) & ctx.harvested
    if not (owed and hw.on and sw.pir == hw.pir - owed and sw.sn == hw.sn):
        return frozenset()
    return owed


def _posted_after_processing(ctx: Context) -> tuple[frozenset[int], bool]:
    """What was posted at earlier events after a notification's processing (from the first
    NV arrival on, when KVM's nested ``pi_pending`` was set): races that landed ``during``
    or ``after`` a processing, and ``post`` events. Each such post found ON = 0 or joined a
    post that did (ON is 1 only between a post and the next processing's step 3), so a
    notification is owed for it. Returns the vectors, and whether a race set ON again."""
    first = next((i for i, e in enumerate(ctx.scenario.events)
                  if isinstance(e, InterruptEvent) and e.vector == ctx.nv), None)
    if first is None or first >= ctx.index:
        return frozenset(), False
    raced = frozenset(r.vector for r, w in zip(ctx.scenario.races, ctx.windows, strict=False)
                      if first <= r.event < ctx.index and w != "before")
    posted = frozenset(e.vector for e in ctx.scenario.events[first + 1:ctx.index]
                       if isinstance(e, PostEvent))
    return raced | posted, bool(raced)


def _stale_harvest(ctx: Context) -> frozenset[int] | None:
    """KVM's stale nested ``pi_pending`` completed the descriptor at this event where the
    hardware had no notification to process: KVM's ON is cleared and its PIR harvested into
    L2's virtual APIC, the hardware's ON = 1 and its PIR holds exactly what KVM harvested,
    all posted after an earlier processing (:func:`_posted_after_processing`); L1's state and
    the VM exit are the same (posts racing in after KVM's completion are in PIR on both
    sides). Returns the harvested vectors (maybe none: ON alone), or None."""
    hw, sw, late = ctx.hardware, ctx.software, ctx.raced_after  # (races after it: both)
    harvested = hw.pid.pir - sw.pid.pir
    posted, reset = _posted_after_processing(ctx)
    if not (ctx.posted_interrupts and ctx.before is not None and ctx.before.pid.on
            and hw.pid.on and (not sw.pid.on or bool(late)) and sw.pid.pir <= late
            and hw.pid.sn == sw.pid.sn and hw.pid.pir - late == harvested - late
            and harvested <= posted and (harvested or reset)
            and hw.vmexit == sw.vmexit and hw.mode == sw.mode and hw.l1_apic == sw.l1_apic):
        return None
    if harvested:
        ok = (_l2_vectors(sw) - _l2_vectors(hw) == harvested
              and _l2_vectors(hw) <= _l2_vectors(sw))
    else:
        ok = hw.l2 == sw.l2
    return harvested if ok else None


def _stale_pi_pending(ctx: Context) -> bool:
    return _stale_harvest(ctx) is not None


def _stale_pi_pending_vectors(ctx: Context) -> frozenset[int]:
    return _stale_harvest(ctx) or frozenset()


def _stale_pi_pending_residue(ctx: DrainContext, name: str) -> bool:
    """At rest the descriptors differ only in ON (1 on the hardware, 0 on KVM, PIR empty on
    both), or by the posts KVM's stale completion harvested (the hardware's PIR holds them
    with ON = 1, their notification owed), each delivered to L2 once more on KVM's side, or
    pending in KVM's VIRR behind L2's VPPR, and L2's deliveries otherwise the same, in the
    same order."""
    hw, sw = ctx.hardware, ctx.software
    owed = owed_posts(ctx) & ctx.vectors_of("D13")
    if name in PID:
        return ((hw.pid.on and not sw.pid.on and not hw.pid.pir and not sw.pid.pir
                 and hw.pid.sn == sw.pid.sn) or bool(owed))
    pending = sw.l2.virr - hw.l2.virr  # harvested, and held in L2's VIRR at rest
    if not (owed and pending <= owed and hw.l2.virr <= sw.l2.virr
            and pending <= held_in_virr(sw, ctx.scenario.l2.rflags_if)):
        return False
    if name in ("l2.virr", "l2.rvi"):
        return bool(pending) and sw.l2.rvi == max(sw.l2.virr)
    software = list(sw.l2.delivered)
    for v in sorted(owed - pending):
        if software.count(v) != hw.l2.delivered.count(v) + 1:
            return False
        software.remove(v)
    return tuple(software) == hw.l2.delivered


def _entry_rvi_first(ctx: Context) -> bool:
    """A VM entry with the notification pending in L1's IRR (a ``vm_entry`` event, or the
    scenario's start in L2, which is L1's VM entry on both sides), after which the hardware's
    first delivery to L2 is the entry's RVI (VID-12: before the notification's processing)
    and KVM delivered RVI's vector nowhere at this event; both may then have taken the same
    VM exit (for a lower L1 interrupt, or one the event brought)."""
    v = ctx.rvi_before
    new_hw, new_sw = ctx.new_deliveries
    return (_entry_with_nv_pending(ctx) and v >> 4 > 0 and new_hw[:1] == (v,)
            and v not in new_sw)


def _entry_with_nv_pending(ctx: Context) -> bool:
    """A VM entry (a ``vm_entry`` event, or the scenario's start in L2, which is L1's VM
    entry on both sides) with posted interrupts on and the notification pending in L1's
    IRR, after which both took the same VM exit, or none."""
    entry = isinstance(ctx.event, VmEntryEvent) or ctx.after_start_entry
    return (entry and ctx.posted_interrupts and ctx.nv in ctx.irr_before
            and ctx.hardware.vmexit == ctx.software.vmexit)


def _deliver(l2: L2Outcome) -> L2Outcome | None:
    """One virtual-interrupt delivery from ``l2`` (VID-7, SDM 29.2.2), if RVI is recognized
    (its class above VPPR's, VID-4): VISR gets RVI, SVI := RVI, VPPR := RVI & F0H, VIRR loses
    RVI and RVI becomes VIRR's highest bit (or 0)."""
    v = l2.rvi
    if v >> 4 <= l2.vppr >> 4:
        return None
    virr = l2.virr - {v}
    return L2Outcome(virr=virr, visr=l2.visr | {v}, rvi=max(virr, default=0), svi=v,
                     vppr=v & 0xF0, delivered=(*l2.delivered, v))


def delivered_first(ctx: Context) -> tuple[int, ...]:
    """The virtual interrupts the hardware delivered, one after another, before the VM exit
    that KVM took first: KVM's L2 state with those deliveries done (each recognized in turn,
    VID-4, VID-7) is the hardware's. Returns them, or nothing."""
    hw, sw = ctx.hardware.l2, ctx.software.l2
    state: L2Outcome | None = sw
    while state is not None and len(state.delivered) < len(hw.delivered):
        state = _deliver(state)
    if state is None or state == sw or state != hw:
        return ()
    return state.delivered[len(sw.delivered):]


def _d10_vectors(ctx: Context) -> frozenset[int]:
    """The virtual interrupts KVM delivers later than the hardware: those the hardware
    delivered at this event and KVM did not, and the entry's RVI whose second request
    collapsed on KVM's side."""
    new_hw, new_sw = ctx.new_deliveries
    later = frozenset(Counter(new_hw) - Counter(new_sw)) | _d10_collapsed(ctx)
    return later or frozenset(
        {ctx.software.l2.rvi if ctx.software.vmexit is not None else ctx.rvi_before})


def _moved_later(hardware: tuple[int, ...], software: tuple[int, ...],
                 moved: frozenset[int]) -> bool:
    """``software`` is ``hardware`` with some deliveries of the ``moved`` vectors taken later:
    the same deliveries, the others in the same order, and each delivery of a moved vector
    after at least as many of the others as on the hardware."""
    if sorted(hardware) != sorted(software):
        return False
    if [v for v in hardware if v not in moved] != [v for v in software if v not in moved]:
        return False

    def positions(seq: tuple[int, ...], m: int) -> list[int]:
        others, out = 0, []
        for v in seq:
            if v == m:
                out.append(others)
            elif v not in moved:
                others += 1
        return out

    return all(s >= h for m in moved
               for h, s in zip(positions(hardware, m), positions(software, m), strict=True))


def _held_later(ctx: DrainContext, mine: frozenset[int],
                on_kvm: bool) -> frozenset[int] | None:
    """The finding's delayed vectors that the late side (KVM's, ``on_kvm``) still holds
    pending in L2's VIRR behind its VPPR at rest, where the early side delivered them, if
    that is all that differs in L2's pending state (VIRR, and RVI as VIRR's highest bit);
    None if anything else differs there."""
    early, late = ((ctx.hardware, ctx.software) if on_kvm else (ctx.software, ctx.hardware))
    extra = late.l2.virr - early.l2.virr
    if early.l2.virr - late.l2.virr or not extra <= mine:
        return None
    if (not extra <= held_in_virr(late, ctx.scenario.l2.rflags_if)
            or any(v not in early.l2.delivered for v in extra)):
        return None
    if extra and late.l2.rvi != max(late.l2.virr):
        return None
    if not extra and late.l2.rvi != early.l2.rvi:
        return None
    return frozenset(extra)


def _delayed(finding_id: str, *, on_kvm: bool) -> Callable[[DrainContext, str], bool]:
    """The residue of a finding that changes only when some vectors are delivered: at rest L2
    has received the same vectors, one side's order being the other's with the finding's
    vectors taken later (KVM's, ``on_kvm``, or the hardware's)."""
    def residue(ctx: DrainContext, name: str) -> bool:
        mine = ctx.vectors_of(finding_id)
        hardware = list(ctx.hardware.l2.delivered)
        software = ctx.software.l2.delivered
        for v in sorted(ctx.coalesced):  # two requests KVM took as one: one delivery fewer
            if hardware.count(v) == software.count(v) + 1:
                del hardware[len(hardware) - 1 - hardware[::-1].index(v)]
        held = _held_later(ctx, mine, on_kvm)
        if held is None:
            return False
        if name != "l2.delivered":  # L2's pending state differs only by the held vectors
            return bool(held)
        late_side = ctx.software if on_kvm else ctx.hardware
        for v in sorted(held):  # delivered on one side, still pending on the other
            if hardware.count(v) - late_side.l2.delivered.count(v) not in (1, -1):
                return False
        if on_kvm:
            hardware = [v for v in hardware if v not in held or software.count(v)]
        early, late = tuple(hardware), software
        if not on_kvm:
            early, late = late, early
        return _moved_later(early, late, ctx.vectors_of(finding_id))
    return residue


DEVIATIONS: tuple[Deviation, ...] = (
    Deviation(
        "D2", "PIR holding only bit 0",
        sdm="PIR is ORed into VIRR and cleared; RVI := max(RVI, 0)",
        kvm="max_irr = pi_find_highest_vector(); if (max_irr > 0) { merge }: PIR = {0} is "
            "neither merged nor cleared",
        source="arch/x86/kvm/vmx/nested.c vmx_complete_nested_posted_interrupt(), "
               "commit d83c36d822be44db4bad0c43bea99c8908f54117",
        fields=frozenset({"pid.pir", "l2.virr"}), predicate=_d2, scenario="pir-vector-zero",
        why="No interrupt is gained or lost: vector 0 is illegal (SDM 10.5.2) and can never be "
            "delivered on either side, since virtual-interrupt delivery needs RVI[7:4] > "
            "VPPR[7:4] and class 0 is above nothing. The only residue is the reserved bit 0, "
            "left in PIR by KVM and in VIRR by the hardware; the drain checks that nothing "
            "else differs at rest. Only an L1 that posts the illegal vector 0 itself can see "
            "where the bit ended up.",
        residue=frozenset({"pid.pir", "l2.virr"}), residue_predicate=_d2_residue),
    Deviation(
        "D10", "an L1 interrupt handled before a recognized L2 virtual interrupt",
        sdm="virtual-interrupt delivery has priority over external interrupts and their VM "
            "exits (VID-12, SDM 29.2.2): the recognized virtual interrupt is delivered first, "
            "then the external interrupt exits to L1 or, being the notification, is processed",
        kvm="vmx_check_nested_events() synthesizes the external-interrupt VM exit for L1 "
            "before vmcs02 is re-entered, where the CPU would deliver L2's virtual interrupt; "
            "the interrupt stays in VIRR/RVI. At a VM entry with the notification pending, "
            "the VM-Enter check (nested_vmx_run(), pre-patch and post-patch) or "
            "vmx_check_nested_events() (nov-2024) completes the nested posted interrupt before "
            "the CPU enters vmcs02, so the merged vectors come first",
        source="arch/x86/kvm/vmx/nested.c vmx_check_nested_events(), nested_vmx_run(), "
               "vmx_complete_nested_posted_interrupt()",
        fields=L2_VIRTUAL_APIC, predicate=_d10, scenario="l2-virtual-before-l1-exit",
        vectors=_d10_vectors,
        why="Reconciled: the virtual interrupt stays recognized in VIRR/RVI and is delivered "
            "after L1's interrupt (at L1's next VM entry, or once L2 EOIs the merged vectors), "
            "which is the same as the hardware with the virtual interrupt arriving later "
            "(interrupt arrival times are not architectural). L1 sees the same VM exit with "
            "the same information (or the exit of another L1 interrupt that D12 explains). "
            "The drain checks that L2 receives the same vectors, in the "
            "hardware's order but for the delayed vector, which may come after vectors that "
            "KVM delivered first (l2-virtual-after-notification-at-entry); with RVI not in "
            "VIRR the delayed vector is lost instead, KB10.",
        residue=frozenset({"l2.delivered", "l2.virr", "l2.rvi"}),
        residue_predicate=_delayed("D10", on_kvm=True), coalesces=_d10_collapsed),
    Deviation(
        "D11", "a pending virtual interrupt recognized at KVM's re-entry to L2",
        sdm="after a virtual interrupt's delivery recognition ceases; only VM entry, TPR, EOI "
            "and self-IPI virtualization and posted-interrupt processing evaluate pending "
            "virtual interrupts again (SDM 29.2.1, VID-4): an RVI raised above VPPR by the "
            "delivery waits for one of them",
        kvm="an interrupt for L1 while L2 runs makes the CPU exit to L0; KVM re-enters vmcs02, "
            "and that VM entry evaluates (VID-11), so the waiting RVI is delivered at once",
        source="arch/x86/kvm/vmx/vmx.c vmx_vcpu_run() re-entering vmcs02 after an exit L0 "
               "handles (any version)",
        fields=L2_VIRTUAL_APIC, predicate=_d11, scenario="l2-virtual-recognized-at-reentry",
        vectors=_reevaluated,
        why="Unobservable: L0's exit and re-entry are not architectural events of L1 or L2, "
            "and a CPU evaluates at that moment too when another agent sends a duplicate "
            "notification (C4: posted interrupts on, NV above L1's PPR, PIR empty: "
            "posted-interrupt processing changes nothing but evaluates). Only an RVI that a "
            "delivery raised to a VIRR bit above the delivered vector can wait, that is after "
            "L1 left RVI below VIRR's top (C9). The drain checks that L2 receives the same "
            "vectors, the early one at most earlier. Where no duplicate notification could "
            "have arrived (posted interrupts off, or NV masked by L1's PPR), the same "
            "difference is KB11.",
        residue=frozenset({"l2.delivered"}),
        residue_predicate=_delayed("D11", on_kvm=False)),
    Deviation(
        "D12", "two interrupts for L1 that KVM holds at once taken by priority",
        sdm="L1's APIC presents its highest-priority pending interrupt at each instruction "
            "boundary (SDM 10.8.3.1): an interrupt taken (a VM exit, or delivery through L2's "
            "IDT) before a second one arrives is taken first, whatever their vectors",
        kvm="an interrupt for L1 makes the vCPU exit to L0; a second one arriving while KVM "
            "handles that exit (in_l0) finds the first still in L1's IRR: "
            "vmx_check_nested_events() / kvm_cpu_get_interrupt() take the higher first, and "
            "the same vector twice is one IRR bit",
        source="arch/x86/kvm/vmx/nested.c vmx_check_nested_events(), arch/x86/kvm/lapic.c "
               "kvm_get_apic_interrupt() (any version)",
        fields=EXIT | L1_APIC | PID | L2_VIRTUAL_APIC, predicate=_d12,
        scenario="two-l1-interrupts-in-l0", vectors=_d12_vectors,
        why="Unobservable: the first interrupt's way to L1 through L0 takes longer than on a "
            "CPU, and interrupt arrival times are not architectural: KVM's outcome is the "
            "hardware's with both arriving at once (the higher acknowledged first, the lower "
            "waiting in IRR; NV, when it is the higher, starting posted-interrupt processing; "
            "one vector twice collapsing into one request, SDM 10.8.4). The "
            "judge checks exactly that shape at the event, and at rest that only these two "
            "vectors differ: the earlier arrival delivered later, or still pending in L1's "
            "IRR (held by L1's PPR, not lost), or delivered once for the two arrivals of one "
            "vector. With NV the earlier arrival, KVM's processing of it comes later too, so "
            "posts landing between the hardware's processing and KVM's are harvested on KVM's "
            "side only: the hardware with both arriving at once does the same, and the "
            "hardware's PIR holds them with ON = 1, which a post after a processing turns from "
            "0 to 1, so their notification is owed (the testbench's other agents write the "
            "descriptor only); the judge admits exactly those vectors, each delivered once "
            "more by KVM, and no other descriptor difference. A later arrival of one of the "
            "two vectors collapses with its first request on the side that still holds it "
            "pending (SDM 10.8.4): one delivery fewer there, also admitted. When the two "
            "sides' L1s have different vectors of these in service, L2's notification vector "
            "may meet a different L1 PPR on each: held back (NV pending in IRR, PIR waiting "
            "with ON = 1) on one, processed on the other, each as the hardware does at its "
            "own PPR (masked_apart); at rest the held PIR is pending behind L1's PPR, not "
            "lost (held_posts).",
        residue=L1_RUNS | PID | frozenset({"l2.delivered", "l2.virr", "l2.rvi"}),
        residue_predicate=_d12_residue,
        coalesces=_d12_coalesced, harvests=_d12_harvested),
    Deviation(
        "D13", "a stale nested pi_pending completes the descriptor after another agent's post",
        sdm="posted-interrupt processing runs only when a notification is acknowledged "
            "(SDM 29.6): a post that lands after step 3 of a processing leaves ON = 1 (and "
            "its vector in PIR, if it landed after step 5) until its sender's notification, "
            "whose processing clears ON and harvests PIR",
        kvm="vmx_deliver_nested_posted_interrupt() sets nested.pi_pending and has the CPU "
            "process the descriptor on vmcs02; pi_pending stays set, and the next "
            "vmx_check_nested_events() runs vmx_complete_nested_posted_interrupt(), which "
            "clears pi_pending and, finding ON = 1, clears it and merges PIR into L2's VIRR",
        source="arch/x86/kvm/vmx/vmx.c vmx_deliver_nested_posted_interrupt(), "
               "arch/x86/kvm/vmx/nested.c vmx_complete_nested_posted_interrupt() (any version)",
        fields=PID | L2_VIRTUAL_APIC, predicate=_stale_pi_pending,
        scenario="stale-pi-pending-clears-on", vectors=_stale_pi_pending_vectors,
        why="Unobservable: the post that set ON again turned it from 0 to 1, so its sender "
            "owes a notification, whose processing on the hardware clears ON and harvests "
            "what the post left in PIR, as KVM's completion did, only earlier (interrupt "
            "arrival times are not architectural); with PIR empty (C4) it merges nothing. "
            "The judge admits only this shape: KVM's ON cleared and its PIR harvested into "
            "L2, the hardware's ON = 1 with exactly those vectors, all posted after an "
            "earlier processing, L1 the same; at rest the hardware's PIR still holds them "
            "(ON = 1) and KVM delivered each once more, L2's deliveries otherwise the same.",
        residue=PID | frozenset({"l2.delivered", "l2.virr", "l2.rvi"}),
        residue_predicate=_stale_pi_pending_residue,
        harvests=_stale_pi_pending_vectors)
)


# --- known KVM bugs ---------------------------------------------------------------------------


def _kb1(ctx: Context) -> bool:
    """The seed: with posted interrupts on, KVM turned L2's notification vector into an
    external-interrupt VM exit to L1 (information 0x80000000 | NV) where the hardware did not
    exit for it (posted-interrupt processing)."""
    sw, hw = ctx.software, ctx.hardware
    return (ctx.posted_interrupts and sw.vmexit is not None
            and sw.vmexit.intr_info == 0x80000000 | ctx.nv and hw.vmexit != sw.vmexit)


def _both_exit_below_nv(ctx: Context) -> bool:
    """Both exited to L1 for an external interrupt other than NV, maybe not the same one (L1's
    pending vectors differing for another finding's reason, D12), and NV is gone from L1's
    IRR and ISR on both sides."""
    hw, sw, nv = ctx.hardware, ctx.software, ctx.nv
    return (hw.vmexit is not None and sw.vmexit is not None
            and hw.vmexit.reason == sw.vmexit.reason == 1
            and hw.vmexit.intr_info >> 31 == sw.vmexit.intr_info >> 31 == 1
            and hw.vmexit.intr_info & 0xFF != nv and sw.vmexit.intr_info & 0xFF != nv
            and nv not in hw.l1_apic.irr | hw.l1_apic.isr | sw.l1_apic.isr)


def _kb2(ctx: Context) -> bool:
    """Both took the same VM exit to L1 for a vector other than NV (or each exited for a
    vector other than NV, :func:`_both_exit_below_nv`); KVM left the nested
    descriptor untouched (ON = 1, PIR as before: the VM-Enter check's pi_pending never
    completed) while NV left L1's IRR on both sides; the hardware harvested PIR (or, with PIR
    empty, cleared ON: KVM's ON = 1 alone already stops every later sender's notification);
    beside what it merged, the hardware's L2 may hold the entry's RVI it delivered first."""
    hw, sw = ctx.hardware, ctx.software
    pir, late = ctx.pir_before, ctx.raced_after
    return ((ctx.same_notification_path or _both_exit_below_nv(ctx)) and sw.vmexit is not None
            and sw.pid.on and sw.pid.pir - late == pir
            and (hw.pid.pir - late < pir
                 or (not pir and not hw.pid.on and isinstance(ctx.event, VmEntryEvent)))
            and ctx.nv not in sw.l1_apic.irr
            and _l2_vectors(hw) - _l2_vectors(sw) <= (pir - hw.pid.pir) | _entry_rvi(ctx))


def _entry_rvi(ctx: Context) -> frozenset[int]:
    """At a VM entry with NV pending, the entry's RVI that the hardware delivered first
    (VID-12) and KVM did not deliver at this event (D10's shape, possibly outside VIRR, C9):
    a vector the hardware's L2 may hold beside what its processing merged."""
    return frozenset({ctx.rvi_before}) if _entry_rvi_first(ctx) else frozenset()


def _kb2_signature(scenario: Scenario, before: Outcome, event: Event,
                   after: Outcome) -> frozenset[int]:
    """KB2 on KVM's side alone: at a VM entry with NV pending in L1's IRR (posted interrupts
    on), KVM exits for another vector and NV is gone from L1's IRR and ISR with the
    descriptor untouched: an acknowledged notification neither processed nor reported,
    which no CPU does (SDM 29.6: the acknowledged NV starts posted-interrupt processing).
    Returns NV and the PIR it strands."""
    nv = scenario.vmcs12.posted_intr_nv & 0xFF
    exit_ = after.vmexit
    if not (isinstance(event, VmEntryEvent) and scenario.vmcs12.process_posted_interrupts
            and nv in before.l1_apic.irr and exit_ is not None and exit_.intr_info >> 31
            and exit_.intr_info & 0xFF != nv
            and nv not in after.l1_apic.irr | after.l1_apic.isr and after.pid == before.pid):
        return frozenset()
    return frozenset({nv}) | before.pid.pir


def _kb3(ctx: Context) -> bool:
    """A trapped IPI of NV while L2 runs, with NV's class at or below L1's PPR class: the
    hardware keeps NV pending in L1's IRR, KVM does not (it started nested posted-interrupt
    processing); or NV was pending in L1's IRR already (the IPI collapses with it on the
    hardware) and KVM's processing changed the descriptor where the hardware's did not."""
    hw, sw = ctx.hardware, ctx.software
    # L1's PPR as NV arrived: before the event, or, for an arrival while KVM was in L0,
    # after the event's own interrupt was acknowledged (the hardware's PPR after the event)
    masked = any(e.route == "trapped-ipi" and e.vector == ctx.nv
                 and ctx.nv >> 4 <= (ctx.ppr_before if e is ctx.event
                                     else hw.l1_apic.ppr) >> 4
                 for e in ctx.arrivals)
    return (masked and ctx.posted_interrupts
            and ctx.nv in hw.l1_apic.irr
            and (ctx.nv not in sw.l1_apic.irr
                 or (ctx.nv in ctx.irr_before and sw.pid != hw.pid)))


def _kb4(ctx: Context) -> bool:
    """Both took the notification; ON was 0 with PIR non-empty (or filled by a racing post,
    which then set ON after KVM's test); KVM left PIR as it was; the hardware moved some of it
    into L2's virtual APIC and nothing else."""
    hw, sw = ctx.hardware, ctx.software
    pir, late = ctx.pir_before, ctx.raced_after
    return (ctx.same_notification_path and not ctx.on_before and bool(pir)
            and sw.pid.pir - late == pir
            and (not sw.pid.on or bool(late) or bool(ctx.raced_during))
            and hw.pid.pir - late < pir
            and _l2_vectors(hw) - _l2_vectors(sw) <= pir - hw.pid.pir)


def _merge_vectors(ctx: Context) -> frozenset[int]:
    """What a posted-interrupt merge done on one side only decides: the PIR it harvests, and
    where RVI is inconsistent with VIRR (C9) an RVI not in VIRR, which the merge may raise
    RVI past (lost there, SDM step 6) and a skipped merge leaves to be delivered, and the VIRR
    vectors above RVI, which only a raised RVI (and the EOIs after it) reaches."""
    rvi, virr = ctx.rvi_before, ctx.virr_before
    return ctx.pir_before | ({rvi} - virr) | frozenset(v for v in virr if v > rvi)


def _kb5(ctx: Context) -> bool:
    """The hardware sent extra EOI messages, each for the notification vector, which is
    level-triggered in L1's TMR; every message KVM sent, the hardware sent too."""
    hw = Counter(ctx.hardware.l1_apic.eoi_messages)
    sw = Counter(ctx.software.l1_apic.eoi_messages)
    extra = hw - sw
    return (not sw - hw and bool(extra) and set(extra) == {ctx.nv}
            and ctx.nv in ctx.scenario.l1_apic.tmr)


def _kb6(ctx: Context) -> bool:
    """Both took the notification and merged PIR, and the SDM's new RVI,
    max(RVI, hsb(PIR)), differs from KVM's, max(RVI, hsb(VIRR after the merge)) (RVI was
    below a VIRR bit above every PIR bit, C9); the L2 vectors held or delivered are the same
    set on both sides."""
    hw, sw = ctx.hardware, ctx.software
    pir, rvi, late = ctx.pir_before, ctx.rvi_before, ctx.raced_after
    sdm_rvi = max(rvi, _hsb(pir))
    kvm_rvi = max(rvi, _hsb(ctx.virr_before | pir))
    return (ctx.same_notification_path and bool(pir) and sdm_rvi != kvm_rvi
            and not hw.pid.pir - late and not sw.pid.pir - late
            and _l2_vectors(hw) == _l2_vectors(sw))


def _kb7(ctx: Context) -> bool:
    """L2's notification vector arrived while KVM had the vCPU in L0 (``in_l0``): the
    hardware holds it pending in L1's IRR (or processed it), KVM has it nowhere (not in L1's
    IRR) and left the nested descriptor as it was, its PIR with ON = 1 (or ON = 0, where its
    later processing skips PIR, KB4), or, with nothing posted, ON = 0 and PIR empty on both
    sides: only NV itself is gone."""
    e, hw, sw = ctx.in_l0_arrival, ctx.hardware, ctx.software
    untouched = (ctx.pir_before <= sw.pid.pir and bool(ctx.pir_before)
                 and (sw.pid.on or not ctx.on_before))  # ON as it was: 1, or 0 (KB4's case)
    nothing_posted = (not ctx.pir_before and hw.pid == sw.pid
                      and (not sw.pid.on or bool(ctx.raced_after)))  # (posts after it: KB7's)
    return (e is not None and e.vector == ctx.nv
            and ctx.posted_interrupts and ctx.nv not in sw.l1_apic.irr | sw.l1_apic.isr
            and (ctx.nv in hw.l1_apic.irr or hw.pid.pir < sw.pid.pir)
            and (untouched or nothing_posted))


def _kb8(ctx: Context) -> bool:
    """L1's APIC acknowledged an interrupt while L2 ran without virtual-interrupt delivery
    (external-interrupt exiting off: the vector went through L2's IDT, EXT-1); L2's SVI,
    which the hardware left as it was, KVM set to L1's highest in-service vector (L2's VIRR
    and VISR agree; which L1 vectors are in service may differ for another finding's reason,
    D12)."""
    hw, sw = ctx.hardware, ctx.software
    svi_before = ctx.scenario.l2.svi if ctx.before is None else ctx.before.l2.svi
    return (not ctx.scenario.vmcs12.virtual_interrupt_delivery and hw.mode == sw.mode == "l2"
            and bool(sw.l1_apic.isr) and sw.l2.svi == max(sw.l1_apic.isr)
            and hw.l2.svi == svi_before != sw.l2.svi
            and hw.l2.virr == sw.l2.virr and hw.l2.visr == sw.l2.visr)


#: The routes by which an interrupt for L1 is posted into KVM's descriptor for L1 (IPIv,
#: VT-d) instead of going through ``__apic_accept_irq()`` (``docs/kernel.md``).
POSTING_ROUTES = frozenset({"ipiv", "device-post"})


def _kb9_stale(ctx: Context) -> frozenset[int]:
    """KVM's EOI messages that the hardware did not send: vectors level-triggered in L1's TMR
    at the start that were later posted to L1 (edge) by a posting route."""
    hw = Counter(ctx.hardware.l1_apic.eoi_messages)
    sw = Counter(ctx.software.l1_apic.eoi_messages)
    extra = frozenset(sw - hw)
    posted = {e.vector for e in ctx.scenario.events[:ctx.index + 1]
              if isinstance(e, InterruptEvent) and e.route in POSTING_ROUTES}
    if hw - sw or not extra or not extra <= frozenset(ctx.scenario.l1_apic.tmr) & posted:
        return frozenset()
    return extra


def _kb9(ctx: Context) -> bool:
    """KVM sent EOI messages the hardware did not, each for a vector that was level-triggered
    in L1's TMR and then posted to L1 (an edge interrupt: the hardware's acceptance cleared
    TMR, APIC-4); every message the hardware sent, KVM sent too."""
    return bool(_kb9_stale(ctx))


def _kb10(ctx: Context) -> bool:
    """At a VM entry with the notification pending, the hardware delivered the entry's RVI
    first (VID-12); RVI was not in VIRR (C9) and KVM, merging PIR first, raised RVI past it:
    that vector is nowhere on KVM's side, and it is all that differs among L2's vectors."""
    hw, sw, v = ctx.hardware, ctx.software, ctx.rvi_before
    return (ctx.same_notification_path and hw.pid == sw.pid and _entry_rvi_first(ctx)
            and v not in ctx.virr_before and v not in _l2_vectors(sw)
            and _l2_vectors(hw) - _l2_vectors(sw) == {v} and _l2_vectors(sw) <= _l2_vectors(hw))


def _nv_and_pir(ctx: Context) -> frozenset[int]:
    """NV and what the descriptor holds after the event: its PIR before (and an RVI outside
    VIRR, :func:`_merge_vectors`), with posts that raced in after the processing (a bug that
    leaves ON = 1 strands those too)."""
    return frozenset({ctx.nv}) | _merge_vectors(ctx) | ctx.raced_after


def _exit_vectors(ctx: Context) -> frozenset[int]:
    """A bug that sends KVM's vCPU to L1 where the hardware stays in L2 decides NV's fate,
    the posted vectors', and also when L1's vectors already in service are EOIed: KVM's L1
    runs (and, in the drain, EOIs them) where the hardware's L1 does not run yet."""
    return _nv_and_pir(ctx) | ctx.isr_before


KNOWN_BUGS: tuple[KnownBug, ...] = (
    KnownBug(
        "KB1", "L2's notification vector in L1's IRR becomes a nested VM exit (the seed)",
        sdm="the interrupt is acknowledged, found equal to NV and handled by posted-interrupt "
            "processing: no VM exit (SDM 29.6 steps 1-2)",
        kvm="vmx_check_nested_events() calls nested_vmx_vmexit(EXIT_REASON_EXTERNAL_INTERRUPT, "
            "INTR_INFO_VALID_MASK | INTR_TYPE_EXT_INTR | irq) for any irq, NV included",
        source="arch/x86/kvm/vmx/nested.c vmx_check_nested_events() at 8c23670f2b00",
        fields=EXIT | L1_RUNS | PID | L2_VIRTUAL_APIC, predicate=_kb1, scenario="seed-ipiv",
        lost="L1 receives a VM exit for NV that the hardware never takes; the vectors posted "
             "for L2 stay in the descriptor with ON = 1, so no later sender notifies and L2 "
             "never receives them",
        versions=frozenset({PRE}),
        introduced="reachable since d588bb9be1da (KVM: VMX: enable IPI virtualization): an "
                   "IPIv or VT-d post puts NV into L1's IRR while L2 runs, past the sender-side "
                   "and VM-Enter checks",
        fixed="6e0b456547f4 (KVM: nVMX: Detect nested posted interrupt NV at nested VM-Exit "
              "injection)",
        vectors=_exit_vectors),
    KnownBug(
        "KB2", "the notification vector acknowledged at VM-Enter is lost behind a lower "
               "L1 interrupt's VM exit",
        sdm="NV (the highest pending vector) is acknowledged first: posted-interrupt "
            "processing runs, then the lower vector exits",
        kvm="nested_vmx_run()'s VM-Enter check ('Emulate processing of posted interrupts on "
            "VM-Enter') sets pi_pending and clears IRR[NV]; vmx_check_nested_events() returns "
            "-EBUSY for the lower vector (nested_run_pending) before no_vmexit, then exits for "
            "it without completing the posted interrupt; the next VM-Enter's "
            "prepare_vmcs02_early() clears pi_pending",
        source="arch/x86/kvm/vmx/nested.c nested_vmx_run(), vmx_check_nested_events(), "
               "prepare_vmcs02_early() at 8c23670f2b00 and 6e0b456547f4",
        fields=EXIT | L1_APIC | PID | L2_VIRTUAL_APIC, predicate=_kb2,
        scenario="nv-before-lower-vector",
        lost="NV is gone from L1's IRR while the descriptor keeps ON = 1 and its PIR: every "
             "later sender sees ON = 1 and sends no notification, so L2 never receives the "
             "posted vectors (nor any posted after them) until something else notifies. The "
             "same loss follows any nested VM exit that outranks the interrupt after the "
             "VM-Enter check: an NMI L1 intercepts or an expired VMX-preemption timer (model "
             "tests test_kb2_also_behind_a_preemption_timer_or_nmi_exit; no scenario event "
             "kind for them yet)",
        versions=frozenset({PRE, POST}),
        introduced="the VM-Enter check in nested_vmx_run() (before both pinned commits)",
        fixed="3d91521e57df in torvalds/linux = ce5cdfb49813 in kvm-x86 (KVM: nVMX: Honor "
              "event priority when emulating PI delivery during VM-Enter, Nov-2024 series)",
        vectors=_nv_and_pir, signature=_kb2_signature),
    KnownBug(
        "KB3", "a trapped IPI of the notification vector ignores L1's PPR",
        sdm="the local APIC presents an interrupt to the core only if its class is above the "
            "PPR class (SDM 10.8.3.1; APIC-8, PI-16): NV masked by L1's TPR or in-service "
            "vector waits in L1's IRR and the descriptor is untouched",
        kvm="__apic_accept_irq() calls kvm_x86_ops.deliver_interrupt() with no PPR check; "
            "vmx_deliver_nested_posted_interrupt() tests only is_guest_mode() and vector == "
            "posted_intr_nv, sets pi_pending and sends POSTED_INTR_NESTED_VECTOR, whose "
            "posted-interrupt processing on vmcs02 harvests L1's descriptor for L2 at once",
        source="arch/x86/kvm/lapic.c __apic_accept_irq(); arch/x86/kvm/vmx/vmx.c "
               "vmx_deliver_nested_posted_interrupt() at 1ed0f119c5ff (unchanged at the three "
               "pinned versions)",
        fields=L1_APIC | PID | L2_VIRTUAL_APIC, predicate=_kb3, scenario="trapped-ipi-nv-masked",
        lost="L2 receives the posted vectors while L1 masks NV (L1's TPR or an in-service "
             "vector of a higher class), and NV never appears in L1's IRR; the IPIv and "
             "device-post routes of the same vector do respect L1's PPR, so KVM is "
             "inconsistent with itself",
        versions=ALL_VERSIONS,
        introduced="the nested posted-interrupt sender check (vmx_deliver_nested_posted_"
                   "interrupt, added with nested posted-interrupt support)",
        fixed="open",
        vectors=_nv_and_pir),
    KnownBug(
        "KB4", "nested posted-interrupt processing with ON = 0 skips PIR (was deviation D1)",
        sdm="steps 3-6 run whatever ON was: ON is cleared, PIR is ORed into VIRR and RVI "
            "updated (SDM 29.6)",
        kvm="vmx_complete_nested_posted_interrupt(): if (!pi_test_and_clear_on(vmx->nested."
            "pi_desc)) return 0; the PIR is neither merged nor cleared",
        source="arch/x86/kvm/vmx/nested.c vmx_complete_nested_posted_interrupt() (the three "
               "pinned versions)",
        fields=PID | L2_VIRTUAL_APIC, predicate=_kb4, scenario="nv-with-on-clear",
        lost="vectors in PIR when a notification arrives with ON = 0 (posted while SN = 1, "
             "or by an agent that sets PIR without ON) are not delivered to L2; the drain "
             "shows the hardware delivering them and KVM never doing so, until some later "
             "post turns ON from 0 to 1 and notifies",
        versions=ALL_VERSIONS, fixed="open", vectors=_merge_vectors),
    KnownBug(
        "KB5", "no EOI message for a level-triggered notification vector (was deviation D4)",
        sdm="INTA moves NV from IRR to ISR, and step 4 writes EOI to the local APIC: ISR is "
            "cleared and, NV being level-triggered in TMR, an EOI message goes to the I/O "
            "APICs",
        kvm="kvm_apic_clear_irr(vcpu, irq): IRR is cleared, ISR never set, no EOI and no EOI "
            "message (kvm_ioapic_send_eoi is never reached)",
        source="arch/x86/kvm/vmx/nested.c vmx_check_nested_events() (6e0b456547f4 and "
               "later), nested_vmx_run() VM-Enter check",
        fields=frozenset({"l1_apic.eoi_messages"}), predicate=_kb5, scenario="nv-level-triggered",
        lost="the I/O APIC never sees the EOI, so the level-triggered pin keeps Remote IRR "
             "set and never interrupts again",
        versions=ALL_VERSIONS, fixed="open", vectors=lambda ctx: frozenset({ctx.nv})),
    KnownBug(
        "KB6", "the new RVI after a nested posted-interrupt merge (was deviation D3)",
        sdm="RVI := max(RVI, hsb(PIR)) (step 6): a VIRR bit above RVI that L1 left there stays "
            "unreflected",
        kvm="max_irr = hsb(VIRR after the merge) (__kvm_apic_update_irr); "
            "if ((u8)max_irr > (u8)RVI) RVI = max_irr",
        source="arch/x86/kvm/lapic.c __kvm_apic_update_irr(), "
               "arch/x86/kvm/vmx/nested.c vmx_complete_nested_posted_interrupt() (the three "
               "pinned versions)",
        fields=L2_VIRTUAL_APIC, predicate=_kb6, scenario="rvi-below-virr",
        lost="no interrupt is lost, but L2's RVI is wrong when L1 left RVI below a VIRR bit "
             "(C9): L1 reads the other RVI in vmcs12 at the next VM exit, and once L2's VTPR "
             "drops, L2 receives the vectors in another order (KVM the highest VIRR bit "
             "first, the CPU RVI first); the drain shows the RVI left at rest",
        versions=ALL_VERSIONS, fixed="open",
        vectors=lambda ctx: ctx.pir_before | ctx.virr_before | {ctx.rvi_before}),

    KnownBug(
        "KB7", "the notification vector is lost when it arrives while the vCPU is in L0",
        sdm="NV arrives at L1's local APIC like any interrupt: it is acknowledged and processed "
            "(above the pending vectors) or waits in L1's IRR until L1's next VM entry",
        kvm="vmx_deliver_nested_posted_interrupt() sees is_guest_mode() and vector == "
            "posted_intr_nv, sets pi_pending and, the vCPU not being IN_GUEST_MODE, only wakes "
            "it (kvm_vcpu_trigger_posted_interrupt); vmx_check_nested_events() then finds "
            "another vector (synced from KVM's PIR for L1) and exits to L1 before no_vmexit; "
            "prepare_vmcs02_early() clears pi_pending at the next VM-Enter",
        source="arch/x86/kvm/vmx/vmx.c vmx_deliver_nested_posted_interrupt(), "
               "kvm_vcpu_trigger_posted_interrupt(); arch/x86/kvm/vmx/nested.c "
               "vmx_check_nested_events(), prepare_vmcs02_early() (the three pinned versions); "
               "discussed on kvm@ in Nov 2020 (Message-ID "
               "20201125183236.GB400789@google.com: 'set PINV in L1 vIRR' when the target is "
               "not in guest mode), not applied",
        fields=EXIT | L1_RUNS | PID | L2_VIRTUAL_APIC, predicate=_kb7,
        scenario="nv-while-in-l0",
        lost="NV never reaches L1's IRR and the nested descriptor keeps ON = 1 with its PIR: "
             "no later sender notifies, so L2 never receives the posted vectors",
        versions=ALL_VERSIONS, fixed="open", vectors=_exit_vectors),
    KnownBug(
        "KB8", "L1's SVI update goes to vmcs02 while L2 runs without virtual-interrupt "
               "delivery",
        sdm="an L1 interrupt delivered through L2's IDT (external-interrupt exiting = 0, "
            "EXT-1) sets L1's ISR and leaves L2's guest interrupt status alone; L1's own SVI "
            "(vmcs01, APICv for L1) tracks L1's ISR",
        kvm="apic_set_isr() -> vmx_hwapic_isr_update() writes SVI into the loaded VMCS, which "
            "is vmcs02 while L2 runs: vmcs02's guest interrupt status gets L1's in-service "
            "vector and vmcs01's SVI is left stale",
        source="arch/x86/kvm/vmx/vmx.c vmx_hwapic_isr_update(), arch/x86/kvm/lapic.c "
               "apic_set_isr() at 8c23670f2b00 and 6e0b456547f4",
        fields=frozenset({"l2.svi"}), predicate=_kb8, scenario="l1-svi-in-vmcs02",
        lost="no vector is lost in the record, but the guest interrupt status is wrong on "
             "both VMCSs: vmcs02's SVI (the outcome's l2.svi) holds L1's vector, and vmcs01's "
             "SVI misses it, so after the next nested VM exit L1's EOI virtualization works "
             "from a stale SVI. Found by the exhaustive sweep (pi-cosim sweep, part "
             "'controls')",
        versions=frozenset({PRE, POST}),
        introduced="vmx_hwapic_isr_update() writing the current VMCS (before both pinned "
                   "commits)",
        fixed="04bc93cf49d1 (KVM: nVMX: Defer SVI update to vmcs01 on EOI when L2 is active "
              "w/o VID), in the nov-2024 model",
        vectors=lambda ctx: ctx.isr_before | ctx.software.l1_apic.isr),
    KnownBug(
        "KB9", "an interrupt posted to L1 leaves L1's TMR bit as it was",
        sdm="accepting an edge-triggered interrupt clears its TMR bit (SDM 10.8.4, APIC-4), "
            "so the EOI of a vector last accepted edge-triggered sends no EOI message "
            "(APIC-12)",
        kvm="TMR is updated only in __apic_accept_irq(); an interrupt posted into KVM's "
            "descriptor for L1 by IPI virtualization or VT-d reaches IRR through "
            "vmx_sync_pir_to_irr() / kvm_apic_update_irr(), which leave TMR alone: a vector "
            "level-triggered before stays level, and apic_set_eoi() -> kvm_ioapic_send_eoi() "
            "sends a level EOI for it",
        source="arch/x86/kvm/lapic.c __apic_accept_irq(), kvm_apic_update_irr(), "
               "kvm_ioapic_send_eoi(); arch/x86/kvm/vmx/vmx.c vmx_sync_pir_to_irr() (the three "
               "pinned versions)",
        fields=frozenset({"l1_apic.eoi_messages"}), predicate=_kb9,
        scenario="posted-edge-keeps-tmr",
        lost="L1 reads TMR = 1 for an edge interrupt, and its EOI sends the I/O APICs a "
             "level EOI that no level interrupt asked for: Remote IRR of a pin with that "
             "vector is cleared early (an interrupt still asserted is delivered again), and an "
             "EOI message a level interrupt in service was owed is sent where the hardware "
             "sends none. Found by the random regression (pi-cosim regress)",
        versions=ALL_VERSIONS, introduced="posted interrupts for L1 (VT-d, then IPIv) "
                                          "bypassing __apic_accept_irq()",
        fixed="open", vectors=_kb9_stale),
    KnownBug(
        "KB10", "the notification pending at VM entry is processed before L2's recognized "
                "virtual interrupt: an RVI outside VIRR is lost",
        sdm="VM entry loads RVI and evaluates it; virtual-interrupt delivery has priority over "
            "the pending external interrupt (VID-12), so RVI's vector is delivered, then the "
            "notification is processed (RVI := max(RVI, hsb(PIR)) only after the delivery)",
        kvm="the VM-Enter check (nested_vmx_run(), pre-patch and post-patch) or "
            "vmx_check_nested_events() (nov-2024) completes the nested posted interrupt "
            "before the CPU enters vmcs02: RVI is raised to hsb(VIRR) first, and an RVI that "
            "L1 left outside VIRR (C9) is overwritten",
        source="arch/x86/kvm/vmx/nested.c nested_vmx_run(), vmx_check_nested_events(), "
               "vmx_complete_nested_posted_interrupt() (the three pinned versions)",
        fields=L2_VIRTUAL_APIC, predicate=_kb10, scenario="rvi-outside-virr-at-entry",
        lost="L2 never receives the vector L1 requested through RVI alone (not in VIRR, C9) "
             "when L1 enters L2 with the notification pending; with RVI in VIRR the same "
             "order is deviation D10 (delivered later). Found by the random regression "
             "(pi-cosim regress)",
        versions=ALL_VERSIONS, fixed="open", vectors=lambda ctx: frozenset({ctx.rvi_before})),
    KnownBug(
        "KB11", "a pending virtual interrupt recognized at KVM's re-entry to L2 with no "
                "architectural cause",
        sdm="after a virtual interrupt's delivery recognition ceases until VM entry, TPR, EOI "
            "or self-IPI virtualization or posted-interrupt processing evaluates again (SDM "
            "29.2.1, VID-4)",
        kvm="KVM's re-entry to vmcs02 after an exit to L0 is a VM entry and evaluates "
            "(VID-11): L2 receives the waiting RVI at once",
        source="arch/x86/kvm/vmx/vmx.c vmx_vcpu_run() re-entering vmcs02 (any version)",
        fields=L2_VIRTUAL_APIC, predicate=_kb11, scenario="l2-virtual-recognized-at-reentry-no-pi",
        lost="no vector is lost, but L2 receives an interrupt nested in its handler where the "
             "CPU makes it wait for L2's EOI, with no event that could explain it (posted "
             "interrupts off, or NV masked by L1's PPR: no duplicate notification, D11). Only "
             "after L1 left RVI below VIRR's top (C9). Inherent in running L2 on vmcs02 with "
             "virtual-interrupt delivery: every VM entry evaluates. Found by the random "
             "regression (pi-cosim regress)",
        versions=ALL_VERSIONS, fixed="open", vectors=_reevaluated),
)

FINDINGS: tuple[Finding, ...] = (*KNOWN_BUGS, *DEVIATIONS)


def by_id(finding_id: str) -> Finding:
    """The deviation or known bug named ``finding_id``."""
    for finding in FINDINGS:
        if finding.id == finding_id:
            return finding
    raise KeyError(finding_id)


def is_known_bug(finding_id: str) -> bool:
    return isinstance(by_id(finding_id), KnownBug)


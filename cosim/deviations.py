"""Known, justified differences between the SDM (the hardware model) and KVM's nested logic.

Each :class:`Deviation` has an ID (D1-D4 and D6 are ``spec/sdm.md`` section 8; D10 was found
by this cosimulation, scenario ``l2-virtual-before-l1-exit``), the kernel source that
causes it, the outcome fields it may change and a precise predicate over the state before the
event and the two outcomes after it. The scoreboard (``cosim.scoreboard``) reports a difference
as a deviation only when a deviation claims the field *and* its predicate holds; every other
difference is a divergence. Nothing is ignored: a deviation is reported by ID in the verdict.

Fields are the dotted outcome fields of ``cosim.outcome.FIELDS``.
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from .outcome import Outcome
from .scenario import Event, PostEvent, Scenario

__all__ = ["DEVIATIONS", "Context", "Deviation", "by_id"]

L2_VIRTUAL_APIC = frozenset({"l2.virr", "l2.visr", "l2.rvi", "l2.svi", "l2.vppr",
                             "l2.delivered"})


def _hsb(vectors) -> int:
    return max(vectors, default=-1)


@dataclass(frozen=True)
class Context:
    """What a predicate sees: the scenario, the event, the agreed state before it (the
    software outcome of the previous event; ``None`` before the first event, where the
    scenario's initial state applies) and both outcomes after it."""

    scenario: Scenario
    event: Event
    before: Outcome | None
    hardware: Outcome
    software: Outcome

    @property
    def pir_before(self) -> frozenset[int]:
        """The descriptor's PIR before the event, with the event's own post, if any."""
        pir = self.scenario.pid.pir if self.before is None else self.before.pid.pir
        if isinstance(self.event, PostEvent):
            pir = pir | {self.event.vector}
        return frozenset(pir)

    @property
    def on_before(self) -> bool:
        if isinstance(self.event, PostEvent):
            return True
        return self.scenario.pid.on if self.before is None else self.before.pid.on

    @property
    def virr_before(self) -> frozenset[int]:
        return frozenset(self.scenario.l2.virr if self.before is None else self.before.l2.virr)

    @property
    def rvi_before(self) -> int:
        return self.scenario.l2.rvi if self.before is None else self.before.l2.rvi

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


def _l2_vectors(outcome: Outcome) -> frozenset[int]:
    """Every L2 vector the virtual APIC holds or delivered."""
    return frozenset(outcome.l2.virr | outcome.l2.visr | set(outcome.l2.delivered))


@dataclass(frozen=True)
class Deviation:
    """A known difference: ``id``, what the SDM and KVM do, the kernel reference, the outcome
    fields it may change, and the predicate that must hold for it to explain them."""

    id: str
    title: str
    sdm: str
    kvm: str
    source: str
    fields: frozenset[str]
    predicate: Callable[[Context], bool]

    def explains(self, ctx: Context, differing: set[str]) -> set[str]:
        """The differing fields this deviation explains (empty unless the predicate holds)."""
        claimed = differing & self.fields
        return claimed if claimed and self.predicate(ctx) else set()


def _d1(ctx: Context) -> bool:
    """Both took the notification; ON was 0 with PIR non-empty; KVM left PIR as it was; the
    hardware moved some of it into L2's virtual APIC and nothing else."""
    hw, sw = ctx.hardware, ctx.software
    pir = ctx.pir_before
    return (ctx.same_notification_path and not ctx.on_before and bool(pir)
            and sw.pid.pir == pir and not sw.pid.on and hw.pid.pir < pir
            and _l2_vectors(hw) - _l2_vectors(sw) <= pir - hw.pid.pir)


def _d2(ctx: Context) -> bool:
    """Both took the notification; PIR held only bit 0; KVM neither merged nor cleared it;
    the hardware moved bit 0 into VIRR."""
    hw, sw = ctx.hardware, ctx.software
    return (ctx.same_notification_path and ctx.pir_before == {0} and sw.pid.pir == {0}
            and not hw.pid.pir and hw.l2.virr == sw.l2.virr | {0})


def _d3(ctx: Context) -> bool:
    """Both took the notification and merged PIR, and the SDM's new RVI,
    max(RVI, hsb(PIR)), differs from KVM's, max(RVI, hsb(VIRR after the merge)) (RVI was
    below a VIRR bit above every PIR bit, C9); the L2 vectors held or delivered are the same
    set on both sides."""
    hw, sw = ctx.hardware, ctx.software
    pir, rvi = ctx.pir_before, ctx.rvi_before
    sdm_rvi = max(rvi, _hsb(pir))
    kvm_rvi = max(rvi, _hsb(ctx.virr_before | pir))
    return (ctx.same_notification_path and bool(pir) and sdm_rvi != kvm_rvi
            and not hw.pid.pir and not sw.pid.pir and _l2_vectors(hw) == _l2_vectors(sw))


def _d4(ctx: Context) -> bool:
    """The hardware sent extra EOI messages, each for the notification vector, which is
    level-triggered in L1's TMR; every message KVM sent, the hardware sent too."""
    hw = Counter(ctx.hardware.l1_apic.eoi_messages)
    sw = Counter(ctx.software.l1_apic.eoi_messages)
    extra = hw - sw
    return (not sw - hw and bool(extra) and set(extra) == {ctx.nv}
            and ctx.nv in ctx.scenario.l1_apic.tmr)


def _d6(ctx: Context) -> bool:
    """Both took the same VM exit to L1; KVM left the nested descriptor untouched (ON = 1,
    PIR as before: pi_pending not completed before the exit); the hardware harvested PIR
    and its extra L2 vectors all came from it."""
    hw, sw = ctx.hardware, ctx.software
    pir = ctx.pir_before
    return (ctx.same_notification_path and sw.vmexit is not None and bool(pir)
            and sw.pid.on and sw.pid.pir == pir and hw.pid.pir < pir
            and _l2_vectors(hw) - _l2_vectors(sw) <= pir - hw.pid.pir)


def _d10(ctx: Context) -> bool:
    """Both took the same VM exit to L1 and left the same descriptor; on KVM's side L2 still
    has a recognized virtual interrupt (RVI's class above VPPR's) which the hardware
    delivered before the exit: its L2 state is KVM's with exactly that delivery done."""
    hw, sw = ctx.hardware, ctx.software
    v = sw.l2.rvi
    return (ctx.same_notification_path and sw.vmexit is not None and hw.pid == sw.pid
            and v >> 4 > sw.l2.vppr >> 4 and v in sw.l2.virr
            and hw.l2.delivered == (*sw.l2.delivered, v)
            and hw.l2.visr == sw.l2.visr | {v} and hw.l2.virr == sw.l2.virr - {v}
            and hw.l2.svi == v)


DEVIATIONS: tuple[Deviation, ...] = (
    Deviation(
        "D1", "nested posted-interrupt processing with ON = 0",
        sdm="steps 5-7 run whatever ON was: PIR is still merged into VIRR and RVI updated",
        kvm="if (!pi_test_and_clear_on(vmx->nested.pi_desc)) return 0; PIR stays, no merge",
        source="arch/x86/kvm/vmx/nested.c vmx_complete_nested_posted_interrupt()",
        fields=frozenset({"pid.pir"}) | L2_VIRTUAL_APIC, predicate=_d1),
    Deviation(
        "D2", "PIR holding only bit 0",
        sdm="PIR is ORed into VIRR and cleared; RVI := max(RVI, 0)",
        kvm="max_irr = pi_find_highest_vector(); if (max_irr > 0) { merge }: PIR = {0} is "
            "neither merged nor cleared",
        source="arch/x86/kvm/vmx/nested.c vmx_complete_nested_posted_interrupt(), "
               "commit d83c36d822be44db4bad0c43bea99c8908f54117",
        fields=frozenset({"pid.pir", "l2.virr"}), predicate=_d2),
    Deviation(
        "D3", "the new RVI after the merge",
        sdm="RVI := max(RVI, hsb(PIR)) (step 6)",
        kvm="max_irr = hsb(VIRR after the merge) (__kvm_apic_update_irr); "
            "if ((u8)max_irr > (u8)RVI) RVI = max_irr",
        source="arch/x86/kvm/lapic.c __kvm_apic_update_irr(), "
               "arch/x86/kvm/vmx/nested.c vmx_complete_nested_posted_interrupt()",
        fields=L2_VIRTUAL_APIC, predicate=_d3),
    Deviation(
        "D4", "acknowledging the notification vector without INTA and EOI",
        sdm="INTA (IRR -> ISR), then the step-4 EOI: ISR bit cleared, and an EOI message to "
            "the I/O APICs if the vector is level-triggered (TMR)",
        kvm="kvm_apic_clear_irr(vcpu, irq): same IRR and ISR, no EOI message",
        source="arch/x86/kvm/vmx/nested.c vmx_check_nested_events() (6e0b456547f4 and "
               "before)",
        fields=frozenset({"l1_apic.eoi_messages"}), predicate=_d4),
    Deviation(
        "D6", "nested posted-interrupt processing deferred past a VM exit to L1",
        sdm="posted-interrupt processing runs when the notification is acknowledged, before "
            "any later VM exit",
        kvm="the notification only sets vmx->nested.pi_pending; vmx_complete_nested_posted_"
            "interrupt() runs at the end of vmx_check_nested_events() (no_vmexit), so an L1 "
            "interrupt's VM exit taken first leaves ON = 1 and PIR in the descriptor",
        source="arch/x86/kvm/vmx/nested.c vmx_check_nested_events(), "
               "vmx_complete_nested_posted_interrupt()",
        fields=frozenset({"pid.pir", "pid.on"}) | L2_VIRTUAL_APIC, predicate=_d6),
    Deviation(
        "D10", "an L1 interrupt's VM exit taken before a recognized L2 virtual interrupt",
        sdm="virtual-interrupt delivery has priority over external-interrupt VM exits "
            "(VID-12, SDM 29.2.2): the recognized virtual interrupt is delivered first",
        kvm="vmx_check_nested_events() synthesizes the external-interrupt VM exit for L1 "
            "before vmcs02 is re-entered, where the CPU would deliver L2's virtual interrupt; "
            "the interrupt stays in VIRR/RVI",
        source="arch/x86/kvm/vmx/nested.c vmx_check_nested_events()",
        fields=L2_VIRTUAL_APIC, predicate=_d10),
)


def by_id(deviation_id: str) -> Deviation:
    """The deviation named ``deviation_id``."""
    for deviation in DEVIATIONS:
        if deviation.id == deviation_id:
            return deviation
    raise KeyError(deviation_id)

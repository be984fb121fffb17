"""Formal properties of :class:`rtl.lapic.LocalApic`: the priority rules of the clause
catalogue (``docs/clauses.toml``, APIC-*), as Amaranth ``Assert``/``Cover`` statements.

Kept beside the component and outside the synthesizable design: :class:`LocalApicProperties`
instantiates the APIC, leaves every input free (a port of the proof's top level; ``load`` and
``preload`` make every register state reachable) and checks it against a reference written
independently of the RTL (a priority loop over the 256 bits instead of the RTL's tree). Each
property's name carries its clause ID; every implication has a cover that shows its
antecedent is reachable, so no proof passes vacuously. Each statement's message is its
name; the proof runner maps a failing statement back to it through its source line.
``cosim.hardware.formal`` runs them with SymbiYosys in prove mode (k-induction).

Never enable postponed evaluation of annotations (PEP 563) here.
"""

from amaranth.hdl import Assert, Const, Cover, Elaboratable, Module, Mux, Signal

from .lapic import LocalApic
from .properties import free_inputs

__all__ = ["LocalApicProperties"]


def _reference_hsb(m: Module, bits, name: str):
    """(any, index): whether ``bits`` has a set bit and the highest one, by a priority loop
    (the last matching assignment wins), not the RTL's tree."""
    index = Signal(8, name=f"{name}_ref_hsb")
    for v in range(256):
        with m.If(bits[v]):
            m.d.comb += index.eq(v)
    return bits != 0, index


class LocalApicProperties(Elaboratable):
    """The proof's top level: a :class:`LocalApic` with free inputs, and its properties.

    ``ports`` are the free inputs (the formal tools treat undriven top-level inputs as
    arbitrary in every cycle)."""

    def __init__(self, mutant: str | None = None):
        self.apic = LocalApic()
        #: for the tests that the proofs can fail: "inta_lowest" reads the INTA vector from the
        #: low IRR bits (a broken design), "vacuous" adds a cover no state reaches
        self.mutant = mutant

    @property
    def ports(self):
        return free_inputs(self.apic)

    def elaborate(self, platform):
        m = Module()
        m.submodules.apic = a = self.apic

        irr_any, irr_hsb = _reference_hsb(m, a.irr, "irr")
        isr_any, isr_hsb = _reference_hsb(m, a.isr, "isr")
        isrv = Mux(isr_any, isr_hsb, 0)
        ppr = Signal(8)
        m.d.comb += ppr.eq(Mux(a.tpr[4:8] >= isrv[4:8], a.tpr, isrv & 0xF0))
        deliverable = Signal()
        m.d.comb += deliverable.eq(irr_any & (irr_hsb[4:8] > ppr[4:8]))
        inta_vector = a.inta.vector if self.mutant != "inta_lowest" else a.irr[0:8]

        # --- combinational rules, in every state ---------------------------------------------
        m.d.comb += [
            Assert(a.ppr == ppr, "APIC_7_ppr"),
            Assert(a.intr == deliverable, "APIC_8_intr"),
            Assert(inta_vector == Mux(deliverable, irr_hsb, a.spurious_vector),
                   "APIC_9_10_inta_vector"),
        ]

        # the highest pending vector wins: stated as "no IRR bit above it" (APIC-6), and the
        # masks of the two extreme TPR classes with an empty ISR (APIC-13)
        above = (a.irr >> a.inta.vector) >> 1
        m.d.comb += [
            Assert(~a.intr | (a.irr.bit_select(a.inta.vector, 1) & (above == 0)),
                   "APIC_6_the_highest_pending_vector_is_offered"),
            Assert(~((a.isr == 0) & (a.tpr[4:8] == 0)) | (a.intr == ((a.irr >> 16) != 0)),
                   "APIC_13_tpr_class_0_masks_nothing_from_16"),
            Assert(~((a.isr == 0) & (a.tpr[4:8] == 15)) | ~a.intr,
                   "APIC_13_tpr_class_15_masks_everything"),
        ]

        # --- one-step rules: the operation alone in a cycle, checked at the next --------------
        quiet = ~a.load & ~a.accept.valid & ~a.tpr_write.valid
        past_valid = Signal()  # a cycle has been recorded (false in the initial state)
        op = Signal(3)  # 1 INTA deliverable, 2 INTA spurious, 3 EOI, 4 illegal accept
        irr0, isr0, tmr0 = Signal(256), Signal(256), Signal(256)
        vector0 = Signal(8)
        tmr_hit0 = Signal()
        level0 = Signal()
        pending0 = Signal()  # the accepted vector was already pending
        m.d.sync += [past_valid.eq(1), irr0.eq(a.irr), isr0.eq(a.isr), tmr0.eq(a.tmr),
                     op.eq(0)]
        with m.If(quiet & a.inta.valid & ~a.eoi):
            m.d.sync += [op.eq(Mux(deliverable, 1, 2)), vector0.eq(irr_hsb)]
        with m.Elif(quiet & a.eoi & ~a.inta.valid):
            m.d.sync += [op.eq(3), vector0.eq(isr_hsb),
                         tmr_hit0.eq(isr_any & a.tmr.bit_select(isr_hsb, 1))]
        with m.Elif(~a.load & a.accept.valid & (a.accept.vector < 16) & ~a.inta.valid
                    & ~a.eoi & ~a.tpr_write.valid):
            m.d.sync += op.eq(4)
        with m.Elif(~a.load & a.accept.valid & ~a.inta.valid & ~a.eoi & ~a.tpr_write.valid):
            m.d.sync += [op.eq(5), vector0.eq(a.accept.vector), level0.eq(a.accept.level),
                         pending0.eq(a.irr.bit_select(a.accept.vector, 1))]
        one = Const(1, 256)
        with m.If(past_valid):
            with m.If(op == 1):
                m.d.comb += [
                    Assert(a.irr == (irr0 & ~(one << vector0)), "APIC_9_inta_clears_irr"),
                    Assert(a.isr == (isr0 | (one << vector0)), "APIC_9_inta_sets_isr"),
                    Assert(a.tmr == tmr0, "APIC_9_inta_keeps_tmr"),
                ]
            with m.If(op == 2):
                m.d.comb += Assert((a.irr == irr0) & (a.isr == isr0),
                                   "APIC_10_spurious_changes_nothing")
            with m.If(op == 3):
                m.d.comb += [
                    Assert(a.isr == Mux(isr0 != 0, isr0 & ~(one << vector0), isr0),
                           "APIC_11_eoi_clears_highest_isr"),
                    Assert(a.irr == irr0, "APIC_11_eoi_keeps_irr"),
                    Assert(a.eoi_message.valid == tmr_hit0, "APIC_12_eoi_message_iff_level"),
                ]
                with m.If(a.eoi_message.valid):
                    m.d.comb += Assert(a.eoi_message.vector == vector0,
                                       "APIC_12_eoi_message_vector")
            with m.If(op == 1):
                m.d.comb += Assert(a.isr.bit_select(vector0, 1)
                                   & (((a.isr >> vector0) >> 1) == 0),
                                   "APIC_14_the_acknowledged_vector_is_the_highest_in_service")
            with m.If((op == 5) & ~pending0):
                bit = one << vector0
                m.d.comb += [
                    Assert((a.irr == (irr0 | bit)) & (a.isr == isr0),
                           "APIC_1_3_4_accept_sets_irr_bit_v"),
                    Assert(a.tmr == Mux(level0, tmr0 | bit, tmr0 & ~bit),
                           "APIC_4_tmr_bit_v_is_the_trigger_mode"),
                ]
            with m.If((op == 5) & pending0):
                m.d.comb += Assert((a.irr == irr0) & (a.isr == isr0),
                                   "APIC_5_a_pending_vector_accepted_again_collapses")
            with m.If(op == 4):
                m.d.comb += [
                    Assert((a.irr == irr0) & (a.isr == isr0) & (a.tmr == tmr0),
                           "APIC_2_illegal_vector_changes_nothing"),
                    Assert(a.esr[6], "APIC_2_illegal_vector_sets_esr"),
                ]

        # --- covers: every antecedent above is reachable ---------------------------------------
        m.d.comb += [
            Cover(past_valid & (op == 1), "cover_APIC_9_deliverable_inta"),
            Cover(past_valid & (op == 2), "cover_APIC_10_spurious_inta"),
            Cover(past_valid & (op == 3) & a.eoi_message.valid, "cover_APIC_12_level_eoi_message"),
            Cover(past_valid & (op == 3) & (isr0 != 0) & ~a.eoi_message.valid,
                  "cover_APIC_11_edge_eoi"),
            Cover(past_valid & (op == 4), "cover_APIC_2_illegal_vector"),
            Cover(past_valid & (op == 5) & ~pending0 & (vector0 < 32) & level0,
                  "cover_APIC_3_4_vector_16_31_level_accepted"),
            Cover(past_valid & (op == 5) & pending0, "cover_APIC_5_collapsed_request"),
            Cover(past_valid & (op == 1) & (vector0 < 32) & (isr0 != 0),
                  "cover_APIC_3_14_vector_16_31_acknowledged_over_another"),
            Cover(a.intr & (a.isr == 0) & (a.tpr[4:8] == 0) & (a.irr[16:32] != 0)
                  & (a.irr[32:] == 0), "cover_APIC_13_class_0_offers_16_31"),
            Cover(a.intr & (a.tpr[4:8] == 14), "cover_APIC_8_deliverable_above_tpr"),
        ]
        if self.mutant == "vacuous":  # a cover no state reaches: the runner must say so
            m.d.comb += Cover(a.intr & ~a.intr, "cover_unreachable")
        return m

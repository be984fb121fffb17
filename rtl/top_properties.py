"""Formal properties of :class:`rtl.top.InterruptPath`: the decision the product exists for.

In non-root operation with external-interrupt exiting, acknowledge-on-exit and process posted
interrupts set, the interrupt the local APIC acknowledges starts posted-interrupt processing if
and only if its vector equals NV[7:0] (PI-2, PI-3, PI-5); otherwise a VM exit with basic
reason 1 and interruption information 0x80000000 | vector follows, and the descriptor's
processing does not start (PI-4, EXT-3). Posted-interrupt processing never starts otherwise;
while it runs, VIRR and RVI change only through the unit's merge port (PI-5, PI-11).

Around it, the rest of the external-interrupt controls and the VM-entry checks: without
external-interrupt exiting no VM exit, the interrupt delivered through the guest IDT when the
guest can take it (EXT-1); with it and without posted interrupts a VM exit with reason 1
whatever RFLAGS.IF (EXT-2); without acknowledge-on-exit no INTA and invalid interruption
information (EXT-4); VM entry fails, with error 7, exactly when the controls break SDM
26.2.1.1's checks, and otherwise runs the guest (EXT-5, EXT-6).

Kept beside the component and outside the synthesizable design: every input of the top level
is free (``load``/``preload`` make every APIC state reachable, the memory port's answers are
arbitrary). Each statement's message is its name, with the clause IDs in it; each implication
has a cover. ``cosim.hardware.formal`` runs it with SymbiYosys in prove mode (k-induction).

Never enable postponed evaluation of annotations (PEP 563) here.
"""

from amaranth.hdl import Assert, Assume, Cover, Elaboratable, Module, Signal, Value

from .layouts import ExitReason, InterruptionType
from .posted_interrupt import PiState
from .properties import free_inputs
from .top import InterruptPath, PathState

__all__ = ["InterruptPathProperties"]


class InterruptPathProperties(Elaboratable):
    """The proof's top level: an :class:`InterruptPath` with free inputs, and the NV decision
    properties. ``mutant`` "vector_without_ack" observes a broken reading (the lowest IRR byte
    taken for the acknowledged vector), for the test that the proof can fail; ``design`` is the
    class under proof (a design mutant from ``cosim.hardware.mutants`` in the tests)."""

    def __init__(self, mutant: str | None = None, design=InterruptPath):
        self.dut = design()
        self.mutant = mutant

    @property
    def ports(self):
        return free_inputs(self.dut)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        lapic, pi = dut.lapic, dut.pi

        controls = (dut.pin_based.ext_intr_exiting & dut.pin_based.posted_intr
                    & dut.exit_controls.ack_intr_on_exit)
        acked = Signal()  # the local APIC is acknowledged in non-root operation (step 1)
        m.d.comb += acked.eq((dut.state == PathState.NON_ROOT) & ~dut.load & lapic.inta.valid)
        vector = lapic.inta.vector if self.mutant != "vector_without_ack" else lapic.irr[0:8]

        # the preload (a test bench's initial state) happens only while no processing runs, as
        # the testbench does it; and the invariant that closes the induction: the unit is busy
        # only while the path is in its POSTED state
        m.d.comb += [
            Assume(~dut.load | ~pi.busy, "preload_only_while_idle"),
            Assert(~pi.busy | (dut.state == PathState.POSTED), "helper_busy_only_while_posted"),
        ]

        # --- PI processing starts only at an acknowledge of NV (no other way in) -------------
        m.d.comb += Assert(~pi.start | (acked & dut.pin_based.posted_intr
                                        & (vector == dut.posted_intr_nv[0:8])),
                           "PI_2_3_5_processing_starts_only_for_an_acked_nv")

        running = (dut.state == PathState.NON_ROOT) & ~dut.load  # the guest runs
        # --- a notification vector masked by PPR is not acknowledged: no processing, no exit --
        m.d.comb += [
            Assert(~acked | (lapic.inta.vector[4:8] > lapic.ppr[4:8]),
                   "PI_16_only_a_vector_above_ppr_is_acknowledged"),
            Assert(~pi.start | (dut.posted_intr_nv[4:8] > lapic.ppr[4:8]),
                   "PI_16_processing_starts_only_for_an_nv_above_ppr"),
            Cover(running & lapic.irr.bit_select(dut.posted_intr_nv[0:8], 1) & ~lapic.intr
                  & (dut.posted_intr_nv[4:8] != 0), "cover_PI_16_nv_pending_but_masked"),
        ]

        # --- the decision, checked at the next edge -------------------------------------------
        past_valid = Signal()
        decided = Signal()
        matched = Signal()
        vector0 = Signal(8)
        m.d.sync += [past_valid.eq(1), decided.eq(acked & controls),
                     matched.eq(vector == dut.posted_intr_nv[0:8]), vector0.eq(vector)]
        info = Signal.like(dut.exit_intr_info)
        m.d.comb += [info.vector.eq(vector0),
                     info.type.eq(InterruptionType.EXTERNAL_INTERRUPT), info.valid.eq(1)]
        with m.If(past_valid & decided):
            with m.If(matched):
                m.d.comb += [
                    Assert(dut.state == PathState.POSTED, "PI_5_nv_starts_processing"),
                    Assert(~dut.vmexit, "PI_5_nv_causes_no_vm_exit"),
                ]
            with m.Else():
                m.d.comb += [
                    Assert(dut.vmexit & (dut.exit_reason == ExitReason.EXTERNAL_INTERRUPT),
                           "PI_4_EXT_3_other_vector_exits_with_reason_1"),
                    Assert(dut.exit_intr_info.as_value() == info.as_value(),
                           "PI_4_EXT_3_exit_information_is_80000000_or_vector"),
                    Assert(dut.state == PathState.ROOT, "PI_4_other_vector_leaves_non_root"),
                    Assert(~pi.busy, "PI_4_other_vector_starts_no_processing"),
                ]

        # --- steps 5-6 at the top level: while the unit runs steps 3-6, VIRR and RVI change
        # only through its merge port, which is used at no other time (step 7's evaluation may
        # deliver a virtual interrupt once the unit is done: not part of the processing) -----
        vapic = dut.vapic
        # posted-interrupt processing is part of the acceptance of one interrupt (SDM 29.6):
        # while it runs no guest instruction executes (no EOI, no TPR write, no VM entry, no
        # change of RFLAGS.IF or blocking) and the VMCS does not change; interrupts may still
        # arrive at the local APIC and the memory answers as it likes
        for strobe in (dut.eoi, dut.tpr_write.valid, dut.l2_eoi, dut.l2_tpr_write.valid,
                       dut.vm_entry):
            m.d.comb += Assume(~pi.busy | ~strobe, "no_instruction_during_processing")
        for i, field in enumerate((dut.pin_based, dut.proc_based, dut.secondary, dut.exit_controls,
                      dut.posted_intr_nv, dut.posted_intr_desc_addr, dut.maxphyaddr,
                      dut.rflags_if, dut.blocking, dut.spurious_vector)):
            value = Value.cast(field)
            held = Signal(len(value), name=f"held_{i}")
            m.d.sync += held.eq(value)
            m.d.comb += Assume(~pi.busy | (value == held),
                               "no_vmcs_or_flag_change_during_processing")
        merging = Signal()  # at the last edge the unit merged
        quiet = Signal()  # at the last edge the unit ran and merged nothing
        virr0 = Signal.like(vapic.virr)
        rvi0 = Signal(8)
        m.d.sync += [quiet.eq(pi.busy & ~pi.merge.valid & ~dut.load),
                     merging.eq(pi.merge.valid), virr0.eq(vapic.virr),
                     rvi0.eq(vapic.status.rvi)]
        m.d.comb += [
            Assert(pi.state.as_value() <= PiState.RVI.value, "helper_the_unit_is_in_a_state"),
            Assert(~(past_valid & quiet) | ((vapic.virr == virr0) & (vapic.status.rvi == rvi0)),
                   "PI_5_11_virr_and_rvi_change_during_processing_only_by_a_merge"),
            Assert(~pi.merge.valid | (dut.state == PathState.POSTED),
                   "PI_5_11_the_merge_port_is_used_only_during_processing"),
            Cover(past_valid & merging & (vapic.virr != virr0),
                  "cover_PI_5_a_merge_changes_virr"),
        ]

        # --- external interrupts without posted interrupts, and the VM-entry checks --------
        # (each checked at the edge after its decision; an interrupt is offered when the guest
        # runs, the local APIC has one and no virtual interrupt goes first, VID-12)
        pin, exits = dut.pin_based, dut.exit_controls
        vid = dut.secondary.virt_intr_delivery & dut.proc_based.secondary_ctls
        offered = running & lapic.intr & ~vapic.deliverable
        idt_ok = Signal()  # the guest can take an interrupt through its IDT
        m.d.comb += idt_ok.eq(dut.rflags_if & ~dut.blocking)
        bad = Signal()  # SDM 26.2.1.1's checks on these controls
        m.d.comb += bad.eq(
            (vid & ~pin.ext_intr_exiting)  # EXT-5
            | (pin.posted_intr & (~vid | ~exits.ack_intr_on_exit  # EXT-6
                                  | (dut.posted_intr_nv[8:16] != 0)
                                  | (dut.posted_intr_desc_addr[0:6] != 0)
                                  | ((dut.posted_intr_desc_addr >> dut.maxphyaddr) != 0)))
            | (vid & ~dut.proc_based.use_tpr_shadow))  # VID needs the TPR shadow
        was_running_without_eie = Signal()
        offered_to_idt = Signal()
        offered_vector = Signal(8)
        offered_exit = Signal()  # EIE 1, posted interrupts 0
        offered_no_ack = Signal()
        entry_tried = Signal()
        entry_bad = Signal()
        m.d.sync += [
            was_running_without_eie.eq(running & ~pin.ext_intr_exiting),
            offered_to_idt.eq(offered & ~pin.ext_intr_exiting & idt_ok),
            offered_vector.eq(lapic.inta.vector),
            offered_exit.eq(offered & pin.ext_intr_exiting & ~pin.posted_intr),
            offered_no_ack.eq(offered & pin.ext_intr_exiting & ~exits.ack_intr_on_exit),
            entry_tried.eq((dut.state == PathState.ROOT) & ~dut.load & dut.vm_entry),
            entry_bad.eq(bad),
        ]
        with m.If(past_valid):
            m.d.comb += [
                Assert(~was_running_without_eie | ~dut.vmexit,
                       "EXT_1_no_vm_exit_without_external_interrupt_exiting"),
                Assert(~offered_to_idt | (dut.delivered.valid
                                          & (dut.delivered.vector == offered_vector)),
                       "EXT_1_delivered_through_the_guest_idt"),
                Assert(~offered_exit | (dut.vmexit
                                        & (dut.exit_reason == ExitReason.EXTERNAL_INTERRUPT)),
                       "EXT_2_every_offered_interrupt_exits_with_reason_1"),
                Assert(~offered_no_ack | (dut.vmexit & (dut.exit_intr_info.as_value() == 0)),
                       "EXT_4_exit_without_ack_has_invalid_information"),
                Assert(~entry_tried | (dut.entry_failed == entry_bad),
                       "EXT_5_6_vm_entry_fails_exactly_on_bad_controls"),
                Assert(~entry_tried | ~entry_bad | ((dut.entry_error == 7)
                                                    & (dut.state == PathState.ROOT)),
                       "EXT_5_6_a_failed_entry_reports_error_7_and_stays_in_root"),
                Assert(~entry_tried | entry_bad | (dut.state == PathState.NON_ROOT),
                       "EXT_5_6_a_good_entry_runs_the_guest"),
            ]
        m.d.comb += [
            Assert(~(offered & pin.ext_intr_exiting & ~exits.ack_intr_on_exit)
                   | ~lapic.inta.valid, "EXT_4_exit_without_ack_performs_no_inta"),
            Cover(past_valid & offered_to_idt, "cover_EXT_1_idt_delivery"),
            Cover(past_valid & offered_exit & ~dut.rflags_if, "cover_EXT_2_exit_with_if_0"),
            Cover(past_valid & offered_no_ack, "cover_EXT_4_exit_without_ack"),
            Cover(past_valid & entry_tried & entry_bad & vid & ~pin.ext_intr_exiting,
                  "cover_EXT_5_entry_fails"),
            Cover(past_valid & entry_tried & entry_bad & pin.posted_intr,
                  "cover_EXT_6_entry_fails"),
            Cover(past_valid & entry_tried & ~entry_bad, "cover_EXT_5_6_entry_succeeds"),
        ]

        # --- L1's own interrupts: while L1 runs (interrupts disabled), the local APIC is
        # acknowledged only when L1 opens an interrupt window, and then at once (APIC-9) ----
        root = (dut.state == PathState.ROOT) & ~dut.load
        m.d.comb += [
            Assert(~root | (lapic.inta.valid == (dut.sti & ~dut.eoi & ~dut.vm_entry)),
                   "APIC_9_l1_is_acknowledged_only_in_its_interrupt_window"),
            Cover(root & dut.sti & lapic.intr, "cover_APIC_9_l1_takes_its_interrupt"),
        ]

        # --- VID-12: virtual-interrupt delivery ranks above external-interrupt VM exits. In
        # a cycle where L2's virtual APIC can deliver, the local APIC is not acknowledged and
        # no VM exit follows; with no virtual-APIC operation in that cycle (an L2 EOI or TPR
        # write, which come first) the virtual interrupt is delivered at that edge. (Below
        # NMI: the RTL has no NMI, docs/clauses.toml.) ---------------------------------------
        first = running & vapic.deliverable
        operation = vapic.eoi | vapic.tpr_write.valid | vapic.vm_entry | vapic.merge.valid
        was_first = Signal()  # at the last edge a virtual interrupt could be delivered
        was_free = Signal()  # ... and the virtual APIC had no operation
        was_rvi = Signal(8)
        m.d.sync += [was_first.eq(first), was_free.eq(first & ~operation),
                     was_rvi.eq(vapic.status.rvi)]
        m.d.comb += [
            Assert(~first | ~lapic.inta.valid,
                   "VID_12_no_inta_while_a_virtual_interrupt_is_deliverable"),
            Assert(~(past_valid & was_first) | ~dut.vmexit,
                   "VID_12_no_vm_exit_while_a_virtual_interrupt_is_deliverable"),
            Assert(~(past_valid & was_free) | (dut.delivered.valid
                                               & (dut.delivered.vector == was_rvi)),
                   "VID_12_the_virtual_interrupt_is_delivered_first"),
            Cover(past_valid & was_free & lapic.intr & pin.ext_intr_exiting,
                  "cover_VID_12_virtual_interrupt_before_a_pending_external_one"),
        ]

        # --- VID-11: a VM exit stores RVI and SVI back and the next VM entry loads them: the
        # virtual APIC's state is L2's and stays as it is while L1 runs (the scenario's L1
        # changes it only through the preload, a VMM's write to the page and the VMCS) -----
        was_root = Signal()  # at the last edge L1 ran
        was_operation = Signal()  # at the last edge the virtual APIC had an operation
        virr1, visr1 = Signal.like(vapic.virr), Signal.like(vapic.visr)
        status1 = Signal.like(vapic.status)
        m.d.sync += [was_root.eq(root), was_operation.eq(operation),
                     virr1.eq(vapic.virr), visr1.eq(vapic.visr), status1.eq(vapic.status)]
        m.d.comb += [
            Assert(~(past_valid & (was_root | (dut.vmexit & ~was_operation)))
                   | ((vapic.virr == virr1) & (vapic.visr == visr1)
                      & (vapic.status.as_value() == status1.as_value())),
                   "VID_11_rvi_svi_virr_visr_are_kept_from_exit_to_entry"),
            Cover(past_valid & dut.vmexit & (status1.as_value() != 0),
                  "cover_VID_11_exit_with_rvi_and_svi"),
        ]

        m.d.comb += [
            Cover(past_valid & decided & matched, "cover_PI_5_nv_acknowledged"),
            Cover(past_valid & decided & ~matched, "cover_PI_4_other_vector_acknowledged"),
            Cover(pi.start, "cover_PI_2_processing_starts"),
        ]
        return m

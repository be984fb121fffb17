"""Formal properties of :class:`rtl.virtual_interrupt.VirtualInterrupt` against the SDM's text
(clauses VID-1 and VID-3..10 of ``docs/clauses.toml``), each written from the clause and not
from the component: the state after every edge, from the state and the inputs before it.

Every input is free (``load``/``preload`` make every VIRR, VISR, VTPR and guest interrupt
status reachable, the other state follows from operations), under the component's timing
contract: at most one of VM entry, EOI, TPR write, self-IPI and merge per cycle (one
instruction or one posted-interrupt step at a time). "The highest set bit, or 0" is stated as
a property of the result (that bit set and none above it), not computed. Each statement's
message is its name, with its clause IDs; each operation has a cover.

Never enable postponed evaluation of annotations (PEP 563) here.
"""

from amaranth.hdl import Assert, Assume, Cat, Const, Cover, Elaboratable, Module, Mux, Signal

from .properties import free_inputs
from .virtual_interrupt import VirtualInterrupt

__all__ = ["VirtualInterruptProperties"]


def _ppr(vtpr, svi):
    """SDM 29.1.3, as the clause says it: VTPR if VTPR's class is at least SVI's, else SVI's
    class with a zero low nibble."""
    return Mux((vtpr >> 4) >= (svi >> 4), vtpr, svi & 0xF0)


def _is_highest(bits, vector):
    """``vector`` is the highest set bit of ``bits``, or 0 with no bit set."""
    above = (bits >> vector) >> 1
    return Mux(bits == 0, vector == 0, bits.bit_select(vector, 1) & (above == 0))


class VirtualInterruptProperties(Elaboratable):
    """The proof's top level: a :class:`VirtualInterrupt` with free inputs."""

    def __init__(self, design=VirtualInterrupt):
        self.vapic = design()

    @property
    def ports(self):
        return free_inputs(self.vapic)

    def elaborate(self, platform):
        m = Module()
        m.submodules.vapic = v = self.vapic
        rvi, svi = v.status.rvi, v.status.svi
        ops = [v.vm_entry, v.eoi, v.tpr_write.valid, v.self_ipi, v.merge.valid]
        for i, a in enumerate(ops):
            for b in ops[i + 1:]:
                m.d.comb += Assume(~(a & b), "one_operation_per_cycle")

        # the state and the inputs before the edge, for the properties after it
        past = Signal()
        m.d.sync += past.eq(~v.load)  # the last edge applied no preload
        before = {name: Signal.like(sig, name=f"was_{name}") for name, sig in (
            ("virr", v.virr), ("visr", v.visr), ("vtpr", v.vtpr), ("vppr", v.vppr),
            ("recognized", v.recognized))}
        was_rvi, was_svi = Signal(8), Signal(8)
        was = {name: Signal(name=f"was_{name}") for name in (
            "entry", "eoi", "tpr", "self_ipi", "merge", "evaluate", "vid", "iwe", "if_",
            "blocking", "exit_bit", "rvi_valid")}
        tpr_value, threshold = Signal(8), Signal(4)
        ipi_vector, merge_vector = Signal(8), Signal(8)
        merge_bits = Signal(256)
        m.d.sync += [before[n].eq(s) for n, s in (
            ("virr", v.virr), ("visr", v.visr), ("vtpr", v.vtpr), ("vppr", v.vppr),
            ("recognized", v.recognized))]
        m.d.sync += [
            was_rvi.eq(rvi), was_svi.eq(svi),
            was["entry"].eq(v.vm_entry), was["eoi"].eq(v.eoi), was["tpr"].eq(v.tpr_write.valid),
            was["self_ipi"].eq(v.self_ipi), was["merge"].eq(v.merge.valid),
            was["evaluate"].eq(v.merge.evaluate), was["vid"].eq(v.vid_enable),
            was["iwe"].eq(v.intr_window_exiting), was["if_"].eq(v.rflags_if),
            was["blocking"].eq(v.blocking),
            was["exit_bit"].eq(v.eoi_exit_bitmap.bit_select(svi, 1)),
            was["rvi_valid"].eq(v.merge.rvi_valid),
            tpr_value.eq(v.tpr_write.value), threshold.eq(v.tpr_threshold),
            ipi_vector.eq(v.self_ipi_vector), merge_vector.eq(v.merge.rvi_vector),
            merge_bits.eq(v.merge.bits),
        ]
        any_op = was["entry"] | was["eoi"] | was["tpr"] | was["self_ipi"] | was["merge"]
        delivered = v.delivered.valid
        # VID-4 on the state after the edge
        recognizable = ~was["iwe"] & ((rvi >> 4) > (v.vppr >> 4))
        one = Const(1, 256)

        with m.If(past):
            m.d.comb += [
                # VID-1: the guest interrupt status word
                Assert(Cat(rvi, svi) == v.status.as_value(), "VID_1_rvi_low_byte_svi_high_byte"),
                # VID-6: delivery only of a recognized interrupt, at a boundary it may happen
                Assert(~delivered | (before["recognized"] & was["vid"] & was["if_"]
                                     & ~was["blocking"] & ~was["iwe"] & ~any_op),
                       "VID_6_delivery_only_when_recognized_and_unblocked"),
                # VID-5: recognition changes only by an evaluation, or ends with a delivery
                Assert((v.recognized == before["recognized"]) | delivered
                       | (was["entry"] & was["vid"]) | (was["eoi"] & ~was["exit_bit"])
                       | (was["tpr"] & was["vid"]) | was["self_ipi"] | was["evaluate"],
                       "VID_5_recognition_changes_only_at_an_evaluation"),
            ]
            with m.If(delivered):  # VID-7
                m.d.comb += [
                    Assert(v.delivered.vector == was_rvi, "VID_7_the_vector_is_rvi"),
                    Assert(v.visr == (before["visr"] | (one << was_rvi)), "VID_7_visr_gets_rvi"),
                    Assert(svi == was_rvi, "VID_7_svi_becomes_rvi"),
                    Assert(v.vppr == (was_rvi & 0xF0), "VID_7_vppr_is_rvi_class"),
                    Assert(v.virr == (before["virr"] & ~(one << was_rvi)),
                           "VID_7_virr_loses_rvi"),
                    Assert(_is_highest(v.virr, rvi), "VID_7_rvi_becomes_the_highest_virr_bit"),
                    Assert(~v.recognized, "VID_7_recognition_ends"),
                ]
            with m.If(was["eoi"]):  # VID-8
                m.d.comb += [
                    Assert(v.visr == (before["visr"] & ~(one << was_svi)),
                           "VID_8_eoi_clears_visr_svi"),
                    Assert(_is_highest(v.visr, svi), "VID_8_svi_becomes_the_highest_visr_bit"),
                    Assert(v.vppr == _ppr(before["vtpr"], svi), "VID_3_8_ppr_virtualization"),
                    Assert(v.eoi_exit == was["exit_bit"], "VID_8_eoi_exit_iff_the_bitmap_bit"),
                    Assert(~v.eoi_exit | (v.eoi_exit_vector == was_svi),
                           "VID_8_eoi_exit_names_the_old_svi"),
                    Assert(was["exit_bit"] | (v.recognized == recognizable),
                           "VID_4_8_evaluation_after_eoi"),
                ]
            with m.If(was["tpr"]):  # VID-9
                m.d.comb += Assert(v.vtpr == tpr_value, "VID_9_vtpr_written")
                with m.If(was["vid"]):
                    m.d.comb += [
                        Assert(v.vppr == _ppr(tpr_value, svi), "VID_3_9_ppr_virtualization"),
                        Assert(v.recognized == recognizable, "VID_4_9_evaluation"),
                        Assert(~v.tpr_below_threshold, "VID_9_no_threshold_exit_with_vid"),
                    ]
                with m.Else():
                    m.d.comb += Assert(v.tpr_below_threshold == ((tpr_value >> 4) < threshold),
                                       "VID_9_threshold_exit_without_vid")
            with m.If(was["self_ipi"]):  # VID-10
                m.d.comb += [
                    Assert(v.virr == (before["virr"] | (one << ipi_vector)),
                           "VID_10_self_ipi_sets_virr"),
                    Assert(rvi == Mux(ipi_vector > was_rvi, ipi_vector, was_rvi),
                           "VID_10_rvi_is_the_maximum"),
                    Assert(v.recognized == recognizable, "VID_4_10_evaluation"),
                ]
            with m.If(was["entry"]):  # VID-11: VM entry loads RVI and SVI as the VMCS holds
                # them (``status``) and, with VID, runs PPR virtualization and evaluates
                m.d.comb += Assert((v.virr == before["virr"]) & (v.visr == before["visr"])
                                   & (rvi == was_rvi) & (svi == was_svi),
                                   "VID_11_entry_loads_rvi_svi_virr_visr_unchanged")
                with m.If(was["vid"]):
                    m.d.comb += [
                        Assert(v.vppr == _ppr(before["vtpr"], svi),
                               "VID_3_11_entry_ppr_virtualization"),
                        Assert(v.recognized == recognizable, "VID_4_5_11_evaluation_at_vm_entry"),
                    ]
                with m.Elif(~was["evaluate"]):  # (step 7's evaluation is its own trigger)
                    m.d.comb += Assert((v.vppr == before["vppr"])
                                       & (v.recognized == before["recognized"]),
                                       "VID_11_entry_without_vid_evaluates_nothing")
            with m.If(was["merge"]):  # posted-interrupt steps 5-7
                m.d.comb += [
                    Assert(v.virr == (before["virr"] | merge_bits), "VID_5_merge_ors_virr"),
                    Assert(rvi == Mux(was["rvi_valid"] & (merge_vector > was_rvi), merge_vector,
                                      was_rvi), "VID_5_merge_raises_rvi"),
                    Assert(~was["evaluate"] | (v.recognized == recognizable),
                           "VID_4_5_evaluation_after_posted_interrupts"),
                ]

        m.d.comb += [
            Cover(past & delivered & (v.virr != 0), "cover_VID_7_delivery_with_more_pending"),
            Cover(past & was["eoi"] & ~was["exit_bit"] & v.recognized,
                  "cover_VID_8_eoi_then_recognized"),
            Cover(past & was["eoi"] & v.eoi_exit, "cover_VID_8_eoi_exit"),
            Cover(past & was["tpr"] & ~was["vid"] & v.tpr_below_threshold,
                  "cover_VID_9_threshold_exit"),
            Cover(past & was["self_ipi"] & v.recognized, "cover_VID_10_self_ipi_recognized"),
            Cover(past & was["entry"] & was["vid"] & v.recognized & (svi != 0),
                  "cover_VID_11_entry_recognizes"),
            Cover(past & was["merge"] & was["evaluate"] & v.recognized,
                  "cover_VID_5_posted_interrupt_recognized"),
        ]
        return m

"""Virtual-interrupt delivery state of one virtual-APIC page (SDM 29.1-29.2; clauses VID-1..12
of ``docs/clauses.toml``).

Never enable postponed evaluation of annotations (PEP 563) here: it breaks ``Component`` ports.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .lapic import highest_set_bit
from .layouts import GuestIntrStatus, VapicPreload
from .signatures import MergeSignature, RegisterWriteSignature, VectorStrobeSignature

__all__ = ["VirtualInterrupt"]


def _ppr_virtualization(vtpr, svi):
    """VID-3: VPPR := VTPR if VTPR[7:4] >= SVI[7:4], else SVI & F0H."""
    return Mux(vtpr[4:8] >= svi[4:8], vtpr, Cat(Const(0, 4), svi[4:8]))


class VirtualInterrupt(wiring.Component):
    """VIRR, VISR, VTPR, VPPR and the guest interrupt status (RVI, SVI) with evaluation and
    delivery of pending virtual interrupts, EOI, TPR and self-IPI virtualization, and the
    posted-interrupt merge port.

    Timing contract: strobes are sampled at the rising edge; every operation's effects,
    including the evaluation it triggers (VID-5), are visible after that edge. Recognition
    (``recognized``) is a register: set or cleared only by an evaluation (VID-4), cleared by a
    delivery ("ceases recognition ... following the delivery", SDM 29.2.2). A recognized
    interrupt is delivered at the first edge where ``rflags_if`` is 1 and ``blocking`` and
    ``intr_window_exiting`` are 0 (VID-6); ``delivered`` then pulses for one cycle with the
    vector. At most one of ``vm_entry``, ``eoi``, ``tpr_write``, ``self_ipi`` and ``merge``
    per cycle (one instruction or one posted-interrupt step at a time); ``evaluate`` may come
    with ``merge``. Operations and delivery are exclusive: a delivery waits for a cycle with no
    operation.

    Members
    -------
    load : ``In(1)``; preload : ``In(VapicPreload)``
        State preload (VMM writes to the page and the VMCS); wins over every other input.
    vid_enable : ``In(1)``
        The "virtual-interrupt delivery" VM-execution control.
    intr_window_exiting : ``In(1)``
    rflags_if, blocking : ``In(1)``
        Guest RFLAGS.IF; STI or MOV-SS blocking.
    vm_entry : ``In(1)``
        VM entry (VID-11): RVI/SVI are already in ``status``; PPR virtualization, evaluation.
    eoi : ``In(1)``, ``eoi_exit_bitmap`` : ``In(256)``
        EOI virtualization (VID-8); an EOI-induced exit pulses ``eoi_exit`` with the vector.
    tpr_write : ``In(RegisterWriteSignature())``, ``tpr_threshold`` : ``In(4)``
        TPR virtualization (VID-9); with VID = 0, ``tpr_below_threshold`` pulses when
        VTPR[7:4] < threshold.
    self_ipi : ``In(1)``, ``self_ipi_vector`` : ``In(8)``
        Self-IPI virtualization (VID-10).
    merge : ``In(MergeSignature())``
        Posted-interrupt steps 5 and 6: VIRR |= ``merge.bits``; with ``merge.rvi_valid``,
        RVI := max(RVI, ``merge.rvi_vector``); step 7, ``merge.evaluate`` (also alone):
        evaluate pending virtual interrupts after this edge's merge.
    virr, visr : ``Out(256)``; ``vtpr``, ``vppr`` : ``Out(8)``
    status : ``Out(GuestIntrStatus)``
    recognized : ``Out(1)``
    deliverable : ``Out(1)``
        Combinational: recognized, VID on and delivery unblocked (VID-6); the delivery happens
        at the next edge with no operation. The VM-exit logic uses it for VID-12.
    delivered : ``Out(VectorStrobeSignature())``
    eoi_exit : ``Out(1)``, ``eoi_exit_vector`` : ``Out(8)``
    tpr_below_threshold : ``Out(1)``
    """

    load: In(1)
    preload: In(VapicPreload)
    vid_enable: In(1)
    intr_window_exiting: In(1)
    rflags_if: In(1)
    blocking: In(1)
    vm_entry: In(1)
    eoi: In(1)
    eoi_exit_bitmap: In(256)
    tpr_write: In(RegisterWriteSignature())
    tpr_threshold: In(4)
    self_ipi: In(1)
    self_ipi_vector: In(8)
    merge: In(MergeSignature())

    virr: Out(256)
    visr: Out(256)
    vtpr: Out(8)
    vppr: Out(8)
    status: Out(GuestIntrStatus)
    recognized: Out(1)
    deliverable: Out(1)
    delivered: Out(VectorStrobeSignature())
    eoi_exit: Out(1)
    eoi_exit_vector: Out(8)
    tpr_below_threshold: Out(1)

    def elaborate(self, platform):
        m = Module()
        rvi, svi = self.status.rvi, self.status.svi

        # next-state values, defaulting to "unchanged"
        virr_n = Signal(256)
        visr_n = Signal(256)
        vtpr_n = Signal(8)
        vppr_n = Signal(8)
        rvi_n = Signal(8)
        svi_n = Signal(8)
        do_evaluate = Signal()
        m.d.comb += [
            virr_n.eq(self.virr), visr_n.eq(self.visr), vtpr_n.eq(self.vtpr),
            vppr_n.eq(self.vppr), rvi_n.eq(rvi), svi_n.eq(svi),
        ]

        # hsb of VISR without SVI (EOI virtualization) and of VIRR without RVI (delivery)
        visr_after_eoi = Signal(256)
        m.d.comb += visr_after_eoi.eq(self.visr & ~(Const(1, 256) << svi))
        visr_any, visr_hsb = highest_set_bit(m, visr_after_eoi, "visr_eoi")
        virr_after_delivery = Signal(256)
        m.d.comb += virr_after_delivery.eq(self.virr & ~(Const(1, 256) << rvi))
        virr_any, virr_hsb = highest_set_bit(m, virr_after_delivery, "virr_dlv")

        operation = (self.vm_entry | self.eoi | self.tpr_write.valid | self.self_ipi
                     | self.merge.valid)
        m.d.comb += self.deliverable.eq(self.recognized & self.vid_enable & self.rflags_if
                                        & ~self.blocking & ~self.intr_window_exiting)
        deliver = Signal()
        m.d.comb += deliver.eq(self.deliverable & ~operation)
        eoi_exit = Signal()
        tpr_below = Signal()

        with m.If(self.vm_entry & self.vid_enable):  # VID-11 (with VID = 0: nothing)
            m.d.comb += [vppr_n.eq(_ppr_virtualization(self.vtpr, svi)), do_evaluate.eq(1)]
        with m.Elif(self.eoi):  # VID-8
            new_svi = Mux(visr_any, visr_hsb, 0)
            m.d.comb += [
                visr_n.eq(visr_after_eoi),
                svi_n.eq(new_svi),
                vppr_n.eq(_ppr_virtualization(self.vtpr, new_svi)),
            ]
            with m.If(self.eoi_exit_bitmap.bit_select(svi, 1)):
                m.d.comb += eoi_exit.eq(1)
            with m.Else():
                m.d.comb += do_evaluate.eq(1)
        with m.Elif(self.tpr_write.valid):  # VID-9
            m.d.comb += vtpr_n.eq(self.tpr_write.value)
            with m.If(self.vid_enable):
                m.d.comb += [vppr_n.eq(_ppr_virtualization(self.tpr_write.value, svi)),
                             do_evaluate.eq(1)]
            with m.Elif(self.tpr_write.value[4:8] < self.tpr_threshold):
                m.d.comb += tpr_below.eq(1)
        with m.Elif(self.self_ipi):  # VID-10
            m.d.comb += [
                virr_n.eq(self.virr | (Const(1, 256) << self.self_ipi_vector)),
                rvi_n.eq(Mux(self.self_ipi_vector > rvi, self.self_ipi_vector, rvi)),
                do_evaluate.eq(1),
            ]
        with m.Elif(self.merge.valid):  # posted-interrupt steps 5, 6 (and 7 with `evaluate`)
            m.d.comb += virr_n.eq(self.virr | self.merge.bits)
            with m.If(self.merge.rvi_valid & (self.merge.rvi_vector > rvi)):
                m.d.comb += rvi_n.eq(self.merge.rvi_vector)
            m.d.comb += do_evaluate.eq(self.merge.evaluate)
        with m.Elif(self.merge.evaluate):
            m.d.comb += do_evaluate.eq(1)
        with m.Elif(deliver):  # VID-7
            m.d.comb += [
                visr_n.eq(self.visr | (Const(1, 256) << rvi)),
                svi_n.eq(rvi),
                vppr_n.eq(Cat(Const(0, 4), rvi[4:8])),
                virr_n.eq(virr_after_delivery),
                rvi_n.eq(Mux(virr_any, virr_hsb, 0)),
            ]

        # VID-4, on the values after this edge's operation
        recognize = Signal()
        m.d.comb += recognize.eq(~self.intr_window_exiting & (rvi_n[4:8] > vppr_n[4:8]))

        m.d.sync += [
            self.delivered.valid.eq(0), self.eoi_exit.eq(0), self.tpr_below_threshold.eq(0),
        ]
        with m.If(self.load):
            m.d.sync += [
                self.virr.eq(self.preload.virr), self.visr.eq(self.preload.visr),
                self.vtpr.eq(self.preload.vtpr), self.status.eq(self.preload.status),
                self.vppr.eq(0), self.recognized.eq(0),
            ]
        with m.Else():
            m.d.sync += [
                self.virr.eq(virr_n), self.visr.eq(visr_n), self.vtpr.eq(vtpr_n),
                self.vppr.eq(vppr_n), rvi.eq(rvi_n), svi.eq(svi_n),
                self.eoi_exit.eq(eoi_exit), self.eoi_exit_vector.eq(svi),
                self.tpr_below_threshold.eq(tpr_below),
            ]
            with m.If(do_evaluate):
                m.d.sync += self.recognized.eq(recognize)
            with m.Elif(deliver):
                m.d.sync += [
                    self.recognized.eq(0),
                    self.delivered.valid.eq(1), self.delivered.vector.eq(rvi),
                ]
        return m

"""One CPU's interrupt path in VMX non-root operation: the local APIC, the external-interrupt
VM-exit decision with posted-interrupt processing, virtual-interrupt delivery and the VM-entry
checks (SDM 25.2, 26.2.1.1, 27.2.2, 29.6; clauses EXT-1..6, PI-2..5, PI-16).

Never enable postponed evaluation of annotations (PEP 563) here: it breaks ``Component`` ports.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from .lapic import AcceptSignature, LocalApic
from .layouts import (
    EXIT_CONTROLS,
    PIN_BASED_CONTROLS,
    PROC_BASED_CONTROLS,
    SECONDARY_CONTROLS,
    ExitIntrInfo,
    ExitReason,
    GuestIntrStatus,
    InterruptionType,
    Preload,
)
from .memory import MemorySignature
from .posted_interrupt import PostedInterruptUnit
from .signatures import RegisterWriteSignature, VectorStrobeSignature
from .virtual_interrupt import VirtualInterrupt

__all__ = ["Decision", "DecisionRecord", "InterruptPath", "PathState"]

VMXERR_ENTRY_INVALID_CONTROL_FIELD = 7


class PathState(enum.Enum, shape=3):
    """What the core is doing with the interrupt path (waveform names)."""

    ROOT = 0  # VMX root operation / L1 runs with interrupts disabled
    NON_ROOT = 1  # the guest runs
    POSTED = 2  # posted-interrupt processing (steps 3-7) in progress


class Decision(enum.Enum, shape=2):
    """The outcome of step 2 for one acknowledged interrupt."""

    VM_EXIT = 0
    POSTED_INTERRUPT = 1
    IDT_DELIVERY = 2  # external-interrupt exiting = 0: through the guest IDT (EXT-1)


class DecisionRecord(data.Struct):
    """One record per acknowledged interrupt (the decision trace, in the spirit of RVFI).

    ``virr_before``/``rvi_before`` are sampled at the acknowledge; ``virr_after``,
    ``rvi_after`` and ``harvested`` when posted-interrupt processing has finished (equal to
    the "before" values for a VM exit).
    """

    vector: 8
    nv: 8
    decision: Decision
    harvested: 256
    virr_before: 256
    virr_after: 256
    rvi_before: 8
    rvi_after: 8


class InterruptPath(wiring.Component):
    """The top level of the hardware model: what the cosimulation drives and observes.

    Timing contract: all strobes are sampled at the rising edge. In ``NON_ROOT``, when the local
    APIC presents a deliverable interrupt (``intr``) and no virtual interrupt is being
    delivered in that cycle (VID-12), the path decides in one cycle:

    - external-interrupt exiting = 0: INTA, then IDT delivery of the vector to the guest when
      RFLAGS.IF = 1 (``delivered`` pulses); with IF = 0 nothing happens (EXT-1);
    - acknowledge-on-exit = 0: VM exit, reason 1, interruption information 0, no INTA (EXT-4);
    - else INTA (step 1, PI-3); if "process posted interrupts" = 1 and the vector equals
      ``posted_intr_nv[7:0]`` (step 2), posted-interrupt processing starts (no VM exit, PI-5);
      otherwise a VM exit with reason 1 and information ``0x80000000 | vector`` (EXT-3, PI-4).

    A VM exit pulses ``vmexit`` for one cycle with ``exit_reason``/``exit_intr_info`` held
    until the next exit, and leaves ``NON_ROOT``. In ``ROOT`` L1 runs with RFLAGS.IF = 0;
    ``sti`` (L1 opens an interrupt window) acknowledges the interrupt the local APIC presents
    (``intr``), if any, at that edge: IRR to ISR, delivered through L1's IDT (APIC-9).
    ``vm_entry`` (L1's VMLAUNCH) runs the VM-entry checks on the controls (EXT-5, EXT-6): on
    failure ``entry_failed`` pulses with ``entry_error`` = 7; on success the path enters
    ``NON_ROOT`` and the virtual APIC performs its VM-entry evaluation (VID-11).
    ``decision_valid`` pulses once per interrupt acknowledged in non-root operation with
    ``decision`` (for posted-interrupt processing, when it has finished).

    Members
    -------
    accept : ``In(AcceptSignature())``
        Interrupts arriving at L1's local APIC.
    eoi : ``In(1)``; tpr_write : ``In(RegisterWriteSignature())``; spurious_vector : ``In(8)``
        L1's EOI and TPR writes; SVR[7:0].
    sti : ``In(1)``
        L1 takes its own interrupt (ignored unless L1 runs, and with ``eoi``).
    l2_eoi : ``In(1)``; l2_tpr_write : ``In(RegisterWriteSignature())``
        L2's EOI and TPR writes (virtualized; ignored unless L2 runs).
    pin_based, proc_based, secondary, exit_controls : ``In`` control-word layouts
    posted_intr_nv : ``In(16)``; posted_intr_desc_addr : ``In(64)``; maxphyaddr : ``In(6)``
    rflags_if, blocking : ``In(1)``
        L2's RFLAGS.IF and STI/MOV-SS blocking.
    load : ``In(1)``; preload : ``In(Preload)``
        State preload of a scenario's initial state (both APICs, and whether L2 runs).
    mem : ``Out(MemorySignature())``
        The posted-interrupt descriptor's memory.
    state : ``Out(PathState)``
    intr : ``Out(1)``
        The local APIC presents an interrupt (APIC-8).
    vmexit : ``Out(1)``; exit_reason : ``Out(ExitReason)``; exit_intr_info : ``Out(ExitIntrInfo)``
    entry_failed : ``Out(1)``; entry_error : ``Out(8)``
    delivered : ``Out(VectorStrobeSignature())``
        An interrupt vectored through L2's IDT (virtual-interrupt delivery or EXT-1).
    eoi_message : ``Out(VectorStrobeSignature())``
        L1's local APIC's EOI messages to the I/O APICs.
    irr, isr, tmr : ``Out(256)``; ppr, tpr : ``Out(8)``
    virr, visr : ``Out(256)``; vppr, vtpr : ``Out(8)``; status : ``Out(GuestIntrStatus)``
    decision_valid : ``Out(1)``; decision : ``Out(DecisionRecord)``
    """

    accept: In(AcceptSignature())
    eoi: In(1)
    tpr_write: In(RegisterWriteSignature())
    spurious_vector: In(8, init=0xFF)
    l2_eoi: In(1)
    l2_tpr_write: In(RegisterWriteSignature())
    sti: In(1)
    vm_entry: In(1)
    pin_based: In(PIN_BASED_CONTROLS)
    proc_based: In(PROC_BASED_CONTROLS)
    secondary: In(SECONDARY_CONTROLS)
    exit_controls: In(EXIT_CONTROLS)
    posted_intr_nv: In(16)
    posted_intr_desc_addr: In(64)
    maxphyaddr: In(6, init=46)
    rflags_if: In(1)
    blocking: In(1)
    load: In(1)
    preload: In(Preload)

    mem: Out(MemorySignature())
    state: Out(PathState)
    intr: Out(1)
    vmexit: Out(1)
    exit_reason: Out(ExitReason, init=ExitReason.NONE)
    exit_intr_info: Out(ExitIntrInfo)
    entry_failed: Out(1)
    entry_error: Out(8)
    delivered: Out(VectorStrobeSignature())
    eoi_message: Out(VectorStrobeSignature())
    irr: Out(256)
    isr: Out(256)
    tmr: Out(256)
    ppr: Out(8)
    tpr: Out(8)
    virr: Out(256)
    visr: Out(256)
    vppr: Out(8)
    vtpr: Out(8)
    status: Out(GuestIntrStatus)
    decision_valid: Out(1)
    decision: Out(DecisionRecord)

    def __init__(self):
        super().__init__()
        # made here, not in elaborate(), so that property modules (rtl/top_properties.py) can
        # refer to their ports
        self.lapic = LocalApic()
        self.pi = PostedInterruptUnit()
        self.vapic = VirtualInterrupt()

    def elaborate(self, platform):
        m = Module()
        m.submodules.lapic = lapic = self.lapic
        m.submodules.pi = pi = self.pi
        m.submodules.vapic = vapic = self.vapic

        # "virtual-interrupt delivery" is in effect only with the secondary controls activated
        vid = self.secondary.virt_intr_delivery & self.proc_based.secondary_ctls

        # --- wiring ---------------------------------------------------------------------------
        connect(m, flipped(self.accept), lapic.accept)
        connect(m, flipped(self.mem), pi.mem)
        connect(m, flipped(self.tpr_write), lapic.tpr_write)
        connect(m, lapic.eoi_message, flipped(self.eoi_message))
        connect(m, pi.merge, vapic.merge)
        m.d.comb += [
            lapic.spurious_vector.eq(self.spurious_vector),
            lapic.eoi.eq(self.eoi | pi.eoi),  # step 4 is an EOI to the local APIC
            lapic.load.eq(self.load), lapic.preload.eq(self.preload.lapic),
            self.irr.eq(lapic.irr), self.isr.eq(lapic.isr), self.tmr.eq(lapic.tmr),
            self.ppr.eq(lapic.ppr), self.tpr.eq(lapic.tpr), self.intr.eq(lapic.intr),
            pi.desc_addr.eq(self.posted_intr_desc_addr),
            vapic.load.eq(self.load), vapic.preload.eq(self.preload.vapic),
            vapic.vid_enable.eq(vid),
            vapic.intr_window_exiting.eq(self.proc_based.intr_window_exiting),
            # no virtual interrupt is delivered while posted-interrupt processing runs: its steps
            # complete within the acceptance of one interrupt, and delivery happens only at an
            # instruction boundary (SDM 29.2.2, 29.6); step 7's evaluation is followed after it
            vapic.rflags_if.eq(self.rflags_if & (self.state != PathState.ROOT) & ~pi.busy),
            vapic.blocking.eq(self.blocking),
            # L2's EOI is virtualized only with virtual-interrupt delivery (SDM 29.1.2), its
            # TPR write only with "use TPR shadow" (29.1.1); otherwise neither reaches the
            # virtual APIC (what it reaches instead is outside this model)
            vapic.eoi.eq(self.l2_eoi & (self.state == PathState.NON_ROOT) & vid),
            vapic.tpr_write.valid.eq(self.l2_tpr_write.valid & (self.state == PathState.NON_ROOT)
                                     & self.proc_based.use_tpr_shadow),
            vapic.tpr_write.value.eq(self.l2_tpr_write.value),
            self.virr.eq(vapic.virr), self.visr.eq(vapic.visr), self.vppr.eq(vapic.vppr),
            self.vtpr.eq(vapic.vtpr), self.status.eq(vapic.status),
        ]

        # --- VM-entry checks (SDM 26.2.1.1; EXT-5, EXT-6) ------------------------------------
        ppi = self.pin_based.posted_intr
        addr = self.posted_intr_desc_addr
        addr_beyond = Signal()
        m.d.comb += addr_beyond.eq((addr >> self.maxphyaddr) != 0)
        entry_ok = Signal()
        m.d.comb += entry_ok.eq(
            ~(vid & ~self.pin_based.ext_intr_exiting)
            & ~(ppi & (~vid | ~self.exit_controls.ack_intr_on_exit
                       | (self.posted_intr_nv[8:16] != 0) | (addr[0:6] != 0) | addr_beyond))
            & ~(vid & ~self.proc_based.use_tpr_shadow))

        # --- the decision (steps 1-2) ---------------------------------------------------------
        vector = lapic.inta.vector
        # EXT-3: the interruption information of an acknowledged external interrupt
        acked_info = Signal(ExitIntrInfo)
        m.d.comb += [acked_info.vector.eq(vector),
                     acked_info.type.eq(InterruptionType.EXTERNAL_INTERRUPT),
                     acked_info.valid.eq(1)]
        nv_match = Signal()
        m.d.comb += nv_match.eq(ppi & (vector == self.posted_intr_nv[0:8]))
        take = Signal()  # VID-12: a deliverable virtual interrupt goes first
        m.d.comb += take.eq((self.state == PathState.NON_ROOT) & lapic.intr & ~vapic.deliverable)
        trace_pending = Signal(DecisionRecord)

        # deliveries through L2's IDT: virtual-interrupt delivery, or EXT-1 (registered pulses)
        idt_delivered = Signal()
        idt_vector = Signal(8)
        m.d.comb += [
            self.delivered.valid.eq(vapic.delivered.valid | idt_delivered),
            self.delivered.vector.eq(Mux(vapic.delivered.valid, vapic.delivered.vector,
                                         idt_vector)),
        ]
        m.d.sync += [self.vmexit.eq(0), self.entry_failed.eq(0), self.decision_valid.eq(0),
                     idt_delivered.eq(0)]

        def vm_exit(info):
            m.d.sync += [
                self.vmexit.eq(1), self.exit_reason.eq(ExitReason.EXTERNAL_INTERRUPT),
                self.exit_intr_info.eq(info), self.state.eq(PathState.ROOT),
            ]

        with m.If(self.load):
            with m.If(self.preload.non_root):
                m.d.sync += self.state.eq(PathState.NON_ROOT)
            with m.Else():
                m.d.sync += self.state.eq(PathState.ROOT)
        with m.Else():
            with m.Switch(self.state):
                with m.Case(PathState.ROOT):
                    with m.If(self.vm_entry):
                        with m.If(entry_ok):
                            m.d.comb += vapic.vm_entry.eq(1)
                            m.d.sync += self.state.eq(PathState.NON_ROOT)
                        with m.Else():
                            m.d.sync += [self.entry_failed.eq(1),
                                         self.entry_error.eq(VMXERR_ENTRY_INVALID_CONTROL_FIELD)]
                    with m.Elif(self.sti & ~self.eoi):  # L1's own interrupt, through its IDT
                        m.d.comb += lapic.inta.valid.eq(1)
                with m.Case(PathState.NON_ROOT):
                    with m.If(take):
                        with m.If(~self.pin_based.ext_intr_exiting):
                            with m.If(self.rflags_if & ~self.blocking):  # EXT-1
                                m.d.comb += lapic.inta.valid.eq(1)
                                m.d.sync += [
                                    idt_delivered.eq(1), idt_vector.eq(vector),
                                    self.decision_valid.eq(1), self._record(self.decision, vector,
                                                                         Decision.IDT_DELIVERY,
                                                                         vapic),
                                ]
                        with m.Elif(~self.exit_controls.ack_intr_on_exit):  # EXT-4
                            vm_exit(0)
                        with m.Else():
                            m.d.comb += lapic.inta.valid.eq(1)  # step 1
                            with m.If(nv_match):  # step 2: a notification
                                m.d.comb += pi.start.eq(1)
                                m.d.sync += [
                                    self.state.eq(PathState.POSTED),
                                    self._record(trace_pending, vector,
                                                 Decision.POSTED_INTERRUPT, vapic),
                                ]
                            with m.Else():  # EXT-3, PI-4
                                vm_exit(acked_info)
                                m.d.sync += [self.decision_valid.eq(1),
                                             self._record(self.decision, vector, Decision.VM_EXIT,
                                                          vapic)]
                with m.Case(PathState.POSTED):
                    with m.If(pi.done):
                        m.d.sync += [
                            self.state.eq(PathState.NON_ROOT),
                            self.decision_valid.eq(1),
                            self.decision.eq(trace_pending),
                            self.decision.harvested.eq(pi.harvested),
                            self.decision.virr_after.eq(vapic.virr),
                            self.decision.rvi_after.eq(vapic.status.rvi),
                        ]
        return m

    def _record(self, target, vector, decision, vapic):
        """Assignments that fill a decision record at the acknowledge."""
        return [
            target.vector.eq(vector), target.nv.eq(self.posted_intr_nv[0:8]),
            target.decision.eq(decision), target.harvested.eq(0),
            target.virr_before.eq(vapic.virr), target.virr_after.eq(vapic.virr),
            target.rvi_before.eq(vapic.status.rvi), target.rvi_after.eq(vapic.status.rvi),
        ]

"""The local APIC's interrupt-acceptance and acknowledge path (SDM 10.8, 10.9; clauses
APIC-1..14 of ``docs/clauses.toml``).

Never enable postponed evaluation of annotations (PEP 563) here: it breaks ``Component`` ports.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .layouts import LapicPreload
from .signatures import RegisterWriteSignature, VectorStrobeSignature

__all__ = ["AcceptSignature", "InterruptAckSignature", "LocalApic", "highest_set_bit"]


def highest_set_bit(m: Module, bits, name: str):
    """Combinational ``hsb(bits)``: returns ``(any, index)``; ``index`` is 0 when ``any`` is 0.

    A balanced tree of 2:1 multiplexers, depth log2(width).
    """
    width = len(bits)
    if width == 1:
        return bits[0], Const(0, 0)
    half = width // 2
    lo_any, lo_idx = highest_set_bit(m, bits[:half], f"{name}_lo")
    hi_any, hi_idx = highest_set_bit(m, bits[half:], f"{name}_hi")
    any_ = Signal(name=f"{name}_any")
    index = Signal(range(width), name=f"{name}_idx")
    m.d.comb += [
        any_.eq(lo_any | hi_any),
        index.eq(Mux(hi_any, Cat(hi_idx, Const(1, 1)), Cat(lo_idx, Const(0, 1)))),
    ]
    return any_, index


class AcceptSignature(wiring.Signature):
    """A fixed interrupt message arriving at the local APIC (SDM 10.8.4).

    Members
    -------
    valid : ``Out(1)``
        One-cycle strobe: accept ``vector`` at the next rising edge.
    vector : ``Out(8)``
        The interrupt vector.
    level : ``Out(1)``
        1 for level-triggered delivery (TMR bit set), 0 for edge (TMR bit cleared).
    """

    def __init__(self):
        super().__init__({"valid": Out(1), "vector": Out(8), "level": Out(1)})


class InterruptAckSignature(wiring.Signature):
    """The INTA handshake between the core (initiator) and the local APIC.

    Members
    -------
    valid : ``Out(1)``
        The core acknowledges at the next rising edge (one-cycle strobe).
    vector : ``In(8)``
        Combinational: ``hsb(IRR)`` if an interrupt is deliverable, else the spurious vector.
        Sample it in the cycle ``valid`` is high; the IRR-to-ISR move happens at that edge.
    """

    def __init__(self):
        super().__init__({"valid": Out(1), "vector": In(8)})


class LocalApic(wiring.Component):
    """IRR, ISR, TMR, TPR, PPR, spurious vector and ESR, with acceptance, INTA and EOI.

    Timing contract: all inputs are sampled at the rising edge of ``sync``; state outputs are
    registers; ``intr``, ``ppr`` and ``inta.vector`` are combinational from the registers.
    Within one cycle the operations compose as: IRR' = (IRR & ~acked) | accepted;
    ISR' = (ISR | acked) & ~eoied, where ``acked`` is computed from the IRR before the edge and
    ``eoied`` from the ISR before the edge. Drive at most one of ``inta.valid`` and ``eoi`` per
    cycle (the core never does both).

    Members
    -------
    accept : ``In(AcceptSignature())``
        Interrupt acceptance (APIC-2..5): vectors 0-15 set ESR bit 6 and change nothing else;
        otherwise IRR[v] := 1 (collapsing with a pending request) and TMR[v] := level.
    inta : ``In(InterruptAckSignature())``
        Acknowledge (APIC-9, APIC-10): moves ``hsb(IRR)`` to ISR if deliverable, else returns
        ``spurious_vector`` and changes nothing. Deliverability is re-checked at INTA time.
    eoi : ``In(1)``
        EOI write strobe (APIC-11, APIC-12): clears ``hsb(ISR)``; for a level-triggered vector,
        ``eoi_message`` pulses for one cycle after the edge with that vector.
    tpr_write : ``In(RegisterWriteSignature())``
        TPR write (APIC-7, APIC-13).
    spurious_vector : ``In(8)``
        SVR[7:0], the vector an INTA returns when nothing is deliverable.
    load : ``In(1)``; preload : ``In(LapicPreload)``
        State preload for test benches (initial scenario state); wins over every other input.
    intr : ``Out(1)``
        APIC-8: IRR != 0 and hsb(IRR)[7:4] > PPR[7:4].
    irr, isr, tmr : ``Out(256)``
        The registers; bit v is vector v (APIC-1).
    tpr, ppr : ``Out(8)``
        TPR register; PPR per SDM 10.8.3.1 (combinational from TPR and ISR).
    esr : ``Out(8)``
        Error status; bit 6 = receive illegal vector.
    eoi_message : ``Out(VectorStrobeSignature())``
        The EOI message to the I/O APICs for a level-triggered vector.
    """

    accept: In(AcceptSignature())
    inta: In(InterruptAckSignature())
    eoi: In(1)
    tpr_write: In(RegisterWriteSignature())
    spurious_vector: In(8, init=0xFF)
    load: In(1)
    preload: In(LapicPreload)

    intr: Out(1)
    irr: Out(256)
    isr: Out(256)
    tmr: Out(256)
    tpr: Out(8)
    ppr: Out(8)
    esr: Out(8)
    eoi_message: Out(VectorStrobeSignature())

    def elaborate(self, platform):
        m = Module()

        irr_any, irr_v = highest_set_bit(m, self.irr, "irrv")
        isr_any, isr_v = highest_set_bit(m, self.isr, "isrv")
        isrv = Mux(isr_any, isr_v, 0)

        # PPR (SDM 10.8.3.1, APIC-7)
        m.d.comb += self.ppr.eq(Mux(self.tpr[4:8] >= isrv[4:8], self.tpr, Cat(Const(0, 4),
                                                                             isrv[4:8])))
        # Deliverability (APIC-8)
        m.d.comb += self.intr.eq(irr_any & (irr_v[4:8] > self.ppr[4:8]))
        m.d.comb += self.inta.vector.eq(Mux(self.intr, irr_v, self.spurious_vector))

        acked = Signal(256)
        with m.If(self.inta.valid & self.intr):
            m.d.comb += acked.eq(Const(1, 256) << irr_v)

        eoied = Signal(256)
        with m.If(self.eoi & isr_any):
            m.d.comb += eoied.eq(Const(1, 256) << isr_v)

        legal = self.accept.vector[4:8] != 0
        accepted = Signal(256)
        with m.If(self.accept.valid & legal):
            m.d.comb += accepted.eq(Const(1, 256) << self.accept.vector)

        tmr_next = Signal(256)
        m.d.comb += tmr_next.eq(self.tmr)
        with m.If(self.accept.valid & legal):
            with m.If(self.accept.level):
                m.d.comb += tmr_next.eq(self.tmr | accepted)
            with m.Else():
                m.d.comb += tmr_next.eq(self.tmr & ~accepted)

        m.d.sync += self.eoi_message.valid.eq(0)
        with m.If(self.load):
            m.d.sync += [
                self.irr.eq(self.preload.irr),
                self.isr.eq(self.preload.isr),
                self.tmr.eq(self.preload.tmr),
                self.tpr.eq(self.preload.tpr),
                self.esr.eq(0),
            ]
        with m.Else():
            m.d.sync += [
                self.irr.eq((self.irr & ~acked) | accepted),
                self.isr.eq((self.isr | acked) & ~eoied),
                self.tmr.eq(tmr_next),
            ]
            with m.If(self.accept.valid & ~legal):
                m.d.sync += self.esr[6].eq(1)  # receive illegal vector
            with m.If(self.tpr_write.valid):
                m.d.sync += self.tpr.eq(self.tpr_write.value)
            with m.If(self.eoi & isr_any & self.tmr.bit_select(isr_v, 1)):
                m.d.sync += [self.eoi_message.valid.eq(1), self.eoi_message.vector.eq(isr_v)]

        return m

"""Posted-interrupt processing, steps 3-7 (SDM 29.6; clauses PI-6..PI-14 of
``docs/clauses.toml``). Steps 1-2 (acknowledge, compare with NV) are the caller's: the VM-exit logic
starts this unit only on a match.

Never enable postponed evaluation of annotations (PEP 563) here: it breaks ``Component`` ports.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from .lapic import highest_set_bit
from .layouts import NOTIFY_INFO_OFFSET, PIR_WORDS, WORD_BITS, NotifyInfo
from .memory import MemOp, MemorySignature
from .signatures import MergeSignature

__all__ = ["PiState", "PostedInterruptUnit"]

PIR_CHUNKS = PIR_WORDS  # PIR is harvested word by word (PI-10: any chunk width is allowed)
#: Step 3's mask: every NotifyInfo bit but ON (a locked AND clears ON and keeps the rest, PI-6)
CLEAR_ON_MASK = ~data.Layout.cast(NotifyInfo).const({"on": 1}).as_bits() & ((1 << WORD_BITS) - 1)


class PiState(enum.Enum, shape=3):
    """The unit's state, named for the SDM step it performs (shown by name in waveforms)."""

    IDLE = 0
    CLEAR_ON = 1  # step 3: locked AND of NotifyInfo with ~1
    EOI = 2  # step 4: EOI to the local APIC
    HARVEST = 3  # step 5: read-and-clear of each PIR word, OR into VIRR
    RVI = 4  # step 6 (RVI := max(RVI, hsb(S))) and step 7 (evaluate)


class PostedInterruptUnit(wiring.Component):
    """Runs SDM steps 3-7 on the descriptor at ``desc_addr`` through the memory port.

    Timing contract: ``start`` (one-cycle strobe) is taken in ``IDLE``; ``desc_addr`` is
    sampled with it. The unit then issues, in this order and each waiting for ``mem.ready``:
    one ``AND`` of NotifyInfo with ``~1`` (ON := 0, the other 63 bits untouched, PI-6); one
    ``eoi`` strobe (step 4, PI-7); one ``SWAP`` with 0 per PIR word (read-and-clear, PI-8..10),
    each harvested word merged into VIRR the same cycle through ``merge``; then one ``merge``
    cycle with ``merge.rvi_valid`` = (S != 0), ``merge.rvi_vector`` = hsb(S) and
    ``merge.evaluate`` = 1 (steps 6, 7; PI-11, PI-12). ``done`` pulses for one cycle after
    that. Only PIR words and ON are written (PI-13); SN, NV and NDST are never read or acted
    on (PI-14). With zero-wait memory a run takes 7 cycles from ``start`` to ``done``.

    Members
    -------
    start : ``In(1)``; desc_addr : ``In(64)``
    mem : ``Out(MemorySignature())``
    eoi : ``Out(1)``
        Step 4: an EOI write to the local APIC (one-cycle strobe).
    merge : ``Out(MergeSignature())``
        To ``VirtualInterrupt``: VIRR |= merge.bits; RVI := max(RVI, merge.rvi_vector);
        evaluate.
    harvested : ``Out(256)``
        S, the PIR bits this run moved into VIRR (valid from ``done``; for the decision trace).
    busy : ``Out(1)``; done : ``Out(1)``
    state : ``Out(PiState)``
    """

    start: In(1)
    desc_addr: In(64)
    mem: Out(MemorySignature())
    eoi: Out(1)
    merge: Out(MergeSignature())
    harvested: Out(256)
    busy: Out(1)
    done: Out(1)
    state: Out(PiState)

    def __init__(self):
        super().__init__()
        # internal registers, made here so that the property module (posted_interrupt_
        # properties.py) can state the invariants that close its induction
        self.base = Signal(64)  # the descriptor address sampled at ``start``
        self.chunk = Signal(range(PIR_CHUNKS))  # the PIR word being harvested

    def elaborate(self, platform):
        m = Module()
        addr = self.base
        chunk = self.chunk
        snap_any, snap_hsb = highest_set_bit(m, self.harvested, "snap")

        m.d.comb += self.busy.eq(self.state != PiState.IDLE)
        m.d.sync += self.done.eq(0)

        with m.Switch(self.state):
            with m.Case(PiState.IDLE):
                with m.If(self.start):
                    m.d.sync += [
                        addr.eq(self.desc_addr), chunk.eq(0), self.harvested.eq(0),
                        self.state.eq(PiState.CLEAR_ON),
                    ]
            with m.Case(PiState.CLEAR_ON):
                m.d.comb += [
                    self.mem.valid.eq(1), self.mem.op.eq(MemOp.AND),
                    self.mem.addr.eq(addr + NOTIFY_INFO_OFFSET),
                    self.mem.data.eq(CLEAR_ON_MASK),
                ]
                with m.If(self.mem.ready):
                    m.d.sync += self.state.eq(PiState.EOI)
            with m.Case(PiState.EOI):
                m.d.comb += self.eoi.eq(1)
                m.d.sync += self.state.eq(PiState.HARVEST)
            with m.Case(PiState.HARVEST):
                m.d.comb += [
                    self.mem.valid.eq(1), self.mem.op.eq(MemOp.SWAP),
                    self.mem.addr.eq(addr + chunk * (WORD_BITS // 8)), self.mem.data.eq(0),
                ]
                with m.If(self.mem.ready):
                    bits = Signal(256)
                    m.d.comb += [
                        bits.eq(self.mem.rdata << (chunk * WORD_BITS)),
                        self.merge.valid.eq(1), self.merge.bits.eq(bits),
                    ]
                    m.d.sync += [self.harvested.eq(self.harvested | bits), chunk.eq(chunk + 1)]
                    with m.If(chunk == PIR_CHUNKS - 1):
                        m.d.sync += self.state.eq(PiState.RVI)
            with m.Case(PiState.RVI):
                m.d.comb += [
                    self.merge.valid.eq(1), self.merge.rvi_valid.eq(snap_any),
                    self.merge.rvi_vector.eq(snap_hsb), self.merge.evaluate.eq(1),
                ]
                m.d.sync += [self.state.eq(PiState.IDLE), self.done.eq(1)]
        return m

"""The IPI-virtualization sender (SDM 30.1.6 pseudocode quoted in KVM commit 6e0b456547f4, with
the SDM guards; clauses IPIV-1..9 of ``docs/clauses.toml``).

Never enable postponed evaluation of annotations (PEP 563) here: it breaks ``Component`` ports.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

from .layouts import NOTIFY_INFO_OFFSET, NotifyInfo
from .memory import MemOp, MemorySignature

__all__ = ["IpiVirtualization", "IpivState"]

APIC_WRITE_ICR_OFFSET = 0x300  # exit qualification of the APIC-write VM exit


class IpivState(enum.Enum, shape=3):
    IDLE = 0
    READ_ENTRY = 1  # PID_ADDR := 8 bytes at table + (T << 3)
    POST_PIR = 2  # locked OR of bit V into its PIR word (IPIV-5)
    READ_NOTIFY = 3  # NotifyInfo := 8 bytes at PID_ADDR + 32 (under lock ...)
    WRITE_NOTIFY = 4  # ... ON := 1 if ON = 0 and SN = 0, by compare-and-swap (IPIV-6)
    SEND = 5  # the notification IPI (IPIV-7, IPIV-8)


class IpiVirtualization(wiring.Component):
    """A virtualized ICR write (fixed, physical, unicast) turned into a posted interrupt.

    Timing contract: ``send`` (one-cycle strobe, with ``vector`` and ``target``) is taken in
    ``IDLE``. Guards first, with no memory access: IPIV disabled (IPIV-1), V < 16 (IPIV-2) or
    T > ``last_pid_index`` (IPIV-3) pulse ``apic_write_exit`` (qualification 300H) the next
    cycle. Otherwise: one READ of the PID-pointer entry (bits 5:0 must be 000001b and no bit at
    or above ``maxphyaddr``, else the exit, IPIV-4); one OR of bit V into its PIR word (IPIV-5);
    then the NotifyInfo update as READ and CMPXCHG, repeated if another agent changed
    NotifyInfo in between, so that the update is indivisible and changes only ON (IPIV-6).
    ``notify`` pulses once, with NV and the destination, iff ON went from 0 to 1 (IPIV-7,
    IPIV-9). In xAPIC mode the destination is NDST[15:8], in x2APIC mode all of NDST (IPIV-8).
    ``done`` pulses when the send is over, whichever way it ended.

    Members
    -------
    send : ``In(1)``; vector : ``In(8)``; target : ``In(32)``
    enable : ``In(1)``
        Tertiary control "IPI virtualization" (bit 4).
    pid_table_addr : ``In(64)``; last_pid_index : ``In(16)``; maxphyaddr : ``In(6)``
    x2apic : ``In(1)``
        The physical local APIC's mode (selects the NDST encoding).
    mem : ``Out(MemorySignature())``
    apic_write_exit : ``Out(1)``; exit_qualification : ``Out(12)``
    notify : ``Out(1)``; notify_vector : ``Out(8)``; notify_dest : ``Out(32)``
    busy, done : ``Out(1)``; state : ``Out(IpivState)``
    """

    send: In(1)
    vector: In(8)
    target: In(32)
    enable: In(1)
    pid_table_addr: In(64)
    last_pid_index: In(16)
    maxphyaddr: In(6, init=46)
    x2apic: In(1)
    mem: Out(MemorySignature())
    apic_write_exit: Out(1)
    exit_qualification: Out(12)
    notify: Out(1)
    notify_vector: Out(8)
    notify_dest: Out(32)
    busy: Out(1)
    done: Out(1)
    state: Out(IpivState)

    def __init__(self):
        super().__init__()
        # internal registers, made here so that the property module (posting_properties.py)
        # can state the invariants that close its induction
        self.posted_vector = Signal(8)  # V, taken with ``send``
        self.pid_addr = Signal(64)  # the PID-pointer entry's address, then the descriptor's

    def elaborate(self, platform):
        m = Module()
        vector = self.posted_vector
        pid_addr = self.pid_addr
        notify_old = Signal(NotifyInfo)  # NotifyInfo as read, for the compare-and-swap
        notify_new = Signal(NotifyInfo)
        read_notify = NotifyInfo(self.mem.rdata)  # the memory word, viewed through the layout
        m.d.comb += [notify_new.eq(notify_old), notify_new.on.eq(1)]
        m.d.comb += [self.busy.eq(self.state != IpivState.IDLE),
                     self.exit_qualification.eq(APIC_WRITE_ICR_OFFSET)]
        m.d.sync += [self.apic_write_exit.eq(0), self.notify.eq(0), self.done.eq(0)]

        def finish(exit_):
            m.d.sync += [self.state.eq(IpivState.IDLE), self.done.eq(1)]
            if exit_:
                m.d.sync += self.apic_write_exit.eq(1)

        with m.Switch(self.state):
            with m.Case(IpivState.IDLE):
                with m.If(self.send):
                    m.d.sync += vector.eq(self.vector)
                    with m.If(~self.enable | (self.vector[4:8] == 0)
                              | (self.target > self.last_pid_index)):
                        finish(exit_=True)
                    with m.Else():
                        m.d.sync += [
                            pid_addr.eq(self.pid_table_addr + (self.target << 3)),
                            self.state.eq(IpivState.READ_ENTRY),
                        ]
            with m.Case(IpivState.READ_ENTRY):
                m.d.comb += [self.mem.valid.eq(1), self.mem.op.eq(MemOp.READ),
                             self.mem.addr.eq(pid_addr)]
                with m.If(self.mem.ready):
                    entry = self.mem.rdata
                    with m.If((entry[0:6] != 0b000001) | ((entry >> self.maxphyaddr) != 0)):
                        finish(exit_=True)
                    with m.Else():
                        m.d.sync += [pid_addr.eq(entry & ~0x3F), self.state.eq(IpivState.POST_PIR)]
            with m.Case(IpivState.POST_PIR):
                m.d.comb += [
                    self.mem.valid.eq(1), self.mem.op.eq(MemOp.OR),
                    self.mem.addr.eq(pid_addr + (vector[6:8] << 3)),  # PIR word V / 64
                    self.mem.data.eq(1 << vector[0:6]),
                ]
                with m.If(self.mem.ready):
                    m.d.sync += self.state.eq(IpivState.READ_NOTIFY)
            with m.Case(IpivState.READ_NOTIFY):
                m.d.comb += [self.mem.valid.eq(1), self.mem.op.eq(MemOp.READ),
                             self.mem.addr.eq(pid_addr + NOTIFY_INFO_OFFSET)]
                with m.If(self.mem.ready):
                    m.d.sync += notify_old.eq(read_notify)
                    with m.If(read_notify.on | read_notify.sn):  # ON or SN: no change
                        finish(exit_=False)
                    with m.Else():
                        m.d.sync += self.state.eq(IpivState.WRITE_NOTIFY)
            with m.Case(IpivState.WRITE_NOTIFY):
                m.d.comb += [
                    self.mem.valid.eq(1), self.mem.op.eq(MemOp.CMPXCHG),
                    self.mem.addr.eq(pid_addr + NOTIFY_INFO_OFFSET),
                    self.mem.compare.eq(notify_old), self.mem.data.eq(notify_new),
                ]
                with m.If(self.mem.ready):
                    with m.If(self.mem.rdata == notify_old.as_value()):
                        m.d.sync += self.state.eq(IpivState.SEND)
                    with m.Else():  # another agent changed NotifyInfo: redo the locked update
                        m.d.sync += self.state.eq(IpivState.READ_NOTIFY)
            with m.Case(IpivState.SEND):
                m.d.sync += [
                    self.notify.eq(1), self.notify_vector.eq(notify_old.nv),
                    self.notify_dest.eq(Mux(self.x2apic, notify_old.ndst,  # x2APIC: all of NDST
                                            notify_old.ndst[8:16])),  # xAPIC: NDST[15:8]
                ]
                finish(exit_=False)
        return m

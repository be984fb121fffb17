"""Formal properties of the real concurrent pair: the :class:`rtl.ipi_virtualization.
IpiVirtualization` sender (the seed's pseudocode) posting into the descriptor that the
:class:`rtl.posted_interrupt.PostedInterruptUnit` processes, both on one memory whose
operations are indivisible, in every interleaving.

The memory holds the descriptor at address 0 (PIR in words 0-3, NotifyInfo in word 4; ON = 0,
SN = 0, PIR empty at reset) and the sender's PID-pointer table at ``TABLE`` (every entry
points at the descriptor). Each cycle it answers at most one request: which of the two agents
goes first when both wait, and how long each waits, are free, so every order of their
operations is a trace. The sender takes any ``send`` (any vector and target); the unit starts
only on a notification the sender sent that no run has taken yet (``pending``: the local APIC
of the receiving CPU holds one IRR bit for the notification vector), never while a run is in
progress. Ghost state follows one vector, ``watch``: free in the first cycle, then fixed, so
what is proved of it is proved of every vector; it records whether the sender posted it and
whether the unit merged it into VIRR.

Properties (each statement's message is its name, with its clause IDs):

- no posted vector is lost (PI-9) and none is invented (PI-8), with the real sender;
- no vector is stranded: every PIR bit is harvested by the run in progress (the unit has not
  read its word yet) or notified afterwards (ON = 1, so a notification is owed or pending),
  or its sender is still between its post and its NotifyInfo update (IPIV-5, IPIV-6, IPIV-7,
  PI-10; C4, C23);
- a notification is sent only by a sender that set a PIR bit in this send and turned ON from
  0 to 1 (IPIV-7, IPIV-9); the run it triggers may find PIR already harvested (covered: C4,
  C23).

Never enable postponed evaluation of annotations (PEP 563) here.
"""

from amaranth.hdl import (
    Array,
    Assert,
    Assume,
    Cat,
    Cover,
    Elaboratable,
    Module,
    Mux,
    Signal,
)

from .ipi_virtualization import IpiVirtualization, IpivState
from .layouts import NOTIFY_INFO_OFFSET, PIR_WORDS, WORD_BITS, NotifyInfo
from .memory import MemOp
from .posted_interrupt import PiState, PostedInterruptUnit

__all__ = ["PostingProperties"]

#: The sender's PID-pointer table, above the descriptor: every entry is the descriptor's
#: address with the valid bit (bits 5:0 = 000001b, IPIV-4).
TABLE = 0x1000


class PostingProperties(Elaboratable):
    """The proof's top level: the sender, the unit, the shared memory, the arbiter and the
    ghost state. ``sender`` and ``unit`` are the classes under proof (design mutants from
    ``cosim.hardware.mutants`` in the tests)."""

    def __init__(self, sender=IpiVirtualization, unit=PostedInterruptUnit):
        self.sender = sender()
        self.unit = unit()
        self.send = Signal()
        self.vector = Signal(8)
        self.target = Signal(16)
        self.start = Signal()
        self.sender_first = Signal()  # both wait: the sender's request is answered first
        self.sender_ready = Signal()  # free latency of each agent's requests
        self.unit_ready = Signal()
        self.watch = Signal(8)  # the vector the ghost state follows (any, fixed in a trace)

    @property
    def ports(self):
        return [self.send, self.vector, self.target, self.start, self.sender_first,
                self.sender_ready, self.unit_ready, self.watch]

    def elaborate(self, platform):
        m = Module()
        m.submodules.sender = s = self.sender
        m.submodules.unit = u = self.unit
        m.d.comb += [
            s.send.eq(self.send), s.vector.eq(self.vector), s.target.eq(self.target),
            s.enable.eq(1), s.pid_table_addr.eq(TABLE), s.last_pid_index.eq(0xFFFF),
            s.maxphyaddr.eq(46), u.desc_addr.eq(0), u.start.eq(self.start),
        ]

        words = Array(Signal(WORD_BITS, name=f"pir{i}") for i in range(PIR_WORDS))
        notify = Signal(NotifyInfo)  # ON = 0, SN = 0 at reset
        pir = Cat(*words)

        # the arbiter: at most one indivisible operation per cycle, in any order
        to_sender = Signal()
        to_unit = Signal()
        m.d.comb += [
            to_sender.eq(s.mem.valid & self.sender_ready & (self.sender_first | ~u.mem.valid)),
            to_unit.eq(u.mem.valid & self.unit_ready & ~to_sender),
            s.mem.ready.eq(to_sender), u.mem.ready.eq(to_unit),
        ]
        op, addr, wdata, compare = (Signal.like(s.mem.op), Signal(64), Signal(WORD_BITS),
                                    Signal(WORD_BITS))
        with m.If(to_sender):
            m.d.comb += [op.eq(s.mem.op), addr.eq(s.mem.addr), wdata.eq(s.mem.data),
                         compare.eq(s.mem.compare)]
        with m.Else():
            m.d.comb += [op.eq(u.mem.op), addr.eq(u.mem.addr), wdata.eq(u.mem.data),
                         compare.eq(u.mem.compare)]
        answer = to_sender | to_unit
        index = addr[3:5]
        is_pir = addr < NOTIFY_INFO_OFFSET
        is_notify = addr == NOTIFY_INFO_OFFSET
        old = Signal(WORD_BITS)
        m.d.comb += old.eq(Mux(is_pir, words[index],
                               Mux(is_notify, notify.as_value(),
                                   Mux(addr >= TABLE, 1, 0))))  # the table's entries
        m.d.comb += [s.mem.rdata.eq(old), u.mem.rdata.eq(old)]
        new = Signal(WORD_BITS)
        with m.Switch(op):
            with m.Case(MemOp.SWAP, MemOp.WRITE):
                m.d.comb += new.eq(wdata)
            with m.Case(MemOp.OR):
                m.d.comb += new.eq(old | wdata)
            with m.Case(MemOp.AND):
                m.d.comb += new.eq(old & wdata)
            with m.Case(MemOp.CMPXCHG):
                m.d.comb += new.eq(Mux(old == compare, wdata, old))
            with m.Default():
                m.d.comb += new.eq(old)
        with m.If(answer & is_pir):
            m.d.sync += words[index].eq(new)
        with m.If(answer & is_notify):
            m.d.sync += notify.eq(new)

        # --- ghost state, about one vector: ``watch``, free and then fixed, so a property of
        # it holds for every vector -------------------------------------------------------
        watch = Signal(8)
        started = Signal()
        m.d.sync += [started.eq(1), watch.eq(self.watch)]
        m.d.comb += Assume(~started | (self.watch == watch), "the_watched_vector_is_fixed")
        word = watch[6:8]
        pir_w = pir.bit_select(watch, 1)  # the watched vector's PIR bit
        posted = Signal()  # the sender's OR set the watched vector's bit, ever
        merged = Signal()  # the unit merged it into VIRR, ever
        sender_or = to_sender & (op == MemOp.OR)
        with m.If(sender_or & (index == word) & wdata.bit_select(watch[0:6], 1)):
            m.d.sync += posted.eq(1)
        with m.If(u.merge.valid & u.merge.bits.bit_select(watch, 1)):
            m.d.sync += merged.eq(1)
        before, after = NotifyInfo(old), NotifyInfo(new)
        turned_on = Signal()  # the sender's CMPXCHG turned ON from 0 to 1 at this edge
        m.d.comb += turned_on.eq(to_sender & is_notify & (op == MemOp.CMPXCHG)
                                 & ~before.on & after.on)
        owed = Signal()  # a transition the sender made and has not notified yet
        m.d.sync += owed.eq((owed & ~s.notify) | turned_on)
        posted_this_send = Signal()  # the sender's OR of the send in progress was answered
        with m.If(s.done):
            m.d.sync += posted_this_send.eq(0)
        with m.Elif(sender_or):
            m.d.sync += posted_this_send.eq(1)
        pending = Signal()  # a notification sent that no run has taken yet
        with m.If(s.notify):
            m.d.sync += pending.eq(1)
        with m.Elif(self.start):
            m.d.sync += pending.eq(0)
        m.d.comb += Assume(~self.start | (pending & ~u.busy), "start_only_on_a_notification")

        sent_vector = s.posted_vector  # the vector of the send in progress
        updating = Signal()  # the sender is between its post and its NotifyInfo update
        m.d.comb += updating.eq((s.state == IpivState.READ_NOTIFY)
                                | (s.state == IpivState.WRITE_NOTIFY))
        will_harvest = Signal()  # the run in progress has still to read the watched word
        m.d.comb += will_harvest.eq((u.state == PiState.CLEAR_ON) | (u.state == PiState.EOI)
                                    | ((u.state == PiState.HARVEST) & (u.chunk <= word)))

        m.d.comb += [
            Assert(~posted | pir_w | merged, "PI_9_no_vector_the_sender_posted_is_lost"),
            Assert(~merged | posted, "PI_8_only_posted_vectors_are_merged"),
            Assert(~pir_w | posted, "helper_pir_holds_only_posted_vectors"),
            Assert(~pir_w | notify.on | will_harvest | (updating & (sent_vector == watch)),
                   "PI_10_IPIV_5_6_7_every_pir_bit_harvested_or_notified"),
            Assert(~s.notify | (owed & posted_this_send),
                   "IPIV_7_9_notified_only_by_a_sender_that_posted_and_turned_on_on"),
            Assert(~notify.on | pending | owed | (u.state == PiState.CLEAR_ON),
                   "helper_on_means_a_run_is_owed"),
            Assert(~pending | (notify.on & (u.state != PiState.CLEAR_ON) & ~owed),
                   "helper_pending_means_on_set_and_not_yet_cleared"),
            Assert(~notify.sn, "helper_sn_stays_clear"),
            Assert(~(u.state == PiState.CLEAR_ON) | notify.on,
                   "helper_a_run_starts_with_on_set"),
            Assert(~owed | (s.state == IpivState.SEND) | s.notify, "helper_owed_means_send"),
            Assert(~owed | notify.on, "helper_owed_means_on_set"),
            Assert(~(s.state == IpivState.SEND) | owed, "helper_send_state_owes"),
            Assert(~updating | posted_this_send, "helper_update_follows_the_post"),
            Assert(~(s.state == IpivState.WRITE_NOTIFY)
                   | (~NotifyInfo(s.mem.compare).on & ~NotifyInfo(s.mem.compare).sn),
                   "helper_the_update_expects_on_and_sn_clear"),
            Assert(~s.busy | (s.state == IpivState.READ_ENTRY) | (s.state == IpivState.POST_PIR)
                   | posted_this_send, "helper_post_precedes_the_rest_of_a_send"),
            Assert(~u.busy | (u.base == 0), "helper_the_unit_processes_the_descriptor"),
            Assert(~((u.state == PiState.CLEAR_ON) | (u.state == PiState.EOI))
                   | (u.chunk == 0), "helper_a_run_harvests_from_the_first_word"),
            Assert(~(s.state == IpivState.READ_ENTRY) | (s.pid_addr >= TABLE),
                   "helper_the_sender_reads_its_entry_from_the_table"),
            Assert(~s.busy | (s.state == IpivState.READ_ENTRY) | (s.pid_addr == 0),
                   "helper_the_sender_posts_to_the_descriptor"),
            Cover(s.notify & u.busy, "cover_C23_notification_during_a_run"),
            Cover(sender_or & (u.state == PiState.HARVEST), "cover_PI_9_post_during_the_harvest"),
            Cover(self.start & (pir == 0) & merged, "cover_C4_a_run_finds_pir_already_harvested"),
            Cover(u.done & merged & ~pir_w & ~pending, "cover_PI_9_the_watched_vector_merged"),
        ]
        return m

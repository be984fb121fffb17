"""Formal properties of :class:`rtl.ipi_virtualization.IpiVirtualization`, the seed's own
pseudocode: one notification per 0-to-1 transition of ON made by this sender, and none
otherwise (IPIV-7, IPIV-9); the NotifyInfo update changes only ON (IPIV-6); the PIR update
sets exactly one bit (IPIV-5).

Every input is free, and so is the memory: the PID-pointer entry the sender reads, the
latency of every request, and another agent that may rewrite NotifyInfo to any value at any
edge, before or after the sender's own operation (the receiving CPU clearing ON, software
setting SN, another sender setting ON). Ghost state ``owed`` records a transition this sender
made and has not notified yet. Each statement's message is its name, with its clause IDs.

Never enable postponed evaluation of annotations (PEP 563) here.
"""

from amaranth.hdl import Assert, Cover, Elaboratable, Module, Mux, Signal

from .ipi_virtualization import IpiVirtualization, IpivState
from .layouts import NotifyInfo
from .memory import MemOp

__all__ = ["IpiVirtualizationProperties"]


class IpiVirtualizationProperties(Elaboratable):
    """The proof's top level. ``mutant`` "notify_twice" pretends every notification is owed
    twice over (a broken reading), for the test that the proof can fail."""

    def __init__(self, mutant: str | None = None):
        self.sender = IpiVirtualization()
        self.mutant = mutant
        self.entry = Signal(64)  # the PID-pointer entry the memory returns
        self.ready = Signal()
        self.agent_valid = Signal()
        self.agent_value = Signal(64)
        self.agent_first = Signal()

    @property
    def ports(self):
        s = self.sender
        return [s.send, s.vector, s.target, s.enable, s.pid_table_addr, s.last_pid_index,
                s.maxphyaddr, s.x2apic, self.entry, self.ready, self.agent_valid,
                self.agent_value, self.agent_first]

    def elaborate(self, platform):
        m = Module()
        m.submodules.sender = s = self.sender
        mem = s.mem
        notify = Signal(NotifyInfo)  # the descriptor's NotifyInfo word
        on_notify = (s.state == IpivState.READ_NOTIFY) | (s.state == IpivState.WRITE_NOTIFY)
        before = Signal(64)  # NotifyInfo as the sender's operation finds it
        m.d.comb += before.eq(Mux(self.agent_valid & self.agent_first, self.agent_value,
                                  notify.as_value()))
        answer = mem.valid & self.ready
        m.d.comb += [
            mem.ready.eq(answer),
            mem.rdata.eq(Mux(s.state == IpivState.READ_ENTRY, self.entry,
                             Mux(on_notify, before, 0))),
        ]
        swapped = Signal()  # this edge, the sender's CMPXCHG succeeded
        m.d.comb += swapped.eq(answer & (mem.op == MemOp.CMPXCHG) & (before == mem.compare))
        after = Mux(swapped, mem.data, before)
        with m.If(self.agent_valid & ~self.agent_first):
            m.d.sync += notify.eq(self.agent_value)
        with m.Elif(on_notify & answer):
            m.d.sync += notify.eq(after)
        with m.Elif(self.agent_valid):
            m.d.sync += notify.eq(self.agent_value)

        turned_on = Signal()  # the sender's own update turned ON from 0 to 1
        old, new = NotifyInfo(before), NotifyInfo(mem.data)
        m.d.comb += turned_on.eq(swapped & ~old.on & new.on)
        owed = Signal()
        m.d.sync += owed.eq((owed & ~s.notify) | turned_on)
        settled_owed = owed if self.mutant != "notify_twice" else owed & ~owed
        compare = NotifyInfo(mem.compare)

        # --- the guards (IPIV-1..4) and the destination (IPIV-8) ------------------------------
        swapped_from = Signal(NotifyInfo)  # NotifyInfo as the sender's successful CMPXCHG found it
        with m.If(swapped):
            m.d.sync += swapped_from.eq(before)
        x2apic = Signal()  # the local APIC's mode as the notification is sent (SEND state)
        m.d.sync += x2apic.eq(s.x2apic)
        taken = ~s.busy & s.send  # the send is taken at this edge
        guard_exit = Signal()  # IPIV-1..3: the guards that allow no memory access
        m.d.comb += guard_exit.eq(~s.enable | (s.vector < 16) | (s.target > s.last_pid_index))
        exit_owed = Signal()  # a guard or a bad entry stopped the send: the exit is next
        entry_bad = Signal()
        m.d.comb += entry_bad.eq((self.entry[0:6] != 0b000001)
                                 | ((self.entry >> s.maxphyaddr) != 0))
        read_entry = (s.state == IpivState.READ_ENTRY) & answer
        m.d.sync += exit_owed.eq((taken & guard_exit) | (read_entry & entry_bad))
        table_addr = Signal(64)  # where the entry must be read: table + 8 x index
        with m.If(taken):
            m.d.sync += table_addr.eq(s.pid_table_addr + (s.target << 3))
        entry_taken = Signal()  # the valid entry read, for the descriptor accesses after it
        desc = Signal(64)
        with m.If(read_entry):
            m.d.sync += [entry_taken.eq(~entry_bad), desc.eq(self.entry & ~0x3F)]
        with m.If(s.done):
            m.d.sync += entry_taken.eq(0)
        after_entry = ((s.state == IpivState.POST_PIR) | (s.state == IpivState.READ_NOTIFY)
                       | (s.state == IpivState.WRITE_NOTIFY))
        m.d.comb += [
            Assert(~s.apic_write_exit | exit_owed, "IPIV_1_2_3_4_apic_write_exit_only_on_a_guard"),
            Assert(~exit_owed | (s.apic_write_exit & (s.exit_qualification == 0x300)
                                 & ~s.busy & ~s.notify),
                   "IPIV_1_2_3_4_a_guard_exits_with_qualification_300h"),
            Assert(~((s.state == IpivState.READ_ENTRY) & mem.valid)
                   | ((mem.op == MemOp.READ) & (mem.addr == table_addr)),
                   "IPIV_4_the_entry_is_read_at_table_plus_8_index"),
            Assert(~(after_entry & mem.valid)
                   | (entry_taken & (mem.addr >= desc) & (mem.addr < desc + 40)),
                   "IPIV_4_descriptor_accessed_only_through_a_valid_entry"),
            Assert(~(s.state == IpivState.READ_ENTRY) | (s.pid_addr == table_addr),
                   "helper_the_entry_address_is_kept"),
            Assert(~(after_entry | (s.state == IpivState.SEND))
                   | (entry_taken & (s.pid_addr == desc) & (desc[0:6] == 0)
                      & (desc[63] == 0)),
                   "helper_the_descriptor_address_is_the_valid_entry"),
            Assert(~s.notify | (s.notify_vector == swapped_from.nv),
                   "IPIV_8_notification_vector_is_nv"),
            Assert(~s.notify | (s.notify_dest == Mux(x2apic, swapped_from.ndst,
                                                     swapped_from.ndst[8:16])),
                   "IPIV_8_destination_ndst_or_ndst_15_8"),
            Cover(s.apic_write_exit & ~s.enable, "cover_IPIV_1_disabled_exits"),
            Cover(read_entry & entry_bad & ~self.entry[0], "cover_IPIV_4_bad_entry_exits"),
            Cover(s.notify & x2apic, "cover_IPIV_8_x2apic_notification"),
            Cover(s.notify & ~x2apic, "cover_IPIV_8_xapic_notification"),
        ]

        m.d.comb += [
            Assert(~s.notify | settled_owed, "IPIV_7_9_notification_only_for_an_on_transition"),
            Assert(s.busy | s.notify | ~owed, "IPIV_7_every_transition_is_notified"),
            Assert(~owed | ~turned_on, "IPIV_7_one_notification_per_transition"),
            Assert(~(mem.valid & (mem.op == MemOp.CMPXCHG))
                   | ((mem.data == (mem.compare | 1)) & ~compare.on & ~compare.sn),
                   "IPIV_6_update_changes_only_on_and_only_from_0_with_sn_0"),
            Assert(~(mem.valid & (mem.op == MemOp.OR))
                   | ((mem.data != 0) & ((mem.data & (mem.data - 1)) == 0)),
                   "IPIV_5_pir_update_sets_one_bit"),
            # with the guards' exit in the cycle after the send (the sender idle, above):
            # a send a guard stops makes no memory access (IPIV-2, IPIV-3)
            Assert(~(mem.valid & ~s.busy), "IPIV_2_3_memory_only_while_busy"),
            Assert(~owed | (s.state == IpivState.SEND) | s.notify, "helper_owed_means_send"),
            Cover(s.notify, "cover_IPIV_7_notification_sent"),
            Cover(answer & (mem.op == MemOp.CMPXCHG) & ~swapped,
                  "cover_IPIV_6_update_retried_after_another_agent"),
            Cover(s.done & ~s.notify & (s.state == IpivState.IDLE) & old.on,
                  "cover_IPIV_9_on_already_set_no_notification"),
        ]
        return m

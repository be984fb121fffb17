"""Formal properties of the posted-interrupt descriptor's layout (PI-1) as the two units that
touch it use it: :class:`rtl.posted_interrupt.PostedInterruptUnit` (the receiving CPU's steps
3 and 5) and :class:`rtl.ipi_virtualization.IpiVirtualization` (a sender).

PI-1 (SDM 29.6, Table 29-1): the descriptor is 64 bytes at a 64-byte-aligned address; PIR is
bits 255:0 (bit v for vector v), ON bit 256, SN bit 257, NV bits 279:272 and NDST bits
319:288. The bit numbers below are the clause's, written out here and not taken from
``rtl/layouts.py``, so that the proof checks the layouts the units are built from: every
request of either unit stays inside the 64 bytes at the descriptor's address, 8-byte
aligned; step 3 clears bit 256 and nothing else (SN, NV and NDST are kept); step 5 reads
bits 255:0 and merges descriptor bit v as vector v; the sender sets bit v of PIR for vector
v, reads NotifyInfo where bits 256-319 are, refuses when bit 257 (SN) is set, sets bit 256
only, and notifies with bits 279:272 as the vector and bits 319:288 as the destination
(bits 303:296 in xAPIC mode). The 64-byte alignment of the address itself is a VM-entry
check (EXT-6, proved at the top level); here the unit's address is assumed aligned at
``start``, as a successful VM entry guarantees, and the sender's comes from a PID-pointer
entry whose low 6 bits it masks.

Every input is free: the descriptor address (and its changes while the unit runs), the memory
answers and their latency, the sender's requests. Each statement's message is its name, with
its clause IDs. Never enable postponed evaluation of annotations (PEP 563) here.
"""

from amaranth.hdl import Assert, Assume, Const, Cover, Elaboratable, Module, Signal

from .ipi_virtualization import IpiVirtualization, IpivState
from .memory import MemOp
from .posted_interrupt import PostedInterruptUnit

__all__ = ["DescriptorLayoutProperties"]

#: PI-1, SDM 29.6 Table 29-1: the descriptor's size and its fields' bit numbers
SIZE_BYTES = 64
PIR_BITS = 256  # 255:0
ON_BIT = 256
SN_BIT = 257
NV_BITS = (272, 280)  # 279:272
NDST_BITS = (288, 320)  # 319:288
WORD = 64  # the memory port's word, in bits


class DescriptorLayoutProperties(Elaboratable):
    """The proof's top level: a posted-interrupt unit and an IPI-virtualization sender, each
    with its own free memory (they do not interact here: their interleavings on one memory
    are ``rtl/posting_properties.py``'s). ``unit`` is the posted-interrupt unit's class under
    proof (a design mutant from ``cosim.hardware.mutants`` in the tests)."""

    def __init__(self, unit=PostedInterruptUnit):
        self.unit = unit()
        self.sender = IpiVirtualization()
        self.start = Signal()
        self.desc_addr = Signal(64)
        self.unit_ready = Signal()
        self.unit_rdata = Signal(WORD)
        self.sender_ready = Signal()
        self.sender_rdata = Signal(WORD)

    @property
    def ports(self):
        s = self.sender
        return [self.start, self.desc_addr, self.unit_ready, self.unit_rdata,
                self.sender_ready, self.sender_rdata, s.send, s.vector, s.target, s.enable,
                s.pid_table_addr, s.last_pid_index, s.maxphyaddr, s.x2apic]

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = u = self.unit
        m.submodules.sender = s = self.sender
        self._unit(m, u)
        self._sender(m, s)
        return m

    def _unit(self, m, u):
        mem = u.mem
        m.d.comb += [u.start.eq(self.start), u.desc_addr.eq(self.desc_addr),
                     mem.ready.eq(mem.valid & self.unit_ready), mem.rdata.eq(self.unit_rdata)]
        m.d.comb += [Assume(~self.start | ~u.busy, "start_only_when_idle"),
                     Assume(~self.start | (self.desc_addr[0:6] == 0),
                            "the_address_is_aligned_after_vm_entry")]
        base = Signal(64)  # the descriptor's address as the run took it
        with m.If(self.start & ~u.busy):
            m.d.sync += base.eq(self.desc_addr)
        offset = mem.addr - base
        answer = mem.valid & mem.ready
        keep = Const((1 << WORD) - 1 - (1 << (ON_BIT % WORD)), WORD)
        m.d.comb += [
            Assert(~u.busy | (u.base == base), "helper_the_run_keeps_its_address"),
            Assert(~mem.valid | ((offset < SIZE_BYTES) & (mem.addr[0:3] == 0)),
                   "PI_1_the_unit_stays_in_the_64_bytes_at_the_descriptor_address"),
            Assert(~(mem.valid & (mem.op == MemOp.AND))
                   | ((offset == ON_BIT // 8) & (mem.data == keep)),
                   "PI_1_step_3_clears_bit_256_and_keeps_sn_nv_ndst"),
            Assert(~(mem.valid & (mem.op == MemOp.SWAP)) | (offset < PIR_BITS // 8),
                   "PI_1_step_5_reads_bits_255_0"),
            Assert(~(answer & (mem.op == MemOp.SWAP))
                   | (u.merge.valid & (u.merge.bits == (self.unit_rdata << (offset[0:5] * 8)))),
                   "PI_1_descriptor_bit_v_is_vector_v"),
            Cover(answer & (mem.op == MemOp.AND) & (base[6:] != 0),
                  "cover_PI_1_step_3_at_a_nonzero_address"),
            Cover(answer & (mem.op == MemOp.SWAP) & (offset == 24) & self.unit_rdata[63]
                  & (base[6:] != 0), "cover_PI_1_vector_255_harvested"),
        ]

    def _sender(self, m, s):
        mem = s.mem
        answer = mem.valid & self.sender_ready
        m.d.comb += [mem.ready.eq(answer), mem.rdata.eq(self.sender_rdata)]
        vector = Signal(8)  # V, as the send was taken
        with m.If(s.send & ~s.busy):
            m.d.sync += vector.eq(s.vector)
        swapped = Signal(WORD)  # NotifyInfo as the sender's successful CMPXCHG found it
        with m.If(answer & (mem.op == MemOp.CMPXCHG) & (self.sender_rdata == mem.compare)):
            m.d.sync += swapped.eq(mem.compare)
        sn_seen = Signal()  # at the last edge the sender read NotifyInfo with SN set
        m.d.sync += sn_seen.eq(answer & (s.state == IpivState.READ_NOTIFY)
                               & self.sender_rdata[SN_BIT - ON_BIT])
        x2apic = Signal()
        m.d.sync += x2apic.eq(s.x2apic)
        desc = s.pid_addr  # in the states after the entry: the descriptor's address
        on_desc = ((s.state == IpivState.POST_PIR) | (s.state == IpivState.READ_NOTIFY)
                   | (s.state == IpivState.WRITE_NOTIFY))
        notify_word = ON_BIT // WORD * (WORD // 8)  # the byte offset of bits 319:256
        nv = swapped[NV_BITS[0] - ON_BIT:NV_BITS[1] - ON_BIT]
        ndst = swapped[NDST_BITS[0] - ON_BIT:NDST_BITS[1] - ON_BIT]
        m.d.comb += [
            Assert(~s.busy | (s.posted_vector == vector), "helper_the_send_keeps_its_vector"),
            Assert(~on_desc | (desc[0:6] == 0), "helper_the_descriptor_address_is_aligned"),
            Assert(~(on_desc & mem.valid)
                   | ((mem.addr - desc < SIZE_BYTES) & (mem.addr[0:3] == 0)),
                   "PI_1_the_sender_stays_in_the_64_bytes_of_the_descriptor"),
            Assert(~(mem.valid & (mem.op == MemOp.OR))
                   | ((mem.addr == desc + (vector >> 6) * 8)
                      & (mem.data == (Const(1, WORD) << vector[0:6]))),
                   "PI_1_IPIV_5_the_sender_sets_pir_bit_v"),
            Assert(~(mem.valid & ((s.state == IpivState.READ_NOTIFY)
                                  | (s.state == IpivState.WRITE_NOTIFY)))
                   | (mem.addr == desc + notify_word), "PI_1_notify_info_is_bits_319_256"),
            Assert(~(mem.valid & (mem.op == MemOp.CMPXCHG))
                   | (mem.data == (mem.compare | (1 << (ON_BIT % WORD)))),
                   "PI_1_IPIV_6_the_sender_sets_bit_256_only"),
            Assert(~sn_seen | ~s.busy, "PI_1_IPIV_9_bit_257_suppresses_the_update"),
            Assert(~s.notify | (s.notify_vector == nv), "PI_1_IPIV_8_nv_is_bits_279_272"),
            Assert(~s.notify | ~x2apic | (s.notify_dest == ndst),
                   "PI_1_IPIV_8_x2apic_destination_is_bits_319_288"),
            Assert(~s.notify | x2apic | (s.notify_dest == ndst[8:16]),
                   "PI_1_IPIV_8_xapic_destination_is_bits_303_296"),
            Cover(s.notify & (nv != 0) & x2apic & (ndst[16:] != 0),
                  "cover_PI_1_notification_with_nv_and_ndst"),
            Cover(sn_seen, "cover_PI_1_sn_suppresses"),
        ]

"""Formal properties of :class:`rtl.posted_interrupt.PostedInterruptUnit` with an adversarial
concurrent writer: no posted bit is ever lost (PI-9) or invented (PI-8), the unit touches
only what steps 3 and 5 allow (PI-13, PI-14, PI-6), and one run performs the steps in the
SDM's order: ON cleared once (step 3), then the EOI (step 4), then each PIR word read and
cleared once, in order, each merged into VIRR as it is read (step 5), then RVI and the
evaluation (steps 6-7) after the whole PIR (PI-6, PI-7, PI-10, PI-11, PI-12). VIRR changes
only with a harvested word or the final step.

The proof's memory holds the descriptor (PIR in words 0-3, NotifyInfo in word 4, at address 0)
and performs every request indivisibly after a free number of cycles. Another agent ORs free
bits into any PIR word at any edge, before or after the unit's operation on the same edge
(both interleavings are free). Ghost state records every bit the agent ever posted and every
bit the unit merged into VIRR; the properties relate them to the memory in every reachable
state (k-induction). Each statement's message is its name, with its clause IDs.

Never enable postponed evaluation of annotations (PEP 563) here.
"""

from amaranth.hdl import Array, Assert, Assume, Cat, Cover, Elaboratable, Module, Mux, Signal

from .layouts import NOTIFY_INFO_OFFSET, PIR_WORDS, WORD_BITS
from .memory import MemOp
from .posted_interrupt import CLEAR_ON_MASK, PiState, PostedInterruptUnit

__all__ = ["PostedInterruptProperties"]


class PostedInterruptProperties(Elaboratable):
    """The proof's top level: the unit, the memory, the adversary and the ghost state.
    ``mutant`` "drop_merge" ignores one harvested word (a broken reading), for the test that
    the proof can fail; ``design`` is the class under proof (a design mutant from
    ``cosim.hardware.mutants`` in the tests)."""

    def __init__(self, mutant: str | None = None, design=PostedInterruptUnit):
        self.unit = design()
        self.mutant = mutant
        self.start = Signal()
        self.ready = Signal()  # the memory answers in this cycle (free latency)
        self.post_valid = Signal()
        self.post_word = Signal(2)
        self.post_bits = Signal(WORD_BITS)
        self.post_first = Signal()  # the agent's OR lands before the unit's operation

    @property
    def ports(self):
        return [self.start, self.ready, self.post_valid, self.post_word, self.post_bits,
                self.post_first]

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = u = self.unit
        words = Array(Signal(WORD_BITS, name=f"pir{i}") for i in range(PIR_WORDS))
        notify = Signal(WORD_BITS, init=1)  # ON = 1: a notification is outstanding
        ghost_posted = Signal(PIR_WORDS * WORD_BITS)
        merged = Signal(PIR_WORDS * WORD_BITS)
        pir = Cat(*words)

        m.d.comb += [u.start.eq(self.start), u.desc_addr.eq(0)]
        mem = u.mem
        index = mem.addr[3:5]  # the PIR word of an address below NotifyInfo
        is_pir = mem.addr < NOTIFY_INFO_OFFSET
        old = Signal(WORD_BITS)
        posted_here = Signal()  # the agent posts to the word the unit operates on now
        m.d.comb += posted_here.eq(self.post_valid & is_pir & (self.post_word == index))
        m.d.comb += old.eq(Mux(is_pir, words[index], notify)
                           | Mux(posted_here & self.post_first, self.post_bits, 0))
        answer = mem.valid & self.ready
        m.d.comb += [mem.ready.eq(answer), mem.rdata.eq(old)]

        new = Signal(WORD_BITS)
        with m.Switch(mem.op):
            with m.Case(MemOp.SWAP, MemOp.WRITE):
                m.d.comb += new.eq(mem.data)
            with m.Case(MemOp.OR):
                m.d.comb += new.eq(old | mem.data)
            with m.Case(MemOp.AND):
                m.d.comb += new.eq(old & mem.data)
            with m.Case(MemOp.CMPXCHG):
                m.d.comb += new.eq(Mux(old == mem.compare, mem.data, old))
            with m.Default():
                m.d.comb += new.eq(old)
        late = Mux(posted_here & ~self.post_first, self.post_bits, 0)
        with m.If(answer & is_pir):
            m.d.sync += words[index].eq(new | late)
        with m.If(answer & ~is_pir):
            m.d.sync += notify.eq(new)
        with m.If(self.post_valid & ~(answer & posted_here)):
            m.d.sync += words[self.post_word].eq(words[self.post_word] | self.post_bits)
        with m.If(self.post_valid):
            m.d.sync += ghost_posted.eq(ghost_posted
                                        | (self.post_bits << (self.post_word * WORD_BITS)))
        merge_bits = u.merge.bits
        if self.mutant == "drop_merge":
            merge_bits = Mux(index == 3, 0, u.merge.bits)
        with m.If(u.merge.valid):
            m.d.sync += merged.eq(merged | merge_bits)

        # --- the SDM order of one processing run (steps 3, 4, 5 word by word, 6-7) ------------
        # ghost state of the run in progress, cleared when the unit takes ``start``
        on_cleared = Signal()  # step 3's AND of NotifyInfo answered
        eoi_sent = Signal()  # step 4's EOI strobe
        words_read = Signal(PIR_WORDS)  # step 5's SWAP of each PIR word answered
        with m.If(self.start & ~u.busy):
            m.d.sync += [on_cleared.eq(0), eoi_sent.eq(0), words_read.eq(0)]
        with m.Else():
            with m.If(answer & ~is_pir & (mem.op == MemOp.AND)):
                m.d.sync += on_cleared.eq(1)
            with m.If(u.eoi):
                m.d.sync += eoi_sent.eq(1)
            with m.If(answer & is_pir & (mem.op == MemOp.SWAP)):
                m.d.sync += words_read.eq(words_read | (1 << index))
        all_read = (1 << PIR_WORDS) - 1
        with m.Switch(u.state):  # the invariants that close the induction, per unit state
            with m.Case(PiState.CLEAR_ON):
                m.d.comb += Assert(~on_cleared & ~eoi_sent & (words_read == 0)
                                   & (u.chunk == 0), "helper_clear_on_state_has_done_nothing")
            with m.Case(PiState.EOI):
                m.d.comb += Assert(on_cleared & ~eoi_sent & (words_read == 0) & (u.chunk == 0),
                                   "helper_eoi_state_follows_step_3")
            with m.Case(PiState.HARVEST):
                m.d.comb += Assert(on_cleared & eoi_sent
                                   & (words_read == (1 << u.chunk) - 1),
                                   "helper_harvest_state_has_read_the_words_before_its_chunk")
            with m.Case(PiState.RVI):
                m.d.comb += Assert(on_cleared & eoi_sent & (words_read == all_read),
                                   "helper_rvi_state_follows_the_whole_harvest")
        m.d.comb += [
            Assert(~(answer & ~is_pir & (mem.op == MemOp.AND)) | ~on_cleared,
                   "PI_6_on_cleared_once_per_run"),
            Assert(~u.eoi | (on_cleared & (words_read == 0)),
                   "PI_7_eoi_after_step_3_and_before_step_5"),
            Assert(~(mem.valid & is_pir) | (on_cleared & eoi_sent),
                   "PI_10_on_cleared_before_pir_is_read"),
            Assert(~(answer & is_pir) | (words_read == (1 << index) - 1),
                   "PI_10_each_pir_word_read_once_in_order"),
            Assert(~(u.merge.valid & u.merge.evaluate) | (words_read == all_read),
                   "PI_11_12_rvi_and_evaluation_after_the_whole_pir"),
            Assert(~u.merge.valid | u.merge.evaluate | (answer & is_pir),
                   "PI_5_virr_changes_only_with_a_harvested_word"),
            Assert(~(answer & is_pir) | (u.merge.valid
                                         & (u.merge.bits == (Cat(old) << (index * WORD_BITS)))),
                   "PI_17_each_harvested_word_is_merged_whole"),
            Cover(u.done & on_cleared & eoi_sent & (words_read == all_read),
                  "cover_PI_6_7_10_11_12_a_whole_run_in_order"),
        ]

        m.d.comb += [
            Assume(~self.start | ~u.busy, "start_only_when_idle"),
            Assert(u.base == 0, "helper_the_base_is_the_descriptor"),
            Assert((ghost_posted & ~(pir | merged)) == 0, "PI_9_no_posted_bit_is_lost"),
            Assert((merged & ~ghost_posted) == 0, "PI_8_only_posted_bits_are_merged"),
            Assert((pir & ~ghost_posted) == 0, "helper_pir_holds_only_posted_bits"),
            Assert(~mem.valid
                   | ((mem.op == MemOp.AND) & (mem.addr == NOTIFY_INFO_OFFSET)
                      & (mem.data == CLEAR_ON_MASK))
                   | ((mem.op == MemOp.SWAP) & is_pir & (mem.addr[0:3] == 0)
                      & (mem.data == 0)),
                   "PI_6_13_14_only_clear_on_and_read_and_clear_pir"),
            Cover(answer & posted_here & (mem.op == MemOp.SWAP) & self.post_first,
                  "cover_PI_9_post_before_the_harvest_of_its_word"),
            Cover(answer & posted_here & (mem.op == MemOp.SWAP) & ~self.post_first,
                  "cover_PI_9_post_after_the_harvest_of_its_word"),
            Cover(u.done & (merged != 0) & (pir != 0), "cover_PI_9_bits_merged_and_left"),
            Cover(answer & is_pir & (index == 0) & (old[0:16] != 0),
                  "cover_PI_17_a_bit_below_16_harvested"),
        ]
        return m


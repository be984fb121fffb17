"""The accelerated testbench: the driver, the memory responder and the monitor as a
synthesizable Amaranth harness around ``rtl.top.InterruptPath``, so that a simulator runs a
whole batch of scenarios without Python in the loop (``docs/architecture.md``).

This is testbench code, never part of the design under test: ``python -m rtl`` exports the
design alone; the cosimulation backends export :class:`Harness`, which instantiates the design
as its submodule ``dut``.

How a batch runs
----------------
Python encodes each job (:class:`JobRecord`: the scenario's controls and initial state, its
events, the memory seed and other agents' posts) and writes them into the job memory
(:attr:`Harness.jobs`), one wide word per job; it pulses ``start``; the harness runs job after
job and writes :class:`ResultRecord` words into the result memory (:attr:`Harness.results`):
a ``CYCLE`` record for every cycle in which the design pulsed a strobe (VM exit, failed VM
entry, delivery to L2, EOI message), a ``STEP`` record with the architectural state after
every event and drain step, and an ``END`` record per job. ``done`` rises when the batch is
finished or the result memory is close to full (``job`` then says where to resume).
``cosim.hardware.testbench`` encodes and decodes; the layouts below are the one definition of
both formats.

Cycle-accurate contract (the same as the Python testbench it replaces)
----------------------------------------------------------------------
The design is clocked only in *testbench cycles* (``dut_en``); the harness's own bookkeeping
cycles (fetching a job, writing a record, choosing the next event) leave it frozen, so cycle
counts and every race are exactly those of a testbench that steps the design cycle by cycle:

- per job: one reset cycle (not counted), one cycle with ``load`` (the preload), for
  ``start = "l2"`` one cycle with ``vm_entry``, then settling;
- per event: one cycle with the event's strobe (none for ``post``, whose two locked ORs land
  before the first settling cycle), then settling: cycles until :data:`SETTLE_CYCLES` in a row
  showed no strobe and no posted-interrupt processing (more than
  :data:`MAX_CYCLES_PER_EVENT` is a hang);
- an event that needs a mode the design is not in ends the job (``IMPOSSIBLE``);
- after the last event, the drain of ``cosim.scenario.drain`` in hardware: L1 EOIs what is in
  service and re-enters L2, L2 EOIs, until rest, a failed entry, a step that changed nothing
  (the state of :class:`Snapshot` equal and no delivery or EOI message), or
  :data:`~cosim.scenario.drain.MAX_DRAIN_STEPS` steps;
- the memory responder serves the design's memory port from the descriptor's eight words:
  each request first seen draws ``lfsr & wait_mask`` wait cycles from a 32-bit Galois LFSR
  seeded with the job's seed (seed 0: no wait cycles), then the operation is performed
  indivisibly at the edge where ``ready`` is high; another agent's post of event ``e`` at
  cycle ``c`` ORs PIR[vector] in before the port's operation of the ``c``-th cycle of event
  ``e`` (counted from the event's strobe) and ON one cycle later (PI-9, C14); an event
  does not settle before its posts have landed, so every post lands.
"""

import functools
import operator

from amaranth.hdl import Array, Cat, Const, EnableInserter, Module, Mux, ResetInserter, Signal
from amaranth.lib import data, enum, memory, wiring
from amaranth.lib.wiring import In, Out

from cosim.scenario.drain import MAX_DRAIN_STEPS
from cosim.scenario.format import EVENT_KINDS, L1, L2, MAX_RACES, RACE_CYCLES
from rtl.layouts import (
    EXIT_CONTROLS,
    NOTIFY_INFO_OFFSET,
    PIN_BASED_CONTROLS,
    PIR_WORDS,
    PROC_BASED_CONTROLS,
    SECONDARY_CONTROLS,
    WORD_BITS,
    ExitIntrInfo,
    ExitReason,
    GuestIntrStatus,
    NotifyInfo,
    PIDescriptor,
    Preload,
)
from rtl.memory import MemOp
from rtl.top import InterruptPath, PathState

__all__ = ["DEFAULT_WAIT_MASK", "LFSR_TAPS", "MAX_CYCLES_PER_EVENT", "MAX_EVENTS", "MAX_POSTS",
           "SETTLE_CYCLES", "EncodedEvent", "EncodedPost", "EndRecord", "EndStatus",
           "EventCode", "Harness", "JobRecord", "Phase", "ResultKind", "ResultRecord",
           "Snapshot", "StepRecord", "CycleRecord"]

#: Idle cycles after which the path counts as quiescent. Posted-interrupt processing is
#: "active" for its whole run (however long the memory takes), and every other internal
#: sequence shows activity within 2 cycles; 12 leaves a wide margin.
SETTLE_CYCLES = 12
#: A bound on settling after any one event (a longer run is a hang: the model is at fault);
#: the scenario format bounds a race's cycle by it.
MAX_CYCLES_PER_EVENT = RACE_CYCLES
#: The most events and other agents' posts one job holds.
MAX_EVENTS = 64
MAX_POSTS = MAX_RACES
#: With a non-zero seed, each memory request waits ``lfsr & wait_mask`` cycles: 0..3.
DEFAULT_WAIT_MASK = 3
#: The taps of the 32-bit Galois LFSR that draws the memory's wait cycles
#: (x^32 + x^22 + x^2 + x + 1).
LFSR_TAPS = 0x80200003
#: The result memory keeps this many records free before it starts another job.
RESULT_RESERVE = 1024


class EventCode(enum.Enum, shape=3):
    """An event kind as the harness applies it (one per ``cosim.scenario.format`` kind,
    same names)."""

    INTERRUPT = 0
    POST = 1
    EOI = 2
    TPR = 3
    VM_ENTRY = 4
    L2_EOI = 5
    L2_TPR = 6
    STI = 7


assert {c.name.lower() for c in EventCode} == set(EVENT_KINDS), "one code per event kind"

#: The codes of the events that can happen while each mode runs (``Event.modes``).
MODE_CODES = {mode: {EventCode[kind.upper()] for kind, cls in EVENT_KINDS.items()
                     if mode in cls.modes} for mode in (L1, L2)}


class EncodedEvent(data.Struct):
    kind: EventCode
    value: 8  # the vector (interrupt, post) or the value written (tpr, l2_tpr)


class EncodedPost(data.Struct):
    """Another agent's post during event ``event``, ``cycle`` cycles into it."""

    valid: 1
    event: 8
    cycle: 16
    vector: 8


class JobRecord(data.Struct):
    """One job: the scenario's vmcs12 controls and initial state, its events, the memory's
    seed and wait mask, and other agents' posts."""

    pin_based: PIN_BASED_CONTROLS
    proc_based: PROC_BASED_CONTROLS
    secondary: SECONDARY_CONTROLS
    exit_controls: EXIT_CONTROLS
    posted_intr_nv: 16
    posted_intr_desc_addr: 64
    maxphyaddr: 6
    spurious_vector: 8
    rflags_if: 1
    start_l2: 1
    preload: Preload
    descriptor: PIDescriptor
    seed: 32
    wait_mask: 16
    n_events: 8
    events: data.ArrayLayout(EncodedEvent, MAX_EVENTS)
    posts: data.ArrayLayout(EncodedPost, MAX_POSTS)


class ResultKind(enum.Enum, shape=2):
    CYCLE = 0
    STEP = 1
    END = 2


class EndStatus(enum.Enum, shape=3):
    DONE = 0  # the drain reached rest
    UNSETTLED = 1  # the drain was still changing after MAX_DRAIN_STEPS steps
    IMPOSSIBLE = 2  # event ``index`` needs a mode the design was not in
    HANG = 3  # settling took more than MAX_CYCLES_PER_EVENT (a STEP record precedes)
    FOREIGN = 4  # the design accessed memory outside the descriptor


class CycleRecord(data.Struct):
    """What happened at the edge ending the record's testbench cycle: the memory operation
    the responder performed there, if any, and the strobes the design pulsed after it."""

    mem_served: 1
    mem_op: MemOp
    mem_addr: 64
    mem_old: 64
    vmexit: 1
    exit_reason: ExitReason
    exit_intr_info: ExitIntrInfo
    entry_failed: 1
    entry_error: 8
    delivered: 1
    delivered_vector: 8
    eoi_message: 1
    eoi_vector: 8


class Snapshot(data.Struct):
    """The architectural state an outcome holds besides the strobes."""

    state: PathState
    irr: 256
    isr: 256
    ppr: 8
    pir: 256
    on: 1
    sn: 1
    virr: 256
    visr: 256
    status: GuestIntrStatus
    vppr: 8


class StepRecord(data.Struct):
    """The state after an event (``drain`` = 0) or a drain step applying ``event``, which
    started at testbench cycle ``start``."""

    start: 32
    cycle: 32
    drain: 1
    event: EventCode
    snapshot: Snapshot


class EndRecord(data.Struct):
    status: EndStatus
    index: 8  # the impossible event
    state: PathState
    mem_valid: 1
    mem_op: MemOp
    mem_addr: 64


class ResultRecord(data.Struct):
    """A record of the result memory. ``cycle``: testbench cycles since the job's load cycle
    (1-based) when it was written; here, not in the bodies, so that the wide bodies do not
    change in every cycle (Icarus copies a changed concatenation bit by bit)."""

    kind: ResultKind
    cycle: 32
    body: data.UnionLayout({"cycle": CycleRecord, "step": StepRecord, "end": EndRecord})


class Phase(enum.Enum, shape=4):
    """What the harness does in this cycle (waveform names)."""

    IDLE = 0
    FETCH = 1
    RESET = 2
    LOAD = 3
    APPLY = 4  # a testbench cycle with the event's strobe
    SETTLE = 5
    RECORD = 6
    NEXT = 7  # choose the next event (or the drain), check its mode
    DRAIN = 8  # choose the drain's next step
    HANG = 9
    END = 10


JOB = data.Layout.cast(JobRecord)
RESULT = data.Layout.cast(ResultRecord)
DESCRIPTOR_WORDS = data.Layout.cast(PIDescriptor).size // WORD_BITS
ON_BIT = NOTIFY_INFO_OFFSET * 8 + data.Layout.cast(NotifyInfo)["on"].offset


class Harness(wiring.Component):
    """Runs a batch of jobs through ``InterruptPath`` (see the module docstring).

    Timing contract: with ``done`` high, set ``n_jobs`` and ``first_job`` and pulse ``start``
    for one cycle; ``done`` falls, and rises again when jobs ``first_job`` .. ``job - 1`` have
    run (``job`` < ``n_jobs`` when the result memory filled up: start again from there).
    ``n_results`` records were written from address 0; ``overflow`` means the last job started
    did not fit in what was left (its records are incomplete: run it again from an empty
    memory). ``trace_memory`` adds the memory operations to the
    ``CYCLE`` records (for logs; otherwise only cycles with strobes are recorded).
    ``event_index`` and ``phase`` name what runs, for waveforms.

    Parameters
    ----------
    job_depth, result_depth : int
        The depths of :attr:`jobs` and :attr:`results`.
    """

    start: In(1)
    trace_memory: In(1)
    n_jobs: In(16)
    first_job: In(16)
    done: Out(1)
    job: Out(16)
    event_index: Out(8)
    phase: Out(Phase)
    n_results: Out(16)
    overflow: Out(1)

    def __init__(self, job_depth: int = 512, result_depth: int = 4096):
        assert result_depth > RESULT_RESERVE
        super().__init__()
        self.jobs = memory.Memory(shape=JOB.size, depth=job_depth, init=[])
        # kept by Yosys' opt_clean although nothing in the design reads it: the testbench does
        self.results = memory.Memory(shape=RESULT.size, depth=result_depth, init=[],
                                     attrs={"keep": 1})
        self.dut = InterruptPath()

    def elaborate(self, platform):
        m = Module()
        m.submodules.jobs = self.jobs
        m.submodules.results = self.results
        dut_en, dut_rst = Signal(), Signal()
        dut = self.dut
        m.submodules.dut = ResetInserter(dut_rst)(EnableInserter(dut_en)(dut))

        # a synchronous read at FETCH: the job's record then stays on the port (a register),
        # not re-read through the memory in every cycle
        read = self.jobs.read_port()
        write = self.results.write_port()
        job = JOB(read.data)
        m.d.comb += [read.addr.eq(self.job), read.en.eq(self.phase == Phase.FETCH)]

        # --- per-job registers ------------------------------------------------------------
        phase = self.phase
        cycle = Signal(32)  # testbench cycles since the job's load cycle
        counted = Signal()  # this cycle is a testbench cycle
        fresh = Signal()  # the design's outputs show a testbench cycle not yet sampled
        event_start = Signal(32)
        stepping = Signal()  # settling belongs to an event or drain step (not start-up)
        draining = Signal()
        posts_active = Signal()  # other agents' posts belong to the current event
        post_now = Signal()  # a post event's ORs land in this testbench cycle
        kind = Signal(EventCode)
        value = Signal(8)
        idle = Signal(range(SETTLE_CYCLES + 1))
        settle_n = Signal(range(MAX_CYCLES_PER_EVENT + 1))
        fresh_settle = Signal()
        drain_steps = Signal(range(MAX_DRAIN_STEPS + 1))
        step_entry_failed = Signal()
        step_strobed = Signal()  # a delivery or an EOI message in this step
        prev = Signal(Snapshot)
        prev_entry_failed = Signal()
        status = Signal(EndStatus)
        foreign = Signal()
        # the descriptor's words, each its own register (Icarus evaluates an assignment to
        # part of a wide signal bit by bit)
        desc = [Signal(WORD_BITS, name=f"desc{w}") for w in range(DESCRIPTOR_WORDS)]
        lfsr = Signal(32)
        wait = Signal(16)
        wait_valid = Signal()
        res_ptr = Signal(range(self.results.depth + 1))
        m.d.comb += self.n_results.eq(res_ptr)

        # --- the design's static inputs: the job's vmcs12 and initial state ----------------
        m.d.comb += [
            dut.pin_based.eq(job.pin_based), dut.proc_based.eq(job.proc_based),
            dut.secondary.eq(job.secondary), dut.exit_controls.eq(job.exit_controls),
            dut.posted_intr_nv.eq(job.posted_intr_nv),
            dut.posted_intr_desc_addr.eq(job.posted_intr_desc_addr),
            dut.maxphyaddr.eq(job.maxphyaddr), dut.spurious_vector.eq(job.spurious_vector),
            dut.rflags_if.eq(job.rflags_if), dut.preload.eq(job.preload),
            counted.eq(dut_en & ~dut_rst),
        ]
        m.d.sync += fresh.eq(counted)
        with m.If(counted):
            m.d.sync += cycle.eq(cycle + 1)

        # --- the monitor: every testbench cycle's strobes, once ---------------------------
        strobes = Signal(CycleRecord)
        served = Signal(data.StructLayout({"valid": 1, "op": MemOp, "addr": 64, "old": 64}))
        m.d.comb += [
            strobes.mem_served.eq(served.valid),
            strobes.mem_op.eq(served.op), strobes.mem_addr.eq(served.addr),
            strobes.mem_old.eq(served.old),
            strobes.vmexit.eq(dut.vmexit), strobes.exit_reason.eq(dut.exit_reason),
            strobes.exit_intr_info.eq(dut.exit_intr_info),
            strobes.entry_failed.eq(dut.entry_failed), strobes.entry_error.eq(dut.entry_error),
            strobes.delivered.eq(dut.delivered.valid),
            strobes.delivered_vector.eq(dut.delivered.vector),
            strobes.eoi_message.eq(dut.eoi_message.valid),
            strobes.eoi_vector.eq(dut.eoi_message.vector),
        ]
        strobed = (dut.vmexit | dut.entry_failed | dut.delivered.valid
                   | dut.eoi_message.valid)
        posts_pending = Signal()
        active = strobed | (dut.state == PathState.POSTED) | posts_pending
        # the three records, built apart and chosen by Mux (Yosys writes a Switch over wide
        # values as a Verilog function, which Icarus evaluates bit by bit: 100 times slower)
        write_cycle = Signal()
        write_step = Signal()
        write_end = Signal()
        step_record = Signal(StepRecord)
        end_record = Signal(EndRecord)
        record = Signal(ResultRecord)
        m.d.comb += [
            write_cycle.eq(fresh & (strobed | (served.valid & self.trace_memory))),
            record.kind.eq(Mux(write_cycle, ResultKind.CYCLE,
                               Mux(write_end, ResultKind.END, ResultKind.STEP))),
            record.cycle.eq(cycle),
            record.body.as_value().eq(Mux(write_cycle, strobes.as_value(),
                                          Mux(write_end, end_record.as_value(),
                                              step_record.as_value()))),
            write.data.eq(record), write.addr.eq(res_ptr),
            write.en.eq((write_cycle | write_step | write_end)
                        & (res_ptr != self.results.depth)),
        ]
        with m.If(write_cycle):
            with m.If(dut.entry_failed):
                m.d.sync += step_entry_failed.eq(1)
            with m.If(dut.delivered.valid | dut.eoi_message.valid):
                m.d.sync += step_strobed.eq(1)
        with m.If(write_cycle | write_step | write_end):
            with m.If(res_ptr == self.results.depth):
                m.d.sync += self.overflow.eq(1)
            with m.Else():
                m.d.sync += res_ptr.eq(res_ptr + 1)

        snapshot = Signal(Snapshot)
        notify = NotifyInfo(desc[NOTIFY_INFO_OFFSET // (WORD_BITS // 8)])
        m.d.comb += [
            snapshot.state.eq(dut.state), snapshot.irr.eq(dut.irr), snapshot.isr.eq(dut.isr),
            snapshot.ppr.eq(dut.ppr), snapshot.pir.eq(Cat(*desc[:PIR_WORDS])),
            snapshot.on.eq(notify.on),
            snapshot.sn.eq(notify.sn), snapshot.virr.eq(dut.virr), snapshot.visr.eq(dut.visr),
            snapshot.status.eq(dut.status), snapshot.vppr.eq(dut.vppr),
        ]

        m.d.comb += [
            step_record.start.eq(event_start),
            step_record.drain.eq(draining), step_record.event.eq(kind),
            step_record.snapshot.eq(snapshot),
            end_record.status.eq(status),
            end_record.index.eq(self.event_index), end_record.state.eq(dut.state),
            end_record.mem_valid.eq(dut.mem.valid), end_record.mem_op.eq(dut.mem.op),
            end_record.mem_addr.eq(dut.mem.addr),
        ]

        # --- the memory responder ---------------------------------------------------------
        # other agents' ORs of this cycle, before the port's operation (a post event's two
        # ORs in its first cycle; scheduled posts at their cycle, ON one cycle later). All of
        # it word by word: 64-bit operations, no shifts of the whole descriptor (Verilator
        # spent a fifth of its time in those).
        at = Signal(32)
        m.d.comb += at.eq(cycle - event_start)
        pir_posts = [(post_now, value)]  # (this cycle, vector)
        on_posts = [post_now]
        pending = []  # a post of this event still to land keeps the event from settling
        for i in range(MAX_POSTS):
            post = job.posts[i]
            mine = post.valid & posts_active & (post.event == self.event_index)
            pir_posts.append((mine & (at == post.cycle), post.vector))
            on_posts.append(mine & (at == post.cycle + 1))
            pending.append(mine & (at <= post.cycle + 1))
        m.d.comb += posts_pending.eq(functools.reduce(operator.or_, pending))
        on_word, on_bit = divmod(ON_BIT, WORD_BITS)
        vector_word = (WORD_BITS - 1).bit_length()  # PIR word = vector >> 6
        before = []
        for w in range(DESCRIPTOR_WORDS):
            terms = [desc[w]]
            if w < PIR_WORDS:
                terms += [Mux(now & (vector[vector_word:] == w),
                              Const(1, WORD_BITS) << vector[:vector_word], 0)
                          for now, vector in pir_posts]
            if w == on_word:
                terms.append(Mux(functools.reduce(operator.or_, on_posts), 1 << on_bit, 0))
            word = Signal(WORD_BITS, name=f"before{w}")
            m.d.comb += word.eq(functools.reduce(operator.or_, terms))
            before.append(word)
        rel = Signal(64)
        index = Signal(range(DESCRIPTOR_WORDS))
        m.d.comb += [rel.eq(dut.mem.addr - (job.posted_intr_desc_addr & ~0x7)),
                     index.eq(rel[3:])]
        old = Signal(WORD_BITS)
        new = Signal(WORD_BITS)
        m.d.comb += old.eq(Array(before)[index])
        with m.Switch(dut.mem.op):
            with m.Case(MemOp.READ):
                m.d.comb += new.eq(old)
            with m.Case(MemOp.WRITE, MemOp.SWAP):
                m.d.comb += new.eq(dut.mem.data)
            with m.Case(MemOp.OR):
                m.d.comb += new.eq(old | dut.mem.data)
            with m.Case(MemOp.AND):
                m.d.comb += new.eq(old & dut.mem.data)
            with m.Case(MemOp.CMPXCHG):
                m.d.comb += new.eq(Mux(old == dut.mem.compare, dut.mem.data, old))
        draw = Mux(job.seed != 0, lfsr[:16] & job.wait_mask, 0)
        latency = Mux(wait_valid, wait, draw)
        perform = Signal()  # the port's operation happens at this edge
        m.d.comb += dut.mem.rdata.eq(old)
        with m.If(counted):
            m.d.sync += [post_now.eq(0), served.valid.eq(0)]
            for w, word in enumerate(before):
                m.d.sync += desc[w].eq(Mux(perform & (index == w), new, word))
            with m.If(dut.mem.valid):
                with m.If(~wait_valid & (job.seed != 0)):
                    m.d.sync += lfsr.eq(Mux(lfsr[0], (lfsr >> 1) ^ LFSR_TAPS, lfsr >> 1))
                with m.If(latency != 0):
                    m.d.sync += [wait.eq(latency - 1), wait_valid.eq(1)]
                with m.Else():
                    m.d.sync += wait_valid.eq(0)
                    m.d.comb += [dut.mem.ready.eq(1), perform.eq(1)]
                    m.d.sync += [served.valid.eq(1), served.op.eq(dut.mem.op),
                                 served.addr.eq(dut.mem.addr), served.old.eq(old)]
                    with m.If((rel >= DESCRIPTOR_WORDS * WORD_BITS // 8) | (rel[:3] != 0)):
                        m.d.sync += foreign.eq(1)

        # --- the driver: one definition of each event's stimulus --------------------------
        def apply(code, operand):
            with m.Switch(code):
                with m.Case(EventCode.INTERRUPT):  # every route arrives alike
                    m.d.comb += [dut.accept.valid.eq(1), dut.accept.vector.eq(operand)]
                with m.Case(EventCode.EOI):
                    m.d.comb += dut.eoi.eq(1)
                with m.Case(EventCode.TPR):
                    m.d.comb += [dut.tpr_write.valid.eq(1), dut.tpr_write.value.eq(operand)]
                with m.Case(EventCode.STI):
                    m.d.comb += dut.sti.eq(1)
                with m.Case(EventCode.VM_ENTRY):
                    m.d.comb += dut.vm_entry.eq(1)
                with m.Case(EventCode.L2_EOI):
                    m.d.comb += dut.l2_eoi.eq(1)
                with m.Case(EventCode.L2_TPR):
                    m.d.comb += [dut.l2_tpr_write.valid.eq(1),
                                 dut.l2_tpr_write.value.eq(operand)]

        def settle():
            m.d.sync += [phase.eq(Phase.SETTLE), settle_n.eq(0), idle.eq(0)]

        def end(why):
            m.d.sync += [status.eq(why), phase.eq(Phase.END)]

        def new_step():
            m.d.sync += [step_entry_failed.eq(0), step_strobed.eq(0)]

        current = job.events[self.event_index]
        mode_ok = {mode: Const(sum(1 << c.value for c in codes), 8)
                   for mode, codes in MODE_CODES.items()}
        in_l1 = dut.state == PathState.ROOT
        next_ok = Mux(in_l1, mode_ok[L1], mode_ok[L2]).bit_select(current.kind.as_value(), 1)
        settled = (snapshot.as_value() == prev.as_value()) & ~step_strobed
        # the drain leaves L2's notification vector to the next VM entry (next_drain_event);
        # the design's state is the recorded one here (frozen since)
        presents_nv = (job.pin_based.posted_intr
                       & (dut.lapic.inta.vector == job.posted_intr_nv[0:8]))

        with m.Switch(phase):
            with m.Case(Phase.IDLE):
                m.d.comb += self.done.eq(1)
                with m.If(self.start):
                    m.d.sync += [self.job.eq(self.first_job), res_ptr.eq(0),
                                 self.overflow.eq(0), phase.eq(Phase.FETCH)]
            with m.Case(Phase.FETCH):
                with m.If((self.job >= self.n_jobs) | self.overflow
                          | (res_ptr > self.results.depth - RESULT_RESERVE)):
                    m.d.sync += phase.eq(Phase.IDLE)
                with m.Else():
                    m.d.sync += [cycle.eq(0), wait_valid.eq(0), self.event_index.eq(0),
                                 stepping.eq(0),
                                 draining.eq(0), drain_steps.eq(0), posts_active.eq(0),
                                 post_now.eq(0), foreign.eq(0), phase.eq(Phase.RESET)]
                    new_step()
            with m.Case(Phase.RESET):  # the job's record is on the read port from here
                m.d.comb += [dut_en.eq(1), dut_rst.eq(1)]
                m.d.sync += [lfsr.eq(job.seed), phase.eq(Phase.LOAD),
                             *(d.eq(job.descriptor.as_value().word_select(w, WORD_BITS))
                               for w, d in enumerate(desc))]
            with m.Case(Phase.LOAD):
                m.d.comb += [dut_en.eq(1), dut.load.eq(1)]
                with m.If(job.start_l2):  # L2 runs after a VM entry that passed its checks
                    m.d.sync += [kind.eq(EventCode.VM_ENTRY), phase.eq(Phase.APPLY)]
                with m.Else():
                    settle()
            with m.Case(Phase.APPLY):
                m.d.comb += dut_en.eq(1)
                apply(kind, value)
                settle()
            with m.Case(Phase.SETTLE):
                idle_now = Mux(fresh_settle, Mux(active, 0, idle + 1), 0)
                with m.If(idle_now >= SETTLE_CYCLES):
                    m.d.sync += [fresh_settle.eq(0),
                                 phase.eq(Mux(stepping, Phase.RECORD, Phase.NEXT))]
                with m.Elif(fresh_settle & (settle_n == MAX_CYCLES_PER_EVENT)):
                    m.d.sync += [fresh_settle.eq(0), phase.eq(Phase.HANG)]
                with m.Else():
                    m.d.comb += dut_en.eq(1)
                    m.d.sync += [idle.eq(idle_now), settle_n.eq(settle_n + 1),
                                 fresh_settle.eq(1)]
            with m.Case(Phase.RECORD):
                m.d.comb += write_step.eq(1)
                m.d.sync += [prev.eq(snapshot), prev_entry_failed.eq(step_entry_failed)]
                with m.If(foreign):
                    end(EndStatus.FOREIGN)
                with m.Elif(draining):
                    m.d.sync += drain_steps.eq(drain_steps + 1)
                    with m.If(settled):
                        end(EndStatus.DONE)
                    with m.Else():
                        m.d.sync += phase.eq(Phase.DRAIN)
                with m.Else():
                    m.d.sync += [self.event_index.eq(self.event_index + 1), phase.eq(Phase.NEXT)]
            with m.Case(Phase.NEXT):
                with m.If(self.event_index == job.n_events):
                    m.d.sync += [posts_active.eq(0), draining.eq(1), phase.eq(Phase.DRAIN)]
                with m.Elif(~next_ok):
                    end(EndStatus.IMPOSSIBLE)
                with m.Else():
                    m.d.sync += [event_start.eq(cycle), stepping.eq(1), posts_active.eq(1),
                                 kind.eq(current.kind), value.eq(current.value)]
                    with m.If(self.event_index != 0):  # start-up belongs to the first event
                        new_step()
                    with m.If(current.kind == EventCode.POST):
                        m.d.sync += post_now.eq(1)
                        settle()
                    with m.Else():
                        m.d.sync += phase.eq(Phase.APPLY)
            with m.Case(Phase.DRAIN):
                new_step()
                m.d.sync += event_start.eq(cycle)
                with m.If(drain_steps == MAX_DRAIN_STEPS):
                    end(EndStatus.UNSETTLED)
                with m.Elif(prev.state == PathState.ROOT):  # L1 runs
                    with m.If(prev.isr != 0):
                        m.d.sync += [kind.eq(EventCode.EOI), phase.eq(Phase.APPLY)]
                    with m.Elif(prev_entry_failed):  # the same checks would fail again
                        end(EndStatus.DONE)
                    with m.Elif(dut.intr & ~presents_nv):  # L1 takes its own interrupt
                        m.d.sync += [kind.eq(EventCode.STI), phase.eq(Phase.APPLY)]
                    with m.Else():
                        m.d.sync += [kind.eq(EventCode.VM_ENTRY), phase.eq(Phase.APPLY)]
                with m.Elif(prev.visr != 0):
                    m.d.sync += [kind.eq(EventCode.L2_EOI), phase.eq(Phase.APPLY)]
                with m.Else():
                    end(EndStatus.DONE)
            with m.Case(Phase.HANG):
                m.d.comb += write_step.eq(1)
                end(EndStatus.HANG)
            with m.Case(Phase.END):
                m.d.comb += write_end.eq(1)
                m.d.sync += [self.job.eq(self.job + 1), phase.eq(Phase.FETCH)]
        return m

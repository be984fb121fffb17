"""The hardware side of the cosimulation: jobs through the accelerated harness
(``cosim.hardware.harness``) around ``rtl.top.InterruptPath``, the same on amaranth.sim, cocotb
with Icarus and cocotb with Verilator.

Roles are separate:

- stimulus: the scenario's events (``cosim.scenario``, frozen dataclasses), encoded here into
  the harness's job records (:func:`encode`);
- driver, memory responder and monitor: the harness, in the simulator (one definition of each
  event's stimulus, of the memory's wait states and other agents' posts, of quiescence and of
  the drain), writing result records;
- this module decodes the records (:func:`decode`) into transactions (:class:`Exit`,
  :class:`EntryFailure`, :class:`Delivery`, :class:`EoiMessage`, each with its cycle) and an
  :class:`~cosim.scenario.outcome.Outcome` per event and drain step;
- the scoreboard (``cosim.judge``) compares those outcomes with the KVM model's.

:func:`run_jobs` runs any number of jobs in one simulation through a :class:`HarnessBench`:
it writes a batch of job records, pulses ``start``, waits for ``done`` and reads the results,
so Python touches the simulator a few times per job instead of every cycle.
"""

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import assert_never

from amaranth.hdl import Shape
from amaranth.lib import data

from cosim.hardware.batches import run_encoded
from cosim.hardware.bench import HarnessBench
from cosim.hardware.harness import (
    DEFAULT_WAIT_MASK,
    JOB,
    MAX_CYCLES_PER_EVENT,
    MAX_EVENTS,
    MAX_POSTS,
    RESULT,
    EndStatus,
    EventCode,
    ResultKind,
)
from cosim.scenario.drain import Impossible, SideRun
from cosim.scenario.format import (
    L1,
    L2,
    EoiEvent,
    Event,
    InterruptEvent,
    L2EoiEvent,
    L2TprEvent,
    PostEvent,
    Scenario,
    StiEvent,
    TprEvent,
    VmEntryEvent,
)
from cosim.scenario.outcome import (
    L1ApicOutcome,
    L2Outcome,
    Outcome,
    PidOutcome,
    VmExit,
    bitmap,
    vectors,
)
from rtl.memory import MemOp
from rtl.top import PathState

__all__ = ["Delivery", "EntryFailure", "EoiMessage", "Exit", "HardwareHang",
           "MAX_SEED", "Job", "Transaction", "decode", "encode", "run_jobs",
           "trace_memory"]

log = logging.getLogger(__name__)

# --- transactions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Exit:
    """A VM exit to L1 at ``cycle`` (cycles since the job's reset)."""

    cycle: int
    reason: int
    intr_info: int


@dataclass(frozen=True)
class EntryFailure:
    """A failed VM entry (VMfailValid) with its VM-instruction error."""

    cycle: int
    error: int


@dataclass(frozen=True)
class Delivery:
    """A vector delivered through L2's IDT (virtual-interrupt delivery or EXT-1)."""

    cycle: int
    vector: int


@dataclass(frozen=True)
class EoiMessage:
    """L1's local APIC sends an EOI message to the I/O APICs (a level-triggered vector's EOI,
    SDM 10.8.5): an L1 EOI, or step 4 of posted-interrupt processing."""

    cycle: int
    vector: int


Transaction = Exit | EntryFailure | Delivery | EoiMessage


class HardwareHang(RuntimeError):
    """The hardware model did not come to rest: the message holds the last transactions and
    the state of the path."""


@dataclass(frozen=True)
class Job:
    """One scenario for the hardware (the scenario itself, not a file: sweeps and random
    regressions make them in memory; its ``races`` are other agents' posts at their cycles) and
    the memory seed.

    ``seed`` 0 is zero-wait memory; any other seed (up to :data:`MAX_SEED`) seeds the
    harness's LFSR, which draws ``lfsr & wait_mask`` wait cycles per memory request (0..3 by
    default).
    """

    scenario: Scenario
    seed: int = 0
    wait_mask: int = DEFAULT_WAIT_MASK




# --- the record formats, flattened once ---------------------------------------------------


def _flatten(layout: data.Layout, prefix: str = "", offset: int = 0) -> dict[str, tuple]:
    """``dotted.path -> (offset, width, mask)`` for every field of ``layout``, nested ones
    included (array elements by index): the harness's layouts are the one definition of both
    formats."""
    fields = {}
    for name, field in layout:
        path, at = f"{prefix}{name}", offset + field.offset
        width = Shape.cast(field.shape).width
        fields[path] = (at, width, (1 << width) - 1)
        try:
            inner = data.Layout.cast(field.shape)
        except TypeError:
            continue
        fields.update(_flatten(inner, f"{path}.", at))
    return fields


JOB_FIELDS = _flatten(JOB)
RESULT_FIELDS = _flatten(RESULT)
#: The largest memory seed (the width of the job record's seed field).
MAX_SEED = JOB_FIELDS["seed"][2]
#: The drain's events by the code a STEP record names.
_DRAIN_EVENTS: dict[int, Event] = {EventCode.EOI.value: EoiEvent(),
                                   EventCode.STI.value: StiEvent(),
                                   EventCode.VM_ENTRY.value: VmEntryEvent(),
                                   EventCode.L2_EOI.value: L2EoiEvent()}
_ROOT = PathState.ROOT.value


def _pack(fields: dict[str, tuple], values: dict[str, int]) -> int:
    word = 0
    for path, value in values.items():
        offset, _width, mask = fields[path]
        if value & ~mask:
            raise ValueError(f"{path} = {value:#x} does not fit in the harness's field")
        word |= value << offset
    return word


def _table(prefix: str) -> dict[str, tuple[int, int]]:
    """``name -> (offset, mask)`` for the fields under ``prefix`` of a result record, and its
    ``cycle``."""
    table = {name[len(prefix):]: (offset, mask)
             for name, (offset, _width, mask) in RESULT_FIELDS.items() if name.startswith(prefix)}
    table["cycle"] = RESULT_FIELDS["cycle"][0], RESULT_FIELDS["cycle"][2]
    return table


_CYCLE, _STEP, _SNAPSHOT, _END = (_table(f"body.{kind}.") for kind in (
    "cycle", "step", "step.snapshot", "end"))


class _Fields:
    """Reads the fields of one result word through a :func:`_table`."""

    __slots__ = ("table", "word")

    def __init__(self, word: int, table: dict[str, tuple[int, int]]):
        self.word, self.table = word, table

    def __getitem__(self, name: str) -> int:
        offset, mask = self.table[name]
        return self.word >> offset & mask


def _event_fields(event: Event) -> tuple[EventCode, int]:
    match event:
        case InterruptEvent():  # every route (and in_l0, a KVM-side notion) arrives alike
            return EventCode.INTERRUPT, event.vector
        case PostEvent():
            return EventCode.POST, event.vector
        case EoiEvent():
            return EventCode.EOI, 0
        case TprEvent():
            return EventCode.TPR, event.value
        case StiEvent():
            return EventCode.STI, 0
        case VmEntryEvent():
            return EventCode.VM_ENTRY, 0
        case L2EoiEvent():
            return EventCode.L2_EOI, 0
        case L2TprEvent():
            return EventCode.L2_TPR, event.value
        case _:
            assert_never(event)


def encode(job: Job) -> int:
    """The job as one :class:`~cosim.hardware.harness.JobRecord` word."""
    s, c, p = job.scenario, job.scenario.vmcs12, job.scenario.pid
    if not s.events or len(s.events) > MAX_EVENTS:
        raise ValueError(f"{s.name}: the harness runs 1 to {MAX_EVENTS} events per scenario, "
                         f"not {len(s.events)}")
    if len(s.races) > MAX_POSTS:
        raise ValueError(f"{s.name}: the harness takes at most {MAX_POSTS} concurrent posts")
    values = {**c.control_words(), "posted_intr_nv": c.posted_intr_nv,
              "posted_intr_desc_addr": c.posted_intr_desc_addr, "maxphyaddr": s.maxphyaddr,
              "spurious_vector": s.l1_apic.spurious_vector, "rflags_if": int(s.l2.rflags_if),
              "start_l2": int(s.start == L2),
              "preload.lapic.irr": bitmap(s.l1_apic.irr),
              "preload.lapic.isr": bitmap(s.l1_apic.isr),
              "preload.lapic.tmr": bitmap(s.l1_apic.tmr), "preload.lapic.tpr": s.l1_apic.tpr,
              "preload.vapic.virr": bitmap(s.l2.virr), "preload.vapic.visr": bitmap(s.l2.visr),
              "preload.vapic.vtpr": s.l2.vtpr, "preload.vapic.status.rvi": s.l2.rvi,
              "preload.vapic.status.svi": s.l2.svi,
              "descriptor.pir": bitmap(p.pir), "descriptor.notify.on": int(p.on),
              "descriptor.notify.sn": int(p.sn), "descriptor.notify.nv": p.nv,
              "descriptor.notify.ndst": p.ndst,
              "seed": job.seed, "wait_mask": job.wait_mask, "n_events": len(s.events)}
    for i, event in enumerate(s.events):
        code, operand = _event_fields(event)
        values[f"events.{i}.kind"] = code.value
        values[f"events.{i}.value"] = operand
    for i, post in enumerate(s.races):
        values.update({f"posts.{i}.valid": 1, f"posts.{i}.event": post.event,
                       f"posts.{i}.cycle": post.cycle, f"posts.{i}.vector": post.vector})
    try:
        return _pack(JOB_FIELDS, values)
    except ValueError as exc:
        raise ValueError(f"{s.name}: {exc}") from None


# --- decoding ---------------------------------------------------------------------------------


def _transactions(r: _Fields) -> Iterator[Transaction]:
    """A cycle record's transactions, in the order the old per-cycle monitor added them."""
    cycle = r["cycle"]
    if r["vmexit"]:
        yield Exit(cycle, r["exit_reason"], r["exit_intr_info"])
    if r["entry_failed"]:
        yield EntryFailure(cycle, r["entry_error"])
    if r["delivered"]:
        yield Delivery(cycle, r["delivered_vector"])
    if r["eoi_message"]:
        yield EoiMessage(cycle, r["eoi_vector"])


def _outcome(snap: _Fields, new: list[Transaction], delivered: tuple[int, ...],
             eois: tuple[int, ...]) -> Outcome:
    exits = [VmExit(reason=t.reason, intr_info=t.intr_info) for t in new
             if isinstance(t, Exit)]
    errors = [t.error for t in new if isinstance(t, EntryFailure)]
    return Outcome(
        vmexit=exits[-1] if exits else None,
        vmentry_error=errors[-1] if errors else None,
        mode=L1 if snap["state"] == _ROOT else L2,
        l1_apic=L1ApicOutcome(irr=vectors(snap["irr"]), isr=vectors(snap["isr"]),
                              ppr=snap["ppr"], eoi_messages=eois),
        pid=PidOutcome(pir=vectors(snap["pir"]), on=bool(snap["on"]), sn=bool(snap["sn"])),
        l2=L2Outcome(virr=vectors(snap["virr"]), visr=vectors(snap["visr"]),
                     rvi=snap["status.rvi"], svi=snap["status.svi"], vppr=snap["vppr"],
                     delivered=delivered),
    )


def decode(records: Iterable[int], jobs: list[Job]) -> list[SideRun]:
    """The side runs of ``jobs`` from their result records, in order (each job's records
    end with an ``END`` record); ``records`` may be an iterator that yields them as they
    come (the cocotb backends decode while the simulator runs). Transactions, memory
    operations and events are logged (logger ``cosim.hardware.testbench``, level DEBUG) with
    their cycles."""
    runs: list[SideRun] = []
    it = iter(records)
    debug = log.isEnabledFor(logging.DEBUG)
    for job in jobs:
        events = job.scenario.events
        transactions: list[Transaction] = []
        outcomes: list[Outcome] = []
        drain: list[tuple[Event, Outcome]] = []
        delivered: tuple[int, ...] = ()
        eois: tuple[int, ...] = ()
        since = 0
        last_snapshot = None
        lines: list[tuple[int, int, str]] = []  # (cycle, order, text): the log, in time order
        for word in it:
            kind = word & 3  # ResultKind is the record's first field
            if kind == ResultKind.CYCLE.value:
                r = _Fields(word, _CYCLE)
                if debug and r["mem_served"]:
                    lines.append((r["cycle"] - 1, 1, f"memory: cycle {r['cycle'] - 1}: "
                                  f"{MemOp(r['mem_op']).name} {r['mem_addr']:#x} -> old "
                                  f"{r['mem_old']:#x}"))
                for t in _transactions(r):
                    if debug:
                        lines.append((t.cycle, 2, f"monitor: {t}"))
                    transactions.append(t)
                    if isinstance(t, Delivery):
                        delivered += (t.vector,)
                    elif isinstance(t, EoiMessage):
                        eois += (t.vector,)
            elif kind == ResultKind.STEP.value:
                r = _Fields(word, _STEP)
                last_snapshot = _Fields(word, _SNAPSHOT)
                outcome = _outcome(last_snapshot, transactions[since:], delivered, eois)
                since = len(transactions)
                if r["drain"]:
                    event = _DRAIN_EVENTS[r["event"]]
                    drain.append((event, outcome))
                else:
                    event = events[len(outcomes)]
                    outcomes.append(outcome)
                if debug:
                    lines.append((r["start"], 0, f"driver: cycle {r['start']}: {event}"))
                    for *_, text in sorted(lines):
                        log.debug("%s", text)
                    lines.clear()
            else:
                r = _Fields(word, _END)
                status = EndStatus(r["status"])
                cycles = r["cycle"]
                if status is EndStatus.DONE or status is EndStatus.UNSETTLED:
                    runs.append(SideRun(tuple(outcomes), tuple(drain),
                                        drain_settled=status is EndStatus.DONE, cycles=cycles))
                elif status is EndStatus.IMPOSSIBLE:
                    i = r["index"]
                    mode = L1 if r["state"] == _ROOT else L2
                    runs.append(SideRun(tuple(outcomes), impossible=Impossible(i, events[i], mode),
                                        cycles=cycles))
                elif status is EndStatus.HANG:
                    assert last_snapshot is not None
                    last = transactions[-8:]
                    raise HardwareHang(
                        f"the hardware model did not settle within {MAX_CYCLES_PER_EVENT} "
                        f"cycles (cycle {cycles}); last transactions: "
                        + (", ".join(map(str, last)) or "none")
                        + f"; state={PathState(r['state']).name} mem__valid={r['mem_valid']} "
                        f"mem__op={r['mem_op']} mem__addr={r['mem_addr']:#x} "
                        f"irr={last_snapshot['irr']:#x} isr={last_snapshot['isr']:#x} "
                        f"virr={last_snapshot['virr']:#x}")
                else:
                    raise HardwareHang(f"{job.scenario.name}: the hardware model accessed "
                                       "memory outside the posted-interrupt descriptor")
                break
        else:
            raise RuntimeError(f"the harness's results end before job {job.scenario.name}'s")
    return runs


# --- running jobs -----------------------------------------------------------------------------


def trace_memory() -> bool:
    """Whether the harness records memory operations: only for the debug log."""
    return log.isEnabledFor(logging.DEBUG)


async def run_jobs(bench: HarnessBench, jobs: list[Job]) -> list[SideRun]:
    """Every job in one simulation, decoded."""
    return decode(await run_encoded(bench, [encode(job) for job in jobs], trace_memory(),
                                    end_kind=ResultKind.END.value), jobs)

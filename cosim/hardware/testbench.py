"""The hardware side of the cosimulation: scenarios through ``rtl.top.InterruptPath``, written
once against :class:`~cosim.bench.Bench` so that it runs unchanged on amaranth.sim, cocotb with
Icarus and cocotb with Verilator.

Roles are separate:

- stimulus: the scenario's events (``cosim.scenario``, frozen dataclasses);
- :class:`PathDriver` turns the initial state and each event into port activity;
- :class:`~cosim.memory.MemoryResponder` serves the memory port where the descriptor lives,
  with optional wait states and other agents' posts interleaved at chosen cycles;
- :class:`PathMonitor` turns the event strobes into transactions (:class:`VmExit`,
  :class:`EntryFailure`, :class:`Delivery`) and samples the architectural state into an
  :class:`~cosim.outcome.Outcome` once the path is quiescent;
- the scoreboard (``cosim.scoreboard``) compares those outcomes with the KVM model's.

Every interrupt route reaches the hardware the same way, as a fixed interrupt accepted by L1's
local APIC; the route only matters to KVM. Between scenarios the design is reset (``rst``)
and preloaded, so any number of scenarios share one simulation.
"""

import logging
import random
from dataclasses import dataclass
from typing import assert_never

from amaranth.lib import data

from cosim.hardware.bench import Bench
from cosim.hardware.memory import MemoryResponder, WordMemory
from cosim.scenario.drain import MAX_DRAIN_STEPS, Impossible, SideRun, next_drain_event, settled
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
    TprEvent,
    VmEntryEvent,
    parse_scenario,
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
from rtl.layouts import GuestIntrStatus, Preload
from rtl.top import PathState

__all__ = ["MAX_WAIT_STATES", "SETTLE_CYCLES", "ConcurrentPost", "Delivery", "EntryFailure",
           "EoiMessage", "Exit", "HardwareHang", "Job", "PathDriver", "PathMonitor",
           "Transaction", "run_job", "run_jobs"]

#: Idle cycles after which the path counts as quiescent. Posted-interrupt processing is
#: "active" for its whole run (however long the memory takes), and every other internal
#: sequence shows activity within 2 cycles; 12 leaves a wide margin.
SETTLE_CYCLES = 12
#: A bound on any one event (a longer run is a hang: the hardware model is at fault).
MAX_CYCLES_PER_EVENT = 2000
#: With a non-zero seed, every memory request waits 0..MAX_WAIT_STATES cycles.
MAX_WAIT_STATES = 3

log = logging.getLogger(__name__)

GUEST_INTR_STATUS = data.Layout.cast(GuestIntrStatus)
PRELOAD = data.Layout.cast(Preload)
PATH_STATE_POSTED = PathState.POSTED.value
PATH_STATE_ROOT = PathState.ROOT.value


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
class ConcurrentPost:
    """Another agent posts ``vector`` into the descriptor while event ``event`` is processed:
    PIR[vector] := 1 at ``cycle`` cycles into the event, ON := 1 one cycle later (PI-9, C14)."""

    event: int
    cycle: int
    vector: int


@dataclass(frozen=True)
class Job:
    """One scenario for the hardware (the scenario itself, not a file: sweeps and random
    regressions make them in memory), the memory seed and concurrent posts.

    ``seed`` 0 is zero-wait memory; any other seed draws 0..``MAX_WAIT_STATES`` wait cycles
    per memory request from ``random.Random(seed)``.
    """

    scenario: Scenario
    seed: int = 0
    posts: tuple[ConcurrentPost, ...] = ()

    def to_json(self) -> dict:
        """The job as JSON (it crosses into the cocotb process so)."""
        return {"scenario": self.scenario.to_dict(), "path": self.scenario.path,
                "seed": self.seed, "posts": [[p.event, p.cycle, p.vector] for p in self.posts]}

    @classmethod
    def from_json(cls, data: dict) -> "Job":
        return cls(scenario=parse_scenario(data["scenario"], data["path"]), seed=data["seed"],
                   posts=tuple(ConcurrentPost(*p) for p in data["posts"]))


def desc_addr(scenario: Scenario) -> int:
    """The descriptor's word address (a misaligned address fails the VM-entry checks, so the
    hardware never accesses it; the outcome then shows the scenario's values)."""
    return scenario.vmcs12.posted_intr_desc_addr & ~0x7


# --- monitor ----------------------------------------------------------------------------------


class PathMonitor:
    """Observes the top level: collects strobe transactions every cycle and samples the state.

    ``transactions`` holds every :class:`Exit`, :class:`EntryFailure`, :class:`Delivery` and
    :class:`EoiMessage` in order, each with its cycle; each is also logged (``logging``,
    logger ``cosim.hardware.testbench``, level DEBUG).
    """

    def __init__(self, bench: Bench):
        self.bench = bench
        self.cycle = 0
        self.transactions: list[Transaction] = []

    def _add(self, transaction: Transaction) -> None:
        self.transactions.append(transaction)
        log.debug("monitor: %s", transaction)

    def sample(self) -> bool:
        """Collect this cycle's strobes; returns whether the path is active."""
        b = self.bench
        self.cycle += 1
        active = False
        if b.get("vmexit"):
            self._add(Exit(self.cycle, b.get("exit_reason"), b.get("exit_intr_info")))
            active = True
        if b.get("entry_failed"):
            self._add(EntryFailure(self.cycle, b.get("entry_error")))
            active = True
        if b.get("delivered__valid"):
            self._add(Delivery(self.cycle, b.get("delivered__vector")))
            active = True
        if b.get("eoi_message__valid"):
            self._add(EoiMessage(self.cycle, b.get("eoi_message__vector")))
            active = True
        return active or b.get("state") == PATH_STATE_POSTED

    def state(self) -> str:
        """The path's state for a hang report: its mode and the ports that show progress."""
        b = self.bench
        return (f"state={PathState(b.get('state')).name} mem__valid={b.get('mem__valid')} "
                f"mem__op={b.get('mem__op')} mem__addr={b.get('mem__addr'):#x} "
                f"irr={b.get('irr'):#x} isr={b.get('isr'):#x} virr={b.get('virr'):#x}")

    @property
    def mode(self) -> str:
        """The guest that runs: L1 in VMX root operation, else L2."""
        return L1 if self.bench.get("state") == PATH_STATE_ROOT else L2

    def outcome(self, since: int, memory: WordMemory, addr: int) -> Outcome:
        """The outcome record: the strobes since transaction ``since`` and the state now."""
        b = self.bench
        new = self.transactions[since:]
        exits = [VmExit(reason=t.reason, intr_info=t.intr_info) for t in new
                 if isinstance(t, Exit)]
        errors = [t.error for t in new if isinstance(t, EntryFailure)]
        delivered = tuple(t.vector for t in self.transactions if isinstance(t, Delivery))
        eois = tuple(t.vector for t in self.transactions if isinstance(t, EoiMessage))
        desc = memory.load_descriptor(addr)
        status = GUEST_INTR_STATUS.from_bits(b.get("status"))
        return Outcome(
            vmexit=exits[-1] if exits else None,
            vmentry_error=errors[-1] if errors else None,
            mode=self.mode,
            l1_apic=L1ApicOutcome(irr=vectors(b.get("irr")), isr=vectors(b.get("isr")),
                                  ppr=b.get("ppr"), eoi_messages=eois),
            pid=PidOutcome(pir=vectors(desc["pir"]), on=desc["on"], sn=desc["sn"]),
            l2=L2Outcome(virr=vectors(b.get("virr")), visr=vectors(b.get("visr")),
                         rvi=status.rvi, svi=status.svi, vppr=b.get("vppr"),
                         delivered=delivered),
        )


# --- driver -----------------------------------------------------------------------------------


class PathDriver:
    """Drives the top level: reset, the scenario's initial state, then each event.

    Every cycle goes through :meth:`cycle`: the memory responder answers, the clock ticks,
    the monitor samples.
    """

    IDLE_INPUTS = ("accept__valid", "accept__vector", "accept__level", "eoi",
                   "tpr_write__valid", "tpr_write__value", "l2_eoi", "l2_tpr_write__valid",
                   "l2_tpr_write__value", "vm_entry", "blocking", "load", "mem__ready",
                   "mem__rdata")

    def __init__(self, bench: Bench, monitor: PathMonitor, responder: MemoryResponder):
        self.bench, self.monitor, self.responder = bench, monitor, responder

    async def cycle(self) -> bool:
        self.responder.serve(self.bench)
        await self.bench.tick()
        return self.monitor.sample()

    async def settle(self) -> None:
        """Run until nothing happened for ``SETTLE_CYCLES`` cycles; a hang raises
        :class:`HardwareHang` with the last transactions and the state."""
        idle = 0
        for _ in range(MAX_CYCLES_PER_EVENT):
            idle = 0 if await self.cycle() else idle + 1
            if idle >= SETTLE_CYCLES:
                return
        last = self.monitor.transactions[-8:]
        raise HardwareHang(
            f"the hardware model did not settle within {MAX_CYCLES_PER_EVENT} cycles (cycle "
            f"{self.monitor.cycle}); last transactions: "
            + (", ".join(map(str, last)) or "none") + f"; {self.monitor.state()}")

    async def strobe(self, port: str, **values: int) -> None:
        for name, value in values.items():
            self.bench.set(name, value)
        self.bench.set(port, 1)
        await self.cycle()
        self.bench.set(port, 0)

    async def start(self, scenario: Scenario) -> None:
        """Reset, preload the initial state and, for ``start = "l2"``, enter L2."""
        b, s, c = self.bench, scenario, scenario.vmcs12
        for port in self.IDLE_INPUTS:
            b.set(port, 0)
        b.set("rst", 1)
        await b.tick()
        b.set("rst", 0)
        for port, value in c.control_words().items():
            b.set(port, value)
        b.set("posted_intr_nv", c.posted_intr_nv)
        b.set("posted_intr_desc_addr", c.posted_intr_desc_addr)
        b.set("maxphyaddr", s.maxphyaddr)
        b.set("spurious_vector", s.l1_apic.spurious_vector)
        b.set("rflags_if", int(s.l2.rflags_if))
        b.set("preload", PRELOAD.const({
            "lapic": {"irr": bitmap(s.l1_apic.irr), "isr": bitmap(s.l1_apic.isr),
                      "tmr": bitmap(s.l1_apic.tmr), "tpr": s.l1_apic.tpr},
            "vapic": {"virr": bitmap(s.l2.virr), "visr": bitmap(s.l2.visr), "vtpr": s.l2.vtpr,
                      "status": {"rvi": s.l2.rvi, "svi": s.l2.svi}},
            "non_root": 0}).as_bits())
        b.set("load", 1)
        await self.cycle()
        b.set("load", 0)
        if s.start == "l2":  # L2 runs after a VM entry that passed its checks
            await self.strobe("vm_entry")
        await self.settle()

    async def apply(self, event: Event, memory: WordMemory, addr: int) -> None:
        """Apply one event, then run until the path is quiescent."""
        log.debug("driver: cycle %d: %s", self.monitor.cycle, event)
        match event:
            case InterruptEvent():  # every route (and in_l0, a KVM-side notion) arrives alike
                await self.strobe("accept__valid", accept__vector=event.vector, accept__level=0)
            case PostEvent():
                memory.post_pir(addr, event.vector)
                memory.post_on(addr)
            case EoiEvent():
                await self.strobe("eoi")
            case TprEvent():
                await self.strobe("tpr_write__valid", tpr_write__value=event.value)
            case VmEntryEvent():
                await self.strobe("vm_entry")
            case L2EoiEvent():
                await self.strobe("l2_eoi")
            case L2TprEvent():
                await self.strobe("l2_tpr_write__valid", l2_tpr_write__value=event.value)
            case _:
                assert_never(event)
        await self.settle()


# --- running jobs -----------------------------------------------------------------------------


async def run_job(bench: Bench, job: Job) -> SideRun:
    """One scenario on the bench: an outcome per event (start-up effects are part of the first
    event's outcome, as for the KVM model), then the drain (``cosim.drain``). An event that
    cannot happen in the mode the hardware is in stops the run there (no drain)."""
    scenario = job.scenario
    memory = WordMemory()
    addr = desc_addr(scenario)
    p = scenario.pid
    memory.store_descriptor(addr, bitmap(p.pir), p.on, p.sn, p.nv, p.ndst)
    rng = random.Random(job.seed) if job.seed else None
    latency = (lambda: rng.randint(0, MAX_WAIT_STATES)) if rng else (lambda: 0)
    current = {"event": -1, "start": 0}
    pending = {(post.event, post.cycle): post for post in job.posts}

    def interleave(cycle: int, mem: WordMemory) -> None:
        at = cycle - current["start"]
        if (post := pending.get((current["event"], at))) is not None:
            mem.post_pir(addr, post.vector)
        if (post := pending.get((current["event"], at - 1))) is not None:
            mem.post_on(addr)

    responder = MemoryResponder(memory, latency=latency, interleave=interleave)
    monitor = PathMonitor(bench)
    driver = PathDriver(bench, monitor, responder)
    await driver.start(scenario)
    outcomes: list[Outcome] = []
    since = 0

    async def step(event: Event) -> Outcome:
        nonlocal since
        await driver.apply(event, memory, addr)
        outcome = monitor.outcome(since, memory, addr)
        since = len(monitor.transactions)
        return outcome

    for i, event in enumerate(scenario.events):
        if monitor.mode not in event.modes:
            return SideRun(tuple(outcomes), impossible=Impossible(i, event, monitor.mode),
                           cycles=monitor.cycle)
        current["event"], current["start"] = i, responder.cycle
        outcomes.append(await step(event))
    current["event"] = -1  # other agents' posts belong to the scenario's events
    drain: list[tuple[Event, Outcome]] = []
    last = outcomes[-1]
    for _ in range(MAX_DRAIN_STEPS):
        if (drain_event := next_drain_event(last)) is None:
            return SideRun(tuple(outcomes), tuple(drain), cycles=monitor.cycle)
        outcome = await step(drain_event)
        drain.append((drain_event, outcome))
        if settled(last, outcome):
            return SideRun(tuple(outcomes), tuple(drain), cycles=monitor.cycle)
        last = outcome
    return SideRun(tuple(outcomes), tuple(drain), drain_settled=False, cycles=monitor.cycle)


async def run_jobs(bench: Bench, jobs: list[Job]) -> list[SideRun]:
    """Every job in one simulation, one after the other (reset between them)."""
    return [await run_job(bench, job) for job in jobs]

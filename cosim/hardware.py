"""Hardware-model adapter: a scenario through the RTL (``rtl.top.InterruptPath``) under
``amaranth.sim``, read back as one :class:`~cosim.outcome.Outcome` per event.

Driver, memory responder and monitor are separate roles here. The driver applies each event's
strobes. The memory responder serves the memory port from :class:`cosim.memory.WordMemory`,
where the posted-interrupt descriptor lives. The monitor collects the event strobes (VM exit,
entry failure, delivery) and samples the state once the path is quiescent: the posted-interrupt
unit is idle and nothing happened for ``SETTLE_CYCLES`` cycles.

Every interrupt route reaches the hardware the same way: as a fixed interrupt accepted by L1's
local APIC. The route only matters to KVM.
"""

from amaranth.sim import Simulator

from rtl.memory import MemOp
from rtl.top import InterruptPath, PathState

from .memory import WordMemory
from .outcome import L1ApicOutcome, L2Outcome, Outcome, PidOutcome, VmExit, bitmap, vectors
from .scenario import (
    EoiEvent,
    InterruptEvent,
    L2EoiEvent,
    L2TprEvent,
    PostEvent,
    Scenario,
    TprEvent,
    VmEntryEvent,
)

__all__ = ["SETTLE_CYCLES", "run_hardware"]

#: Idle cycles after which the path counts as quiescent (longer than any internal sequence
#: with zero-wait memory: posted-interrupt processing takes 7).
SETTLE_CYCLES = 12
MAX_CYCLES_PER_EVENT = 400



def _desc_addr(scenario: Scenario) -> int:
    """The descriptor's word address (a misaligned address fails the VM-entry checks, so the
    hardware never accesses it; the record then shows the scenario's values)."""
    return scenario.vmcs12.posted_intr_desc_addr & ~0x7



class _Harness:
    def __init__(self, ctx, dut: InterruptPath, scenario: Scenario, memory: WordMemory):
        self.ctx, self.dut, self.scenario, self.memory = ctx, dut, scenario, memory
        self.exits: list[VmExit] = []
        self.entry_errors: list[int] = []
        self.delivered: list[int] = []

    async def tick(self) -> bool:
        """One clock cycle with the memory served; returns whether anything happened."""
        ctx, dut = self.ctx, self.dut
        active = self.memory.respond(ctx, dut.mem)
        await ctx.tick()
        if ctx.get(dut.vmexit):
            info = ctx.get(dut.exit_intr_info).as_value().value
            self.exits.append(VmExit(reason=ctx.get(dut.exit_reason).value, intr_info=info))
            active = True
        if ctx.get(dut.entry_failed):
            self.entry_errors.append(ctx.get(dut.entry_error))
            active = True
        if ctx.get(dut.delivered):
            self.delivered.append(ctx.get(dut.delivered_vector))
            active = True
        return active or ctx.get(dut.state) == PathState.POSTED

    async def settle(self) -> None:
        idle = 0
        for _ in range(MAX_CYCLES_PER_EVENT):
            idle = 0 if await self.tick() else idle + 1
            if idle >= SETTLE_CYCLES:
                return
        raise RuntimeError("the hardware model did not settle")

    async def strobe(self, name: str, **values) -> None:
        for key, value in values.items():
            self.ctx.set(getattr(self.dut, key), value)
        self.ctx.set(getattr(self.dut, name), 1)
        await self.tick()
        self.ctx.set(getattr(self.dut, name), 0)

    async def start(self) -> None:
        s, ctx, dut = self.scenario, self.ctx, self.dut
        c = s.vmcs12
        ctx.set(dut.pin_based, {"ext_intr_exiting": c.external_interrupt_exiting,
                                "posted_intr": c.process_posted_interrupts})
        ctx.set(dut.proc_based, {"intr_window_exiting": c.interrupt_window_exiting,
                                 "use_tpr_shadow": c.tpr_shadow,
                                 "secondary_ctls": c.virtual_interrupt_delivery})
        ctx.set(dut.secondary, {"virt_intr_delivery": c.virtual_interrupt_delivery})
        ctx.set(dut.exit_controls, {"ack_intr_on_exit": c.acknowledge_interrupt_on_exit})
        ctx.set(dut.posted_intr_nv, c.posted_intr_nv)
        ctx.set(dut.posted_intr_desc_addr, c.posted_intr_desc_addr)
        ctx.set(dut.maxphyaddr, s.maxphyaddr)
        ctx.set(dut.spurious_vector, s.l1_apic.spurious_vector)
        ctx.set(dut.rflags_if, s.l2.rflags_if)
        ctx.set(dut.load, 1)
        ctx.set(dut.load_irr, bitmap(s.l1_apic.irr))
        ctx.set(dut.load_isr, bitmap(s.l1_apic.isr))
        ctx.set(dut.load_tmr, bitmap(s.l1_apic.tmr))
        ctx.set(dut.load_tpr, s.l1_apic.tpr)
        ctx.set(dut.load_virr, bitmap(s.l2.virr))
        ctx.set(dut.load_visr, bitmap(s.l2.visr))
        ctx.set(dut.load_vtpr, s.l2.vtpr)
        ctx.set(dut.load_status, {"rvi": s.l2.rvi, "svi": s.l2.svi})
        ctx.set(dut.load_non_root, 0)
        await self.tick()
        ctx.set(dut.load, 0)
        if s.start == "l2":  # L2 runs after a VM entry that passed its checks
            await self.strobe("vm_entry")
        await self.settle()

    async def apply(self, event) -> None:
        ctx, dut = self.ctx, self.dut
        if isinstance(event, InterruptEvent):
            ctx.set(dut.accept.vector, event.vector)
            ctx.set(dut.accept.level, 0)
            ctx.set(dut.accept.valid, 1)
            await self.tick()
            ctx.set(dut.accept.valid, 0)
        elif isinstance(event, PostEvent):
            addr = _desc_addr(self.scenario)
            self.memory.perform(MemOp.OR, addr + 8 * (event.vector // 64), 1 << event.vector % 64)
            self.memory.perform(MemOp.OR, addr + 32, 1)
        elif isinstance(event, EoiEvent):
            await self.strobe("eoi")
        elif isinstance(event, TprEvent):
            await self.strobe("tpr_write", tpr_value=event.value)
        elif isinstance(event, VmEntryEvent):
            await self.strobe("vm_entry")
        elif isinstance(event, L2EoiEvent):
            await self.strobe("l2_eoi")
        elif isinstance(event, L2TprEvent):
            await self.strobe("l2_tpr_write", l2_tpr_value=event.value)
        await self.settle()

    def outcome(self, exits_seen: int, errors_seen: int) -> Outcome:
        ctx, dut = self.ctx, self.dut
        exits = self.exits[exits_seen:]
        errors = self.entry_errors[errors_seen:]
        desc = self.memory.load_descriptor(_desc_addr(self.scenario))
        status = ctx.get(dut.status)
        return Outcome(
            vmexit=exits[-1] if exits else None,
            vmentry_error=errors[-1] if errors else None,
            l1_apic=L1ApicOutcome(irr=vectors(ctx.get(dut.irr)), isr=vectors(ctx.get(dut.isr)),
                                  ppr=ctx.get(dut.ppr)),
            pid=PidOutcome(pir=vectors(desc["pir"]), on=desc["on"], sn=desc["sn"]),
            l2=L2Outcome(virr=vectors(ctx.get(dut.virr)), visr=vectors(ctx.get(dut.visr)),
                         rvi=status.rvi, svi=status.svi, vppr=ctx.get(dut.vppr),
                         delivered=tuple(self.delivered)),
        )


def run_hardware(scenario: Scenario) -> tuple[Outcome, ...]:
    """Run every event of ``scenario`` on the RTL under amaranth.sim; one outcome per event
    (start-up effects are part of the first event's outcome, as for the KVM model)."""
    dut = InterruptPath()
    memory = WordMemory()
    p = scenario.pid
    memory.store_descriptor(_desc_addr(scenario), bitmap(p.pir), p.on, p.sn, p.nv, p.ndst)
    outcomes: list[Outcome] = []

    async def bench(ctx):
        h = _Harness(ctx, dut, scenario, memory)
        await h.start()
        exits_seen = errors_seen = 0
        for event in scenario.events:
            await h.apply(event)
            outcomes.append(h.outcome(exits_seen, errors_seen))
            exits_seen, errors_seen = len(h.exits), len(h.entry_errors)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return tuple(outcomes)

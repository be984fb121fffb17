"""rtl/top.py InterruptPath under amaranth.sim: the external-interrupt decision (EXT-1..6,
PI-2..5, PI-16, VID-12), the seed, and the decision trace port, with exact values."""

from cosim.hardware.bench import AmaranthBench, component_ports
from cosim.hardware.memory import MemoryResponder, WordMemory
from rtl.top import Decision, InterruptPath, PathState

from .conftest import simulate

DESC = 0x10000
PI_CONTROLS = {
    "pin_based": {"ext_intr_exiting": 1, "posted_intr": 1},
    "proc_based": {"use_tpr_shadow": 1, "secondary_ctls": 1},
    "secondary": {"virt_intr_delivery": 1},
    "exit_controls": {"ack_intr_on_exit": 1},
}
NO_EXITING = {"pin_based": {}, "proc_based": {}, "secondary": {}, "exit_controls": {}}


def bits(*vectors):
    return sum(1 << v for v in vectors)


class Bench:
    """Drives one InterruptPath and serves its memory port from a WordMemory."""

    def __init__(self, ctx, dut, memory):
        self.ctx, self.dut, self.memory = ctx, dut, memory
        self.bench = AmaranthBench(ctx, component_ports(dut))
        self.responder = MemoryResponder(memory)
        self.events = []  # (kind, value) in order

    async def tick(self, n=1):
        ctx, dut = self.ctx, self.dut
        for _ in range(n):
            self.responder.serve(self.bench)
            await ctx.tick()
            if ctx.get(dut.vmexit):
                self.events.append(("vmexit", ctx.get(dut.exit_intr_info).as_value().value))
            if ctx.get(dut.entry_failed):
                self.events.append(("entry_failed", ctx.get(dut.entry_error)))
            if ctx.get(dut.delivered.valid):
                self.events.append(("delivered", ctx.get(dut.delivered.vector)))
            if ctx.get(dut.decision_valid):
                self.events.append(("trace", ctx.get(dut.decision)))

    async def setup(self, controls=PI_CONTROLS, nv=0xFF, non_root=1, rflags_if=1, irr=0,
                    isr=0, tpr=0, virr=0, rvi=0, svi=0, vtpr=0):
        ctx, dut = self.ctx, self.dut
        for name, value in controls.items():
            ctx.set(getattr(dut, name), value)
        ctx.set(dut.posted_intr_nv, nv)
        ctx.set(dut.posted_intr_desc_addr, DESC)
        ctx.set(dut.rflags_if, rflags_if)
        ctx.set(dut.load, 1)
        ctx.set(dut.preload, {
            "lapic": {"irr": irr, "isr": isr, "tmr": 0, "tpr": tpr},
            "vapic": {"virr": virr, "visr": 0, "vtpr": vtpr, "status": {"rvi": rvi, "svi": svi}},
            "non_root": non_root})
        await self.tick()
        ctx.set(dut.load, 0)

    async def accept(self, vector):
        self.ctx.set(self.dut.accept.valid, 1)
        self.ctx.set(self.dut.accept.vector, vector)
        await self.tick()
        self.ctx.set(self.dut.accept.valid, 0)

    async def strobe(self, name):
        self.ctx.set(getattr(self.dut, name), 1)
        await self.tick()
        self.ctx.set(getattr(self.dut, name), 0)


def run(testbench, memory=None):
    dut = InterruptPath()
    memory = memory or WordMemory()
    simulate(dut, lambda ctx: testbench(Bench(ctx, dut, memory)))
    return memory


def seed_memory():
    memory = WordMemory()
    memory.store_descriptor(DESC, pir=bits(0x41), on=True, sn=False, nv=0xFF, ndst=0)
    return memory


def test_seed_nv_is_posted_interrupt_processing_without_vm_exit():
    """PI-3, PI-5, PI-7, I-5, I-6: the hardware outcome of the seed."""
    async def tb(b):
        await b.setup(rflags_if=0)
        await b.accept(0xFF)
        await b.tick(12)
        ctx, dut = b.ctx, b.dut
        assert [e[0] for e in b.events] == ["trace"]
        record = b.events[0][1]
        assert (record.vector, record.nv, record.decision) == (0xFF, 0xFF,
                                                               Decision.POSTED_INTERRUPT)
        assert (record.harvested, record.virr_before, record.virr_after) == \
            (bits(0x41), 0, bits(0x41))
        assert (record.rvi_before, record.rvi_after) == (0, 0x41)
        assert (ctx.get(dut.irr), ctx.get(dut.isr), ctx.get(dut.ppr)) == (0, 0, 0)
        assert ctx.get(dut.state) == PathState.NON_ROOT
        assert ctx.get(dut.status).rvi == 0x41
    memory = run(tb, seed_memory())
    assert memory.load_descriptor(DESC)["pir"] == 0
    assert memory.load_descriptor(DESC)["on"] is False


def test_seed_with_if_set_delivers_0x41_to_l2():
    async def tb(b):
        await b.setup(rflags_if=1)
        await b.accept(0xFF)
        await b.tick(12)
        assert ("delivered", 0x41) in b.events
        assert b.ctx.get(b.dut.visr) == bits(0x41)
    run(tb, seed_memory())


def test_pi_4_ext_3_other_vector_exits_with_ack():
    async def tb(b):
        await b.setup()
        await b.accept(0x50)
        await b.tick(2)
        assert b.events[0] == ("vmexit", 0x80000050)
        assert b.events[1][1].decision == Decision.VM_EXIT
        ctx, dut = b.ctx, b.dut
        assert (ctx.get(dut.irr), ctx.get(dut.isr), ctx.get(dut.ppr)) == (0, bits(0x50), 0x50)
        assert ctx.get(dut.state) == PathState.ROOT
    memory = run(tb, seed_memory())
    assert memory.load_descriptor(DESC)["pir"] == bits(0x41)


def test_ext_4_no_ack_exit_leaves_irr():
    controls = {"pin_based": {"ext_intr_exiting": 1}, "proc_based": {}, "secondary": {},
                "exit_controls": {}}

    async def tb(b):
        await b.setup(controls=controls)
        await b.accept(0x50)
        await b.tick(2)
        assert b.events == [("vmexit", 0)]
        assert (b.ctx.get(b.dut.irr), b.ctx.get(b.dut.isr)) == (bits(0x50), 0)
    run(tb)


def test_apic_9_l1_takes_its_own_interrupt_only_in_its_interrupt_window():
    """In ROOT (L1 runs with IF = 0) a pending interrupt stays in IRR; ``sti`` acknowledges
    the one the local APIC presents (IRR to ISR, PPR raised), with no VM exit or decision;
    a vector masked by PPR stays pending; in NON_ROOT ``sti`` does nothing."""
    async def tb(b):
        ctx, dut = b.ctx, b.dut
        await b.setup(non_root=0, irr=bits(0x50, 0x31), tpr=0x30)
        await b.tick(3)
        assert (ctx.get(dut.intr), ctx.get(dut.irr), ctx.get(dut.isr)) == (1, bits(0x50, 0x31),
                                                                          0)
        await b.strobe("sti")
        await b.tick(2)
        assert (ctx.get(dut.irr), ctx.get(dut.isr), ctx.get(dut.ppr)) == (bits(0x31),
                                                                          bits(0x50), 0x50)
        assert ctx.get(dut.intr) == 0  # 0x31 is masked (class 3 <= PPR class 5)
        await b.strobe("sti")
        await b.tick(2)
        assert (ctx.get(dut.irr), ctx.get(dut.isr)) == (bits(0x31), bits(0x50))
        assert b.events == [] and ctx.get(dut.state) == PathState.ROOT
        # the guest runs without external-interrupt exiting and with IF = 0 (EXT-1: nothing
        # takes the interrupt): L1's sti does not reach the local APIC
        await b.setup(controls=NO_EXITING, irr=bits(0x50), rflags_if=0)
        await b.strobe("sti")
        await b.tick(2)
        assert (ctx.get(dut.irr), ctx.get(dut.isr)) == (bits(0x50), 0)
        assert b.events == [] and ctx.get(dut.state) == PathState.NON_ROOT
    run(tb)


def test_nv_ignored_without_process_posted_interrupts():
    controls = {"pin_based": {"ext_intr_exiting": 1}, "proc_based": {}, "secondary": {},
                "exit_controls": {"ack_intr_on_exit": 1}}

    async def tb(b):
        await b.setup(controls=controls)
        await b.accept(0xFF)
        await b.tick(2)
        assert b.events[0] == ("vmexit", 0x800000FF)
    run(tb)


def test_ext_1_no_exiting_delivers_through_the_idt_when_if_is_set():
    async def tb(b):
        await b.setup(controls=NO_EXITING, rflags_if=0)
        await b.accept(0x66)
        await b.tick(3)
        assert b.events == []
        b.ctx.set(b.dut.rflags_if, 1)
        await b.tick(2)
        assert b.events[0] == ("delivered", 0x66)
        assert b.ctx.get(b.dut.isr) == bits(0x66)
    run(tb)


def test_pi_16_c3_nv_masked_by_tpr_does_nothing():
    async def tb(b):
        await b.setup(tpr=0xF0)
        await b.accept(0xFF)
        await b.tick(10)
        assert b.events == [] and b.ctx.get(b.dut.irr) == bits(0xFF)
    run(tb, seed_memory())


def test_c1_higher_vector_exits_and_nv_stays_pending():
    async def tb(b):
        await b.setup(nv=0xE0, irr=bits(0xE0, 0xF5))
        await b.tick(2)
        assert b.events[0] == ("vmexit", 0x800000F5)
        assert (b.ctx.get(b.dut.irr), b.ctx.get(b.dut.isr)) == (bits(0xE0), bits(0xF5))
    run(tb, seed_memory())


def test_vid_12_virtual_interrupt_delivery_goes_before_the_exit():
    async def tb(b):
        await b.setup(virr=bits(0x80), rvi=0x80, non_root=0)
        await b.strobe("vm_entry")  # evaluation recognizes 0x80
        await b.accept(0x50)
        await b.tick(3)
        assert [e[0] for e in b.events] == ["delivered", "vmexit", "trace"]
        assert b.events[0] == ("delivered", 0x80) and b.events[1] == ("vmexit", 0x80000050)
    run(tb)


def entry_result(controls, nv=0xFF, addr=DESC, maxphyaddr=46):
    result = []

    async def tb(b):
        await b.setup(controls=controls, nv=nv, non_root=0)
        b.ctx.set(b.dut.posted_intr_desc_addr, addr)
        b.ctx.set(b.dut.maxphyaddr, maxphyaddr)
        await b.strobe("vm_entry")
        result.append(b.events[0] if b.events else ("entered", b.ctx.get(b.dut.state)))
    run(tb)
    return result[0]


def test_ext_5_6_vm_entry_checks():
    ok = ("entered", PathState.NON_ROOT)
    fail = ("entry_failed", 7)
    assert entry_result(PI_CONTROLS) == ok
    no_vid = {**PI_CONTROLS, "secondary": {}}
    assert entry_result(no_vid) == fail  # PPI without VID
    no_ack = {**PI_CONTROLS, "exit_controls": {}}
    assert entry_result(no_ack) == fail  # PPI without ack-on-exit
    vid_no_exiting = {**PI_CONTROLS, "pin_based": {}}
    assert entry_result(vid_no_exiting) == fail  # EXT-5
    no_shadow = {**PI_CONTROLS, "proc_based": {"secondary_ctls": 1}}
    assert entry_result(no_shadow) == fail
    assert entry_result(PI_CONTROLS, nv=0x100) == fail  # NV[15:8] != 0
    assert entry_result(PI_CONTROLS, addr=DESC + 0x20) == fail  # misaligned
    assert entry_result(PI_CONTROLS, addr=1 << 46) == fail  # beyond MAXPHYADDR
    assert entry_result(PI_CONTROLS, addr=(1 << 46) - 4096) == ok


def test_ext_2_exit_regardless_of_rflags_if_without_posted_interrupts():
    controls = {"pin_based": {"ext_intr_exiting": 1}, "proc_based": {}, "secondary": {},
                "exit_controls": {"ack_intr_on_exit": 1}}

    async def tb(b):
        await b.setup(controls=controls, rflags_if=0)
        b.ctx.set(b.dut.blocking, 1)
        await b.accept(0x70)
        await b.tick(2)
        assert b.events[0] == ("vmexit", 0x80000070)
    run(tb)


def test_c2_nv_first_then_the_lower_vector_exits():
    async def tb(b):
        await b.setup(irr=bits(0xFF, 0x50), rflags_if=0)
        await b.tick(12)
        kinds = [e[0] for e in b.events]
        assert kinds == ["trace", "vmexit", "trace"]
        assert b.events[0][1].decision == Decision.POSTED_INTERRUPT
        assert b.events[1] == ("vmexit", 0x80000050)
        assert (b.ctx.get(b.dut.irr), b.ctx.get(b.dut.isr)) == (0, bits(0x50))
    run(tb, seed_memory())


def test_c17_level_triggered_nv_step_4_eoi_sends_the_eoi_message():
    async def tb(b):
        await b.setup(rflags_if=0)
        b.ctx.set(b.dut.accept.level, 1)
        await b.accept(0xFF)
        b.ctx.set(b.dut.accept.level, 0)
        messages = []
        for _ in range(12):
            await b.tick()
            if b.ctx.get(b.dut.eoi_message.valid):
                messages.append(b.ctx.get(b.dut.eoi_message.vector))
        assert messages == [0xFF]
        assert (b.ctx.get(b.dut.isr), b.ctx.get(b.dut.tmr)) == (0, bits(0xFF))
    run(tb, seed_memory())


def test_c18_spurious_vector_equal_to_nv_never_starts_processing():
    """INTA is issued only while INTR is asserted, so the spurious vector never reaches the
    NV comparison; a masked NV with SVR == NV does nothing."""
    async def tb(b):
        b.ctx.set(b.dut.spurious_vector, 0xFF)
        await b.setup(irr=bits(0xFF), tpr=0xF0)
        await b.tick(10)
        assert b.events == [] and b.ctx.get(b.dut.state) == PathState.NON_ROOT
    memory = run(tb, seed_memory())
    assert memory.log == []


def test_vid_bit_without_activated_secondary_controls_is_not_in_effect():
    """The VM-entry checks and virtual-interrupt delivery read the same effective VID: with
    the secondary controls not activated, VID is off and nothing is delivered at entry."""
    controls = {"pin_based": {"ext_intr_exiting": 1}, "proc_based": {"use_tpr_shadow": 1},
                "secondary": {"virt_intr_delivery": 1}, "exit_controls": {}}

    async def tb(b):
        await b.setup(controls=controls, virr=bits(0x80), rvi=0x80, non_root=0)
        await b.strobe("vm_entry")
        await b.tick(3)
        assert b.events == [] and b.ctx.get(b.dut.state) == PathState.NON_ROOT
        assert b.ctx.get(b.dut.virr) == bits(0x80)
    run(tb)

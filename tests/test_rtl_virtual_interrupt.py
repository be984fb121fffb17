"""rtl/virtual_interrupt.py VirtualInterrupt under amaranth.sim: clauses VID-1..12 and corner
cases C7, C8, C15, C16, C24 of docs/clauses.toml, with exact values."""

from rtl.virtual_interrupt import VirtualInterrupt

from .conftest import simulate


def bits(*vectors):
    return sum(1 << v for v in vectors)


def run(testbench):
    dut = VirtualInterrupt()

    def setup(ctx):
        ctx.set(dut.vid_enable, 1)
        ctx.set(dut.rflags_if, 1)

    simulate(dut, lambda ctx: testbench(ctx, dut), setup)


async def load(ctx, dut, virr=0, visr=0, vtpr=0, rvi=0, svi=0):
    ctx.set(dut.load, 1)
    ctx.set(dut.preload, {"virr": virr, "visr": visr, "vtpr": vtpr,
                          "status": {"rvi": rvi, "svi": svi}})
    await ctx.tick()
    ctx.set(dut.load, 0)


def port(dut, name):
    """A port by its Verilog name (``merge__bits`` is ``dut.merge.bits``)."""
    value = dut
    for part in name.split("__"):
        value = getattr(value, part)
    return value


async def strobe(ctx, dut, name, **values):
    ctx.set(port(dut, name), 1)
    for key, value in values.items():
        ctx.set(port(dut, key), value)
    await ctx.tick()
    ctx.set(port(dut, name), 0)


def status(ctx, dut):
    s = ctx.get(dut.status)
    return (s.rvi, s.svi)


async def entry_and_delivery(ctx, dut):
    """VM entry, then one idle edge for the delivery; returns the delivered vector or None."""
    await strobe(ctx, dut, "vm_entry")
    await ctx.tick()
    return ctx.get(dut.delivered.vector) if ctx.get(dut.delivered.valid) else None


def test_vid_3_11_vm_entry_virtualizes_ppr():
    async def tb(ctx, dut):
        await load(ctx, dut, vtpr=0x35, svi=0x60)
        await strobe(ctx, dut, "vm_entry")
        assert ctx.get(dut.vppr) == 0x60
        await load(ctx, dut, vtpr=0x75, svi=0x60)
        await strobe(ctx, dut, "vm_entry")
        assert ctx.get(dut.vppr) == 0x75
    run(tb)


def test_vid_4_7_delivery_after_entry():
    async def tb(ctx, dut):
        await load(ctx, dut, virr=bits(0x51, 0x93), rvi=0x93)
        assert await entry_and_delivery(ctx, dut) == 0x93
        assert ctx.get(dut.virr) == bits(0x51)
        assert ctx.get(dut.visr) == bits(0x93)
        assert status(ctx, dut) == (0x51, 0x93)
        assert ctx.get(dut.vppr) == 0x90
        assert ctx.get(dut.recognized) == 0
    run(tb)


def test_vid_4_class_compare_not_recognized_at_equal_class():
    async def tb(ctx, dut):
        await load(ctx, dut, virr=bits(0x45), rvi=0x45, vtpr=0x40)
        assert await entry_and_delivery(ctx, dut) is None
        assert ctx.get(dut.recognized) == 0
    run(tb)


def test_vid_6_c16_recognized_waits_for_if_and_no_blocking():
    async def tb(ctx, dut):
        ctx.set(dut.rflags_if, 0)
        await load(ctx, dut, virr=bits(0x80), rvi=0x80)
        assert await entry_and_delivery(ctx, dut) is None
        assert ctx.get(dut.recognized) == 1
        ctx.set(dut.rflags_if, 1)
        ctx.set(dut.blocking, 1)
        await ctx.tick()
        assert ctx.get(dut.delivered.valid) == 0
        ctx.set(dut.blocking, 0)
        await ctx.tick()
        assert (ctx.get(dut.delivered.valid), ctx.get(dut.delivered.vector)) == (1, 0x80)
    run(tb)


def test_vid_4_c15_interrupt_window_exiting_prevents_recognition():
    async def tb(ctx, dut):
        ctx.set(dut.intr_window_exiting, 1)
        await load(ctx, dut, virr=bits(0x80), rvi=0x80)
        assert await entry_and_delivery(ctx, dut) is None
        assert ctx.get(dut.recognized) == 0
    run(tb)


def test_sdm_29_2_2_recognition_ceases_after_one_delivery():
    async def tb(ctx, dut):
        await load(ctx, dut, virr=bits(0x93, 0xE1), rvi=0x93)  # stale RVI (C9)
        assert await entry_and_delivery(ctx, dut) == 0x93
        await ctx.tick()
        assert ctx.get(dut.delivered.valid) == 0  # 0xe1 waits for an evaluation
        assert status(ctx, dut) == (0xE1, 0x93)
        await strobe(ctx, dut, "tpr_write__valid", tpr_write__value=0)
        await ctx.tick()
        assert (ctx.get(dut.delivered.valid), ctx.get(dut.delivered.vector)) == (1, 0xE1)
    run(tb)


def test_vid_8_eoi_virtualization_then_next_delivery():
    async def tb(ctx, dut):
        await load(ctx, dut, visr=bits(0x93, 0x31), virr=bits(0x51), rvi=0x51, svi=0x93)
        await strobe(ctx, dut, "eoi")
        assert ctx.get(dut.visr) == bits(0x31)
        assert status(ctx, dut) == (0x51, 0x31)
        assert ctx.get(dut.vppr) == 0x30
        assert ctx.get(dut.recognized) == 1
        await ctx.tick()
        assert ctx.get(dut.delivered.vector) == 0x51
    run(tb)


def test_vid_8_c24_eoi_exit_bitmap_exits_without_evaluation():
    async def tb(ctx, dut):
        await load(ctx, dut, visr=bits(0x93), virr=bits(0x51), rvi=0x51, svi=0x93)
        ctx.set(dut.eoi_exit_bitmap, bits(0x93))
        await strobe(ctx, dut, "eoi")
        assert (ctx.get(dut.eoi_exit), ctx.get(dut.eoi_exit_vector)) == (1, 0x93)
        assert ctx.get(dut.visr) == 0 and status(ctx, dut) == (0x51, 0x00)
        assert ctx.get(dut.recognized) == 0  # trap-like exit, no evaluation
    run(tb)


def test_vid_9_tpr_virtualization_and_below_threshold_exit():
    async def tb(ctx, dut):
        await load(ctx, dut, virr=bits(0x45), rvi=0x45)
        await strobe(ctx, dut, "tpr_write__valid", tpr_write__value=0x50)
        assert (ctx.get(dut.vtpr), ctx.get(dut.vppr), ctx.get(dut.recognized)) == (0x50, 0x50, 0)
        await strobe(ctx, dut, "tpr_write__valid", tpr_write__value=0x30)
        assert ctx.get(dut.recognized) == 1
        ctx.set(dut.vid_enable, 0)
        ctx.set(dut.tpr_threshold, 4)
        await strobe(ctx, dut, "tpr_write__valid", tpr_write__value=0x3F)
        assert ctx.get(dut.tpr_below_threshold) == 1
        await strobe(ctx, dut, "tpr_write__valid", tpr_write__value=0x40)
        assert ctx.get(dut.tpr_below_threshold) == 0
    run(tb)


def test_vid_10_self_ipi():
    async def tb(ctx, dut):
        await load(ctx, dut, rvi=0x30, virr=bits(0x30))
        await strobe(ctx, dut, "self_ipi", self_ipi_vector=0x70)
        assert ctx.get(dut.virr) == bits(0x30, 0x70)
        assert status(ctx, dut) == (0x70, 0)
        await ctx.tick()
        assert ctx.get(dut.delivered.vector) == 0x70
    run(tb)


def test_merge_c7_c8_pir_bits_and_rvi_max():
    async def tb(ctx, dut):
        await load(ctx, dut, rvi=0x90, virr=bits(0x90), vtpr=0xF0)  # VTPR masks delivery
        ctx.set(dut.merge.rvi_vector, 0x41)
        await strobe(ctx, dut, "merge__valid", merge__bits=bits(0x41, 0x05),
                     merge__rvi_valid=1, merge__evaluate=1)
        assert ctx.get(dut.virr) == bits(0x90, 0x41, 0x05)
        assert status(ctx, dut) == (0x90, 0)  # C8: RVI stays the max
        await load(ctx, dut, rvi=0x00)
        ctx.set(dut.merge.rvi_vector, 0x05)
        await strobe(ctx, dut, "merge__valid", merge__bits=bits(0x05), merge__rvi_valid=1,
                     merge__evaluate=1)
        assert status(ctx, dut) == (0x05, 0)  # C7: merged, RVI < 16, never recognized
        assert ctx.get(dut.recognized) == 0
    run(tb)


def test_vid_5_only_the_listed_operations_evaluate():
    """A merge without `evaluate` raises RVI but recognizes nothing (VID-5: "No other
    operations do so, even if they modify RVI or VPPR"); a load neither."""
    async def tb(ctx, dut):
        await load(ctx, dut, virr=bits(0x80), rvi=0x80)
        assert ctx.get(dut.recognized) == 0
        ctx.set(dut.merge.rvi_vector, 0x90)
        await strobe(ctx, dut, "merge__valid", merge__bits=bits(0x90), merge__rvi_valid=1,
                     merge__evaluate=0)
        assert status(ctx, dut) == (0x90, 0) and ctx.get(dut.recognized) == 0
        await ctx.tick()
        assert ctx.get(dut.delivered.valid) == 0
        ctx.set(dut.merge.valid, 0)
        await strobe(ctx, dut, "merge__evaluate")
        assert ctx.get(dut.recognized) == 1
    run(tb)

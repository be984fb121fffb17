"""rtl/ipi_virtualization.py IpiVirtualization under amaranth.sim with the Python memory model:
clauses IPIV-1..9 and corner cases C11-C13 of docs/clauses.toml, with exact values."""

import pytest
from amaranth.sim import Simulator

from cosim.hardware.memory import WordMemory
from rtl.ipi_virtualization import IpiVirtualization
from rtl.memory import MemOp

TABLE = 0x8000
PID = 0x10040
NDST = 0x00000300  # x2APIC ID 0x300; xAPIC: NDST[15:8] = 3


def setup_memory(on=False, sn=False, entry=PID | 1, pir=0):
    memory = WordMemory()
    memory.words[TABLE + 8 * 2] = entry
    memory.store_descriptor(PID, pir=pir, on=on, sn=sn, nv=0xF2, ndst=NDST)
    return memory


def send(memory, vector=0xFF, target=2, enable=1, last=4, x2apic=0, agent=None):
    dut = IpiVirtualization()
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    result = {"exit": 0, "notify": [], "ops": []}

    async def bench(ctx):
        for name, value in dict(enable=enable, pid_table_addr=TABLE, last_pid_index=last,
                                x2apic=x2apic, vector=vector, target=target).items():
            ctx.set(getattr(dut, name), value)
        ctx.set(dut.send, 1)
        await ctx.tick()
        ctx.set(dut.send, 0)
        for cycle in range(50):
            if ctx.get(dut.apic_write_exit):
                result["exit"] = ctx.get(dut.exit_qualification)
            if ctx.get(dut.notify):
                result["notify"].append((ctx.get(dut.notify_vector), ctx.get(dut.notify_dest)))
            if ctx.get(dut.done):
                return
            ctx.set(dut.mem.ready, 0)
            if ctx.get(dut.mem.valid):
                if agent is not None:
                    agent(cycle, memory, MemOp(ctx.get(dut.mem.op)))
                op = MemOp(ctx.get(dut.mem.op))
                old = memory.perform(op, ctx.get(dut.mem.addr), ctx.get(dut.mem.data),
                                     ctx.get(dut.mem.compare))
                result["ops"].append((op.name, ctx.get(dut.mem.addr)))
                ctx.set(dut.mem.ready, 1)
                ctx.set(dut.mem.rdata, old)
            await ctx.tick()
        raise AssertionError("the sender never finished")

    sim.add_testbench(bench)
    sim.run()
    return result


def test_ipiv_5_6_7_post_set_on_and_notify_once():
    memory = setup_memory()
    r = send(memory, vector=0xFF)
    assert r["ops"] == [("READ", TABLE + 16), ("OR", PID + 24), ("READ", PID + 32),
                        ("CMPXCHG", PID + 32)]
    d = memory.load_descriptor(PID)
    assert (d["pir"], d["on"], d["sn"], d["nv"], d["ndst"]) == (1 << 0xFF, True, False, 0xF2,
                                                               NDST)
    assert r["notify"] == [(0xF2, 3)] and r["exit"] == 0


def test_ipiv_8_x2apic_destination_is_all_of_ndst():
    r = send(setup_memory(), x2apic=1)
    assert r["notify"] == [(0xF2, 0x300)]


@pytest.mark.parametrize("on,sn", [(True, False), (False, True), (True, True)])
def test_ipiv_9_c11_on_or_sn_posts_without_notification(on, sn):
    memory = setup_memory(on=on, sn=sn, pir=1 << 0x30)
    r = send(memory, vector=0x41)
    d = memory.load_descriptor(PID)
    assert d["pir"] == 1 << 0x30 | 1 << 0x41
    assert (d["on"], d["sn"]) == (on, sn)
    assert r["notify"] == [] and ("CMPXCHG", PID + 32) not in r["ops"]


@pytest.mark.parametrize("vector", [0, 15])
def test_ipiv_2_c12_illegal_vector_exits_without_memory_access(vector):
    r = send(setup_memory(), vector=vector)
    assert r["exit"] == 0x300 and r["ops"] == [] and r["notify"] == []


def test_ipiv_1_disabled_exits():
    r = send(setup_memory(), enable=0)
    assert r["exit"] == 0x300 and r["ops"] == []


def test_ipiv_3_c13_target_beyond_the_table_exits():
    r = send(setup_memory(), target=5, last=4)
    assert r["exit"] == 0x300 and r["ops"] == []


@pytest.mark.parametrize("entry", [PID, PID | 0b11, PID | 0b100001, (1 << 46) | PID | 1])
def test_ipiv_4_c13_invalid_entry_exits_after_reading_it(entry):
    memory = setup_memory(entry=entry)
    r = send(memory)
    assert r["exit"] == 0x300 and r["ops"] == [("READ", TABLE + 16)]
    assert memory.load_descriptor(PID)["pir"] == 0


def test_ipiv_6_notify_info_update_is_indivisible_under_a_concurrent_writer():
    """Another agent sets SN between this sender's READ and CMPXCHG of NotifyInfo: the
    CMPXCHG fails, the update is redone, and no notification is sent (SN = 1)."""
    memory = setup_memory()
    state = {"done": False}

    def agent(cycle, mem, op):
        if op is MemOp.CMPXCHG and not state["done"]:
            mem.perform(MemOp.OR, PID + 32, 0b10)
            state["done"] = True

    r = send(memory, agent=agent)
    assert r["ops"][-2:] == [("CMPXCHG", PID + 32), ("READ", PID + 32)]
    d = memory.load_descriptor(PID)
    assert (d["on"], d["sn"]) == (False, True) and r["notify"] == []

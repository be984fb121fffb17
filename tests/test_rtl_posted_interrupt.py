"""rtl/posted_interrupt.py PostedInterruptUnit under amaranth.sim with the Python memory model
(cosim/memory.py): clauses PI-6..PI-14 and corner cases C4, C5, C10, C14 of docs/clauses.toml.
Concurrent posting is tested at every cycle offset against a memory that interleaves writes."""

import random

import pytest
from amaranth.sim import Simulator

from cosim.hardware.bench import AmaranthBench, component_ports
from cosim.hardware.memory import MemoryResponder, WordMemory
from rtl.posted_interrupt import PostedInterruptUnit

ADDR = 0x10000


def run_unit(memory: WordMemory, latency=lambda: 0, other_agent=None, min_cycles=0,
             max_cycles=200):
    """Run one posted-interrupt processing; returns the per-cycle record of the unit's outputs.

    ``other_agent(cycle, memory)`` runs before the memory serves the request of that cycle,
    i.e. between any two of the unit's operations; the bench runs at least ``min_cycles``
    cycles so that the agent's late writes happen too.
    """
    dut = PostedInterruptUnit()
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    record = {"eoi": [], "merge": [], "rvi": [], "order": [], "done_cycle": None}

    responder = MemoryResponder(memory, latency=latency, interleave=other_agent)

    async def bench(ctx):
        b = AmaranthBench(ctx, component_ports(dut))
        b.set("desc_addr", ADDR)
        b.set("start", 1)
        await b.tick()
        b.set("start", 0)
        for cycle in range(max_cycles):
            # amaranth.sim only: the merge port follows ``ready`` combinationally, so it is
            # read after the responder has answered for the coming edge
            served = len(responder.served)
            responder.serve(b)
            for _, op, addr in responder.served[served:]:
                record["order"].append(f"{op.name}@{addr - ADDR}")
            if b.get("eoi"):
                record["eoi"].append(cycle)
                record["order"].append("EOI")
            if b.get("merge__valid"):
                record["merge"].append(b.get("merge__bits"))
                if b.get("merge__evaluate"):
                    record["rvi"].append((b.get("merge__rvi_valid"), b.get("merge__rvi_vector")))
            await b.tick()
            if b.get("done"):
                record["done_cycle"] = cycle + 1
                record["harvested"] = b.get("harvested")
            if record["done_cycle"] is not None and cycle + 1 >= min_cycles:
                return

    sim.add_testbench(bench)
    sim.run()
    assert record["done_cycle"] is not None, "the unit never finished"
    return record


def descriptor(pir, on=True, sn=False, nv=0xF0, ndst=0x12345678):
    memory = WordMemory()
    memory.store_descriptor(ADDR, pir, on, sn, nv, ndst)
    return memory


def test_pi_steps_in_sdm_order_with_exact_effects():
    pir = 1 << 0x41 | 1 << 0x93 | 1 << 0xFF
    memory = descriptor(pir)
    rec = run_unit(memory)
    # PI-10: ON cleared before any PIR word is read; PI-7: one EOI between
    assert rec["order"] == ["AND@32", "EOI", "SWAP@0", "SWAP@8", "SWAP@16", "SWAP@24"]
    assert memory.load_descriptor(ADDR) == {"pir": 0, "on": False, "sn": False, "nv": 0xF0,
                                            "ndst": 0x12345678}  # PI-6, PI-13
    assert sum(rec["merge"]) == pir and rec["harvested"] == pir  # PI-8
    assert rec["rvi"] == [(1, 0xFF)]  # PI-11, PI-12
    assert rec["done_cycle"] == 7  # zero-wait latency from start to done


def test_pi_6_13_14_only_on_and_pir_change_whatever_the_other_bits():
    memory = descriptor(1 << 0x20, on=True, sn=True, nv=0xAB, ndst=0xFFFFFFFF)
    memory.words[ADDR + 32] |= 0x3FFC | 0xFF << 24  # reserved bits set too
    before = memory.read(ADDR + 32)
    run_unit(memory)
    assert memory.read(ADDR + 32) == before & ~1
    assert [entry for entry in memory.log if entry[0] != "SWAP"] == \
        [("AND", ADDR + 32, before, before & ~1)]


def test_c4_empty_pir_leaves_rvi_alone():
    rec = run_unit(descriptor(0, on=True))
    assert rec["harvested"] == 0 and rec["rvi"] == [(0, 0)]


def test_c5_on_clear_still_merges_pir():
    memory = descriptor(1 << 0x50, on=False)
    rec = run_unit(memory)
    assert rec["harvested"] == 1 << 0x50 and rec["rvi"] == [(1, 0x50)]
    assert memory.load_descriptor(ADDR)["on"] is False


def test_c10_sn_does_not_matter_at_the_receiver():
    rec = run_unit(descriptor(1 << 0x61, on=True, sn=True))
    assert rec["harvested"] == 1 << 0x61


@pytest.mark.parametrize("latency", [1, 3])
def test_memory_may_take_any_number_of_cycles(latency):
    memory = descriptor(1 << 0x41)
    rec = run_unit(memory, latency=lambda: latency)
    assert rec["harvested"] == 1 << 0x41
    assert rec["done_cycle"] == 7 + 5 * latency


@pytest.mark.parametrize("offset", range(12))
def test_pi_9_c14_concurrent_post_at_every_cycle_offset_loses_no_bit(offset):
    """Another agent posts vector v (PIR[v] := 1 by locked OR, then ON := 1) at cycle
    ``offset``: the bit ends in VIRR (harvested) or still set in PIR, never both, never
    neither; if it is left in PIR, ON is set again so a notification is pending."""
    for vector in (0x20, 0x7F, 0xBE, 0xFF):
        memory = descriptor(1 << 0x41)

        def agent(cycle, mem, vector=vector):
            if cycle == offset:
                mem.post_pir(ADDR, vector)
            if cycle == offset + 1:
                mem.post_on(ADDR)

        rec = run_unit(memory, other_agent=agent, min_cycles=offset + 2)
        harvested = bool(rec["harvested"] >> vector & 1)
        left = memory.load_descriptor(ADDR)
        in_pir = bool(left["pir"] >> vector & 1)
        assert harvested != in_pir, (vector, offset)
        assert rec["harvested"] & 1 << 0x41
        if in_pir:
            assert left["on"], "a bit left in PIR must be covered by a pending notification"


def test_pi_9_random_interleavings_with_random_latency():
    rng = random.Random(7)
    for _ in range(40):
        pir = rng.getrandbits(256)
        memory = descriptor(pir)
        posts = {rng.randrange(16): rng.randrange(256) for _ in range(3)}

        def agent(cycle, mem, posts=posts):
            if cycle in posts:
                v = posts[cycle]
                mem.post_pir(ADDR, v)
                mem.post_on(ADDR)

        rec = run_unit(memory, latency=lambda: rng.randrange(3), other_agent=agent,
                       min_cycles=17)
        left = memory.load_descriptor(ADDR)["pir"]
        posted = 0
        for v in posts.values():
            posted |= 1 << v
        harvested = rec["harvested"]
        assert harvested & pir == pir  # every bit present at the start reaches VIRR
        assert harvested | pir | posted == pir | posted  # nothing invented
        assert left | posted == posted  # only late posts remain in PIR
        for v in posts.values():  # PI-9: no posted bit is lost
            assert (harvested | left) >> v & 1


def test_pi_17_nv_and_vectors_below_16_are_merged_like_any_other():
    pir = 1 << 0xF0 | 1 << 0x05 | 1 << 0x00
    rec = run_unit(descriptor(pir, nv=0xF0))
    assert rec["harvested"] == pir and rec["rvi"] == [(1, 0xF0)]

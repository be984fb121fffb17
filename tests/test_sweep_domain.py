"""The sweep's domain (cosim/scenario/sweep.py): sizes, numbering, selections, shards, and that
every point is a scenario the format accepts. No simulator."""

import itertools
import random

import pytest

from cosim.campaign.sweep import shard_range
from cosim.scenario import sweep
from cosim.scenario.format import ROUTES, InterruptEvent, VmEntryEvent, parse_scenario

DEFAULT, FULL = sweep.MODES["default"], sweep.MODES["full"]


def test_the_default_mode_is_the_decision_cross_plus_the_rest():
    decision, context, controls, entry = DEFAULT.parts
    # every vector 16-255 x every NV[7:0] x every PPR class x three routes: "about 2.9 million"
    assert decision.size == 240 * 256 * 16 * 3 == 2_949_120
    assert context.size == 240 * 2 * (31 * 4 - 16) * 3 == 155_520
    assert controls.size == 6 * 240 * 2 * 2 * 16 * 3 == 276_480
    assert entry.size == 9 + 3
    assert DEFAULT.size == 3_381_132
    assert FULL.size == 240 * 256 * 31 * 4 * 3 * (1 + 6 * 2) + 12 == 297_123_852


def test_control_combinations_split_by_the_entry_checks():
    """VID needs external-interrupt exiting, posted interrupts need VID and acknowledge on
    exit (SDM 26.2.1.1): 7 valid combinations of the four controls, 9 invalid ones."""
    names = sorted(map(sweep.combo_name, sweep.VALID_COMBOS))
    assert names == sorted(["none", "EIE", "AIE", "EIE+AIE", "EIE+VID", "EIE+AIE+VID",
                            "EIE+AIE+PPI+VID"])
    assert len(sweep.INVALID_COMBOS) == 9 and sweep.combo_name(sweep.PI_ON) == "EIE+AIE+PPI+VID"


def test_points_are_numbered_in_order_and_found_by_number():
    assert [p.index for p in DEFAULT.points(2_949_110, 2_949_130)] == list(
        range(2_949_110, 2_949_130))
    for index in (0, 1, 2_949_119, 2_949_120, 3_381_131, 123_457):
        assert DEFAULT.point(index).index == index
    first = DEFAULT.point(0)
    assert (first.vector, first.nv, first.ppr_class, first.route) == (16, 0, 0, ROUTES[0])
    with pytest.raises(IndexError):
        DEFAULT.point(DEFAULT.size)


def test_a_selection_of_parts_keeps_the_numbers():
    chosen = sweep.mode("default", ("entry", "context"))
    assert chosen.name == "default:context,entry"  # the mode's order, not the argument's
    assert chosen.size == 155_520 + 12
    points = list(chosen.points())
    assert points[0].index == 2_949_120 and points[-1].index == 3_381_131
    assert [p.index for p in points] == [DEFAULT.point(p.index).index for p in points]
    assert chosen.point(3_381_131) == DEFAULT.point(3_381_131)
    with pytest.raises(KeyError):
        sweep.mode("default", ("nope",))


def test_the_decision_cross_holds_every_vector_nv_class_and_route_once():
    seen = {(p.vector, p.nv, p.ppr_class, p.route) for p in DEFAULT.points(0, 2_949_120)}
    assert seen == set(itertools.product(range(16, 256), range(256), range(16), ROUTES))


def test_every_point_is_a_valid_scenario():
    """A sample of every part through the file format's own validation (the sweep builds
    scenarios in memory; they must be ones a file could hold)."""
    rng = random.Random(1)
    for mode in (DEFAULT, FULL):
        for offset, part in zip(mode.offsets, mode.parts, strict=True):
            for index in sorted(rng.sample(range(part.size), min(part.size, 40))):
                point = mode.point(offset + index)
                scenario = point.scenario()
                assert parse_scenario(scenario.to_dict(), scenario.path) == scenario
                if point.entry_check:
                    assert scenario.start == "l1" and scenario.events == (VmEntryEvent(),)
                    assert scenario.vmcs12.entry_check_failure(scenario.maxphyaddr)
                else:
                    assert scenario.events == (InterruptEvent(vector=point.vector,
                                                              route=point.route),)
                    assert scenario.vmcs12.entry_check_failure(scenario.maxphyaddr) is None


def test_ppr_sources_and_descriptor_states():
    point = next(p for p in DEFAULT.points(2_949_120, 2_949_120 + 400)
                 if p.ppr_source == "isr" and p.pir and p.on)
    scenario = point.scenario()
    assert scenario.l1_apic.isr == {point.ppr_class << 4} and scenario.l1_apic.tpr == 0
    assert scenario.pid.pir == {sweep.POSTED_VECTOR} and scenario.pid.on
    tpr = DEFAULT.point(5).scenario()
    assert tpr.l1_apic.tpr == DEFAULT.point(5).ppr_class << 4 and not tpr.l1_apic.isr


def test_points_differing_only_in_the_route_are_one_hardware_job():
    a, b, c = DEFAULT.points(300, 303)
    assert {a.route, b.route, c.route} == set(ROUTES)
    assert a.hardware_key == b.hardware_key == c.hardware_key
    assert DEFAULT.point(303).hardware_key != a.hardware_key


@pytest.mark.parametrize("n", [1, 2, 3, 7, 1000])
def test_shards_cut_the_points_into_contiguous_disjoint_ranges(n):
    ranges = [shard_range(DEFAULT.size, (k, n)) for k in range(1, n + 1)]
    assert ranges[0][0] == 0 and ranges[-1][1] == DEFAULT.size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert max(hi - lo for lo, hi in ranges) - min(hi - lo for lo, hi in ranges) <= 1

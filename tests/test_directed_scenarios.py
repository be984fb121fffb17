"""Each KVM version's result on each shipped directed scenario (docs/kernel.md)."""

from pathlib import Path

import pytest

from cosim.reference.kvm import run_model
from cosim.scenario.format import load_scenario
from cosim.scenario.outcome import VmExit
from software_model import KernelVersion

SCENARIOS = Path(__file__).parent.parent / "scenarios"
PRE, POST, NOV = KernelVersion.PRE_PATCH, KernelVersion.POST_PATCH, KernelVersion.NOV_2024

#: scenario -> version -> the [expect] fields (the hardware outcome) that version misses; any
#: version not listed misses none. Pre-patch misses are the seed bug (KB1); the others are
#: the known bugs KB2, KB3, KB4, KB6 and the deviations D2, D10 (cosim/deviations.py;
#: nv-level-triggered's KB5 is in a field its [expect] does not check).
SEED_MISSES = ["vmexit", "pid.pir", "pid.on", "l2.visr", "l2.svi", "l2.delivered"]
D10_MISSES = ["l2.virr", "l2.visr", "l2.svi", "l2.delivered"]
MISSES = {
    "seed-ipiv": {PRE: SEED_MISSES},
    "seed-device-post": {PRE: SEED_MISSES},
    "pir-holds-nv": {PRE: SEED_MISSES},
    "sn-at-receiver": {PRE: ["vmexit", "pid.pir", "pid.on", "l2.delivered"]},
    "two-notifications": {PRE: ["pid.pir", "pid.on", "l2.visr", "l2.svi", "l2.delivered"]},
    "nv-with-empty-pir": {PRE: ["vmexit", "l1_apic.isr", "pid.on"]},
    "rvi-above-pir": {PRE: ["vmexit", "l2.virr"]},
    "intr-window-exiting": {PRE: ["pid.pir", "pid.on", "l2.virr", "l2.rvi"]},
    "l2-interrupts-disabled": {PRE: ["vmexit", "pid.pir", "pid.on", "l2.virr", "l2.rvi"]},
    "nv-with-on-clear": {PRE: ["vmexit", "pid.pir", "l2.delivered"],  # KB4
                         POST: ["pid.pir", "l2.delivered"], NOV: ["pid.pir", "l2.delivered"]},
    "pir-vector-zero": {PRE: ["vmexit", "pid.pir", "pid.on", "l2.virr"],  # D2
                        POST: ["pid.pir", "l2.virr"], NOV: ["pid.pir", "l2.virr"]},
    "rvi-below-virr": {PRE: ["vmexit", "l2.virr", "l2.rvi"],  # KB6
                       POST: ["l2.rvi"], NOV: ["l2.rvi"]},
    "nv-before-lower-vector": {PRE: ["pid.pir", "pid.on"], POST: ["pid.pir", "pid.on"]},  # KB2
    "l2-virtual-before-l1-exit": {v: D10_MISSES for v in KernelVersion},  # D10
    "trapped-ipi-nv-masked": {v: ["l1_apic.irr", "pid.pir", "pid.on", "l2.delivered"]
                              for v in KernelVersion},  # KB3
    "nv-before-lower-vector-empty-pir": {PRE: ["pid.on"], POST: ["pid.on"]},  # KB2
    # alone, the model lands a race after its event (it has no cycles): 0x52 stays in PIR
    "race-during-processing": {PRE: ["vmexit", "pid.pir"], POST: ["pid.pir"],
                               NOV: ["pid.pir"]},
    "nv-while-in-l0": {v: ["l1_apic.irr"] for v in KernelVersion},  # KB7
    "l1-svi-in-vmcs02": {v: ["l2.svi"] for v in (PRE, POST)},  # KB8
    "posted-edge-keeps-tmr": {v: ["l1_apic.eoi_messages"] for v in KernelVersion},  # KB9
    "rvi-outside-virr-at-entry": {v: ["l2.visr", "l2.delivered"] for v in KernelVersion},
    "l2-virtual-after-notification-at-entry": {v: ["l2.visr", "l2.delivered"]
                                               for v in KernelVersion},  # D10
    "l2-virtual-before-l1-exit-order": {v: ["l2.virr", "l2.visr", "l2.delivered"]
                                        for v in KernelVersion},  # D10
    "kb3-nv-already-pending": {v: ["pid.on"] for v in KernelVersion},
    "kb3-strands-later-posts": {v: ["l1_apic.irr"] for v in KernelVersion},
    "kb4-with-racing-post": {v: ["pid.pir", "l2.visr", "l2.delivered"] for v in KernelVersion},
    "kb4-consequence-at-l2-eoi": {PRE: ["vmexit", "mode", "l1_apic.isr", "pid.pir",
                                        "l2.delivered"],
                                  **{v: ["pid.pir", "l2.virr", "l2.visr", "l2.delivered"]
                                     for v in (POST, NOV)}},
    "kb4-rvi-outside-virr": {PRE: ["vmexit", "mode", "l1_apic.isr", "pid.pir", "l2.virr"],
                             **{v: ["pid.pir", "l2.virr"] for v in (POST, NOV)}},
    "d2-bit-zero-stays-in-pir": {PRE: ["vmexit", "mode", "l1_apic.isr", "pid.pir", "l2.virr"],
                                 **{v: ["pid.pir", "l2.virr"] for v in (POST, NOV)}},
    # alone, the model lands a race after its event (it has no cycles)
    "race-held-in-l0": {PRE: ["vmexit", "l1_apic.irr", "l1_apic.isr", "pid.pir", "l2.visr",
                              "l2.delivered"],
                        **{v: ["vmexit", "pid.pir", "l2.visr", "l2.delivered"]
                           for v in (POST, NOV)}},
    "l2-virtual-recognized-at-reentry": {v: ["l2.virr", "l2.visr", "l2.delivered"]
                                         for v in KernelVersion},  # D11
    "l2-virtual-recognized-at-reentry-no-pi": {v: ["l2.virr", "l2.visr", "l2.delivered"]
                                               for v in KernelVersion},  # KB11
    "two-l1-interrupts-in-l0": {v: ["l1_apic.irr", "l1_apic.isr"] for v in KernelVersion},  # D12
    "two-l1-interrupts-in-l0-same-vector": {v: ["l1_apic.irr"] for v in KernelVersion},
    "two-l1-interrupts-in-l0-through-l2-idt": {v: ["l1_apic.irr", "l1_apic.isr", "l2.delivered"]
                                               for v in KernelVersion},
    "two-l1-interrupts-in-l0-then-more": {v: ["vmexit", "l1_apic.irr", "l1_apic.isr"]
                                          for v in KernelVersion},
    "kb2-after-two-l1-interrupts": {v: ["l1_apic.irr", "l1_apic.isr"] for v in KernelVersion},
    "nv-while-in-l0-race-after": {v: ["l1_apic.irr"] for v in KernelVersion},  # KB7
    "l2-virtual-recognized-at-reentry-then-tpr": {v: ["l2.visr"] for v in KernelVersion},
    "seed-then-more-l1-interrupts": {PRE: ["l1_apic.irr", "l1_apic.isr", "pid.on"]},  # KB1
    "d12-nv-first-race-harvested-later": {v: ["l1_apic.irr"] for v in KernelVersion},  # D12
    "d12-nv-first-later-post-harvested": {v: ["l1_apic.irr"] for v in KernelVersion},  # D12
    "kb1-then-an-l2-instruction-kvm-never-ran": {PRE: ["mode", "l1_apic.isr", "pid.on", "l2.virr",
                                                       "l2.visr", "l2.delivered"]},  # KB1
    # alone, the model lands a race after its event (it has no cycles)
    "kb2-after-d12-in-steps-apart": {v: ["l1_apic.irr", "pid.pir", "pid.on", "l2.visr",
                                         "l2.delivered"] for v in KernelVersion},  # D12
    "d12-nv-arrives-second": {PRE: ["l1_apic.irr", "l1_apic.isr"],  # KB1
                              **{v: ["l1_apic.irr", "pid.on"] for v in (POST, NOV)}},  # D12
    "stale-pi-pending-clears-on": {v: ["pid.on"] for v in KernelVersion},  # D13
    "d13-stale-pi-pending-harvests-a-post": {v: ["pid.pir", "pid.on", "l2.visr", "l2.delivered"]
                                             for v in KernelVersion},  # D13
    "d10-delay-goes-on-at-the-next-entry": {v: ["l2.virr", "l2.visr", "l2.delivered"]
                                            for v in KernelVersion},  # D10
    "d12-nv-first-then-masked-by-l1-tpr": {v: ["l1_apic.irr", "pid.on"] for v in KernelVersion},
    "d12-then-the-same-vector-again": {v: ["l1_apic.irr", "l1_apic.isr"] for v in KernelVersion},
    # the open cases (test_cosim.OPEN)
    "d12-l1-handlers-unfinished-while-l2-runs": {
        PRE: ['mode', 'l1_apic.irr', 'l1_apic.isr'],
        POST: ['mode', 'l1_apic.irr', 'l1_apic.isr'],
        NOV: ['mode', 'l1_apic.irr', 'l1_apic.isr'],
    },
    "d12-harvested-post-held-by-l2-if": {v: ["l1_apic.irr"] for v in KernelVersion},  # D12
    "d12-nv-waits-behind-l1-ppr-after-reentry": {v: ["l1_apic.irr", "pid.pir", "pid.on",
                                                     "l2.visr", "l2.delivered"]
                                                 for v in KernelVersion},
    "open-seed-2-case-18050": {v: ["pid.pir", "pid.on", "l2.visr", "l2.delivered"]
                               for v in KernelVersion},
    "d12-nv-waits-behind-l1-ppr-with-pir": {v: ["l1_apic.irr", "pid.pir", "pid.on", "l2.visr",
                                                "l2.delivered"] for v in KernelVersion},
    "d12-l1-level-handler-ended-on-one-side": {
        PRE: ['mode', 'l1_apic.irr', 'l1_apic.isr'],
        POST: ['mode', 'l1_apic.irr', 'l1_apic.isr'],
        NOV: ['mode', 'l1_apic.irr', 'l1_apic.isr'],
    },
    "open-l1-takes-nv-through-its-idt": {
        PRE: ['l1_apic.irr', 'l1_apic.isr'],
        POST: ['l1_apic.isr', 'pid.pir', 'pid.on', 'l2.virr'],
        NOV: ['l1_apic.isr', 'pid.pir', 'pid.on', 'l2.virr'],
    },
    "kb2-with-the-entry-rvi-delivered-first": {
        PRE: ['pid.pir', 'pid.on', 'l2.virr', 'l2.visr', 'l2.delivered'],
        POST: ['pid.pir', 'pid.on', 'l2.virr', 'l2.visr', 'l2.delivered'],
        NOV: ['l2.virr', 'l2.visr', 'l2.delivered'],
    },
    "d12-nv-meets-another-l1-ppr": {
        PRE: ['mode', 'l1_apic.irr', 'l1_apic.isr'],
        POST: ['l1_apic.irr', 'l1_apic.isr', 'pid.pir', 'pid.on', 'l2.visr', 'l2.delivered'],
        NOV: ['l1_apic.irr', 'l1_apic.isr', 'pid.pir', 'pid.on', 'l2.visr', 'l2.delivered'],
    },
    "kb4-consequence-after-l2-eoi-and-a-second-nv": {
        PRE: ['mode', 'l1_apic.isr', 'pid.pir', 'l2.delivered'],
        POST: ['l2.visr'],
        NOV: ['l2.visr'],
    },
    "open-seed-4-case-1584": {
        PRE: ['l1_apic.isr'],
        POST: ['l1_apic.isr', 'pid.pir', 'pid.on', 'l2.virr'],
        NOV: ['l1_apic.isr', 'pid.pir', 'pid.on', 'l2.virr'],
    },
    "open-seed-4-case-3371": {
        PRE: ['l1_apic.irr', 'l1_apic.isr'],
        POST: ['mode', 'l1_apic.irr', 'l1_apic.isr', 'pid.pir', 'pid.on', 'l2.visr',
               'l2.delivered'],
        NOV: ['mode', 'l1_apic.irr', 'l1_apic.isr', 'pid.pir', 'pid.on', 'l2.visr', 'l2.delivered'],
    },
    "kb1-then-l1-ends-what-held-back-a-level-vector": {  # KB1
        PRE: ['mode', 'l1_apic.isr'],
    },
    "kb4-at-the-start-then-a-post": {PRE: ["mode", "l1_apic.isr", "pid.pir", "l2.visr",
                                           "l2.delivered"],  # KB1
                                     **{v: ["pid.pir", "l2.visr", "l2.delivered"]
                                        for v in (POST, NOV)}},  # KB4
    "kb3-nv-in-l0-masked-by-the-exit": {v: ["l1_apic.irr"] for v in KernelVersion},  # KB3
    "d10-delivered-later-at-a-second-entry": {  # KB2; D10
        **{v: ["pid.pir", "pid.on", "l2.visr", "l2.delivered"] for v in (PRE, POST)},
        NOV: ["l2.virr", "l2.visr", "l2.delivered"]},
}


def scenario_files():
    return sorted(SCENARIOS.glob("*.toml"))


@pytest.mark.parametrize("file", scenario_files(), ids=lambda f: f.stem)
def test_expectations_per_version(file):
    scenario = load_scenario(file)
    assert scenario.expect is not None, "every shipped scenario states its expected outcome"
    for version in KernelVersion:
        assert run_model(scenario, version).expect_mismatches == \
            MISSES.get(scenario.name, {}).get(version, []), version.value


@pytest.mark.parametrize("name", ["seed-ipiv", "seed-device-post"])
def test_seed_routes_diverge_pre_patch_exactly_as_the_patch_describes(name):
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    pre = run_model(scenario, PRE).outcomes[-1]
    assert pre.vmexit == VmExit(reason=1, intr_info=0x800000FF)
    assert pre.l1_apic.isr == {0xFF} and pre.l1_apic.ppr == 0xF0
    assert pre.pid.pir == {0x41} and pre.pid.on
    post = run_model(scenario, POST).outcomes[-1]
    assert post.vmexit is None and post.l1_apic.isr == frozenset()
    assert post.pid.pir == frozenset() and not post.pid.on
    assert post.l2.delivered == (0x41,)


def test_trapped_ipi_agrees_across_versions():
    scenario = load_scenario(SCENARIOS / "seed-trapped-ipi.toml")
    outcomes = {run_model(scenario, v).outcomes for v in KernelVersion}
    assert len(outcomes) == 1


def test_start_effects_are_part_of_the_first_event(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[l1_apic]\nirr = [0x60]\n[vmcs12]\nexternal_interrupt_exiting = true\n'
                    'acknowledge_interrupt_on_exit = true\n[[events]]\nkind = "eoi"\n')
    run = run_model(load_scenario(path), POST)
    assert run.outcomes[0].vmexit == VmExit(reason=1, intr_info=0x80000060)
    assert run.outcomes[0].mode == "l1" and run.outcomes[0].l1_apic.isr == frozenset()


def test_an_event_the_model_cannot_run_stops_the_run(tmp_path):
    """Without the hardware (``pi-cosim model``), the model's own mode decides: an L2 EOI
    after the start-up exit to L1 is an impossible event."""
    path = tmp_path / "s.toml"
    path.write_text('[l1_apic]\nirr = [0x60]\n[vmcs12]\nexternal_interrupt_exiting = true\n'
                    'acknowledge_interrupt_on_exit = true\n[[events]]\nkind = "l2_eoi"\n')
    run = run_model(load_scenario(path), POST)
    assert run.outcomes == () and run.side.drain == ()
    assert run.side.impossible.index == 0 and run.side.impossible.mode == "l1"
    assert run.side.impossible.message() == (
        "impossible event: events[0] (l2_eoi) needs L2 running, but L1 runs at that point; "
        "the scenario stops there")


def test_in_l0_arrival_is_taken_within_the_exit_to_l0_it_races():
    """in_l0: the notification vector arrives while KVM handles the exit to L0 that the
    previous event's notification caused; the model takes it within that exit, before
    vmx_check_nested_events() runs, and the trace shows pi_pending set and later dropped."""
    scenario = load_scenario(SCENARIOS / "nv-while-in-l0.toml")
    for version in KernelVersion:
        run = run_model(scenario, version)
        first, second = run.traces[:2]
        assert first.index("in L0: 0xe2 arrives while KVM handles the exit to L0") < \
            first.index("nested_vmx_vmexit(reason=1, intr_info=0x80000030, qualification=0x0)")
        assert "vmx_deliver_nested_posted_interrupt: vector 0xe2 == nested NV: " \
               "pi_pending = true" in first
        assert second == ("in L0: 0xe2 already arrived during the previous event's exit to L0",)
        drain = [line for t in run.traces[2:] for line in t]
        assert "prepare_vmcs02_early: pi_pending = false (a nested posted interrupt that was " \
               "never completed is dropped)" in drain
        assert run.side.final.pid.pir == {0x41} and run.side.final.pid.on


def test_in_l0_without_an_exit_to_l0_is_a_host_exit(tmp_path):
    """Without an exit to L0 to race, in_l0 means the vCPU left the guest for a host reason:
    the notification vector then finds nothing else pending and is processed (no loss)."""
    text = (SCENARIOS / "nv-while-in-l0.toml").read_text()
    head, _, _ = text.partition("[[events]]")
    path = tmp_path / "host.toml"
    path.write_text(head + '[[events]]\nkind = "interrupt"\nvector = 0xe2\n'
                           'route = "trapped-ipi"\nin_l0 = true\n')
    run = run_model(load_scenario(path), POST)
    assert run.traces[0][0] == "in L0: the vCPU exits to L0 for a host reason; 0xe2 arrives"
    assert run.outcomes[0].vmexit is None and run.outcomes[0].l2.delivered == (0x41,)

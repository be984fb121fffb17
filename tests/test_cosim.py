"""The cosimulation: every shipped scenario on the three hardware backends (amaranth.sim,
cocotb + Icarus, cocotb + Verilator), compared by the scoreboard with each KVM version.

Each version's result on each scenario is asserted: agreement, named deviations or named known
KVM bugs (cosim/deviations.py), the interrupts the drain finds lost, and no unexplained
divergence. The three backends must produce identical hardware runs, drain included.
"""

from pathlib import Path

import pytest

from cosim.hardware.backends import simulate
from cosim.hardware.testbench import Job
from cosim.judge.findings import DEVIATIONS, is_known_bug
from cosim.judge.scoreboard import compare
from cosim.reference.kvm import run_beside, run_model
from cosim.scenario.format import load_scenario
from software_model import KernelVersion

from .conftest import waves_on_failure

SCENARIOS = sorted((Path(__file__).parent.parent / "scenarios").glob("*.toml"))
#: the deviations that may account for a lost-interrupt difference: two requests of one vector
#: taken once, or posts KVM's processing harvests where the hardware's wait for the
#: notification their sender owes
LOSSLESS = {d.id for d in DEVIATIONS if d.coalesces is not None or d.harvests is not None}
PRE, POST, NOV = KernelVersion.PRE_PATCH, KernelVersion.POST_PATCH, KernelVersion.NOV_2024

#: scenario -> version -> (deviation IDs, known-bug IDs); a version not listed agrees with no
#: difference at all. Only the scenarios of OPEN leave an unexplained divergence.
SEED_BUG = {PRE: ((), ("KB1",))}
D12_BUT_KB1_AT_PRE = {PRE: ((), ("KB1",)), POST: (("D12",), ()), NOV: (("D12",), ())}
#: the open cases, shipped so that the product shows them until they are explained (their
#: descriptions say what is known): scenario -> version -> the unexplained fields
OPEN: dict[str, dict[KernelVersion, tuple[str, ...]]] = {
    "open-l1-takes-nv-through-its-idt": {
        POST: ('lost.l1_delivered', 'lost.l2_delivered', 'lost.pid_stuck', 'pid.on', 'pid.pir'),
        NOV: ('lost.l1_delivered', 'lost.l2_delivered', 'lost.pid_stuck', 'pid.on', 'pid.pir'),
    },
    "open-seed-4-case-1584": {
        POST: ('lost.l1_delivered', 'lost.l2_delivered', 'lost.pid_stuck', 'pid.on', 'pid.pir'),
        NOV: ('lost.l1_delivered', 'lost.l2_delivered', 'lost.pid_stuck', 'pid.on', 'pid.pir'),
    },
    # found at pre-patch (seed 2), unexplained at every version once minimized
    "open-seed-2-case-18050": {v: ('l2.delivered', 'l2.svi', 'l2.visr', 'l2.vppr', 'pid.on',
                                   'pid.pir') for v in KernelVersion},
    "open-seed-4-case-3371": {
        POST: ('l1_apic.irr', 'l1_apic.isr', 'l1_apic.ppr', 'lost.l1_delivered',
               'lost.l2_delivered', 'lost.pid_stuck', 'pid.on', 'pid.pir'),
        NOV: ('l1_apic.irr', 'l1_apic.isr', 'l1_apic.ppr', 'lost.l1_delivered', 'lost.l2_delivered',
              'lost.pid_stuck', 'pid.on', 'pid.pir'),
    },
}
EXPECTED = {
    "seed-ipiv": SEED_BUG,
    "seed-device-post": SEED_BUG,
    "pir-holds-nv": SEED_BUG,
    "sn-at-receiver": SEED_BUG,
    "two-notifications": SEED_BUG,
    "nv-with-empty-pir": SEED_BUG,
    "rvi-above-pir": SEED_BUG,
    "intr-window-exiting": SEED_BUG,
    "l2-interrupts-disabled": SEED_BUG,
    "nv-with-on-clear": {PRE: ((), ("KB1",)), POST: ((), ("KB4",)), NOV: ((), ("KB4",))},
    "pir-vector-zero": {PRE: ((), ("KB1",)), POST: (("D2",), ()), NOV: (("D2",), ())},
    "rvi-below-virr": {PRE: ((), ("KB1",)), POST: ((), ("KB6",)), NOV: ((), ("KB6",))},
    "nv-level-triggered": {v: ((), ("KB5",)) for v in KernelVersion},
    # pre- and post-patch set pi_pending at VM entry and exit for 0x30 before completing it,
    # losing 0x41 for good; nov-2024 completes it but exits before L2's delivery, which the
    # drain shows reconciled at the next entry
    "nv-before-lower-vector": {PRE: ((), ("KB2",)), POST: ((), ("KB2",)),
                               NOV: (("D10",), ())},
    "l2-virtual-before-l1-exit": {v: (("D10",), ()) for v in KernelVersion},
    "trapped-ipi-nv-masked": {v: ((), ("KB3",)) for v in KernelVersion},
    "nv-while-in-l0": {v: ((), ("KB7",)) for v in KernelVersion},
    "l1-svi-in-vmcs02": {v: ((), ("KB8",)) for v in (PRE, POST)},
    # found by pi-cosim regress: KB2 with PIR empty (ON stuck at 1); races land where the
    # hardware's did
    "nv-before-lower-vector-empty-pir": {v: ((), ("KB2",)) for v in (PRE, POST)},
    "race-during-processing": SEED_BUG,
    # found by pi-cosim regress: KB9, KB10 and D10 at a VM entry (new); known bugs and
    # deviations the judge did not name before (each scenario's description says what)
    "posted-edge-keeps-tmr": {v: ((), ("KB9",)) for v in KernelVersion},
    "rvi-outside-virr-at-entry": {v: ((), ("KB10",)) for v in KernelVersion},
    "l2-virtual-after-notification-at-entry": {v: (("D10",), ()) for v in KernelVersion},
    "l2-virtual-before-l1-exit-order": {v: (("D10",), ()) for v in KernelVersion},
    "kb3-nv-already-pending": {v: ((), ("KB3",)) for v in KernelVersion},
    "kb3-strands-later-posts": {v: ((), ("KB3",)) for v in KernelVersion},
    "kb4-with-racing-post": {v: ((), ("KB4",)) for v in KernelVersion},
    "kb4-consequence-at-l2-eoi": {PRE: ((), ("KB1",)), POST: ((), ("KB4",)),
                                  NOV: ((), ("KB4",))},
    "kb4-rvi-outside-virr": {PRE: ((), ("KB1",)), POST: ((), ("KB4",)), NOV: ((), ("KB4",))},
    "kb6-with-late-race": {v: ((), ("KB6",)) for v in KernelVersion},
    "d2-bit-zero-stays-in-pir": {PRE: ((), ("KB1",)), POST: (("D2",), ()), NOV: (("D2",), ())},
    "race-held-in-l0": {PRE: ((), ("KB1",)), POST: (("D10",), ()), NOV: (("D10",), ())},
    "l2-virtual-recognized-at-reentry": {v: (("D11",), ()) for v in KernelVersion},
    "l2-virtual-recognized-at-reentry-no-pi": {v: ((), ("KB11",)) for v in KernelVersion},
    "two-l1-interrupts-in-l0": {v: (("D12",), ()) for v in KernelVersion},
    "d12-nv-first-race-harvested-later": {v: (("D12",), ()) for v in KernelVersion},
    "d12-nv-first-later-post-harvested": {v: (("D12",), ()) for v in KernelVersion},
    # found by pi-cosim regress against pre-patch: an L2 instruction only the hardware's L2
    # ran after KB1 (the bug decides its vectors); KB2 in drain steps that went apart
    "kb1-then-an-l2-instruction-kvm-never-ran": SEED_BUG,
    "kb2-after-d12-in-steps-apart": {PRE: (("D12",), ("KB2",)), POST: (("D12",), ("KB2",)),
                                     NOV: (("D12",), ())},
    # found by pi-cosim regress at seeds 2 and 3: D12 with NV arriving second; D13
    "d12-nv-arrives-second": {PRE: ((), ("KB1",)), POST: (("D12",), ()), NOV: (("D12",), ())},
    "stale-pi-pending-clears-on": {v: (("D13",), ()) for v in KernelVersion},
    "d13-stale-pi-pending-harvests-a-post": {v: (("D13",), ()) for v in KernelVersion},
    "kb4-at-the-start-then-a-post": {PRE: ((), ("KB1",)), POST: ((), ("KB4",)),
                                     NOV: ((), ("KB4",))},
    "d10-delay-goes-on-at-the-next-entry": {v: (("D10",), ()) for v in KernelVersion},
    "d12-nv-first-then-masked-by-l1-tpr": {v: (("D12",), ()) for v in KernelVersion},
    "d12-then-the-same-vector-again": {v: (("D12",), ()) for v in KernelVersion},
    "kb3-nv-in-l0-masked-by-the-exit": {v: ((), ("KB3",)) for v in KernelVersion},
    "d10-delivered-later-at-a-second-entry": {PRE: ((), ("KB2",)), POST: ((), ("KB2",)),
                                              NOV: (("D10",), ())},
    "two-l1-interrupts-in-l0-same-vector": {v: (("D12",), ()) for v in KernelVersion},
    "two-l1-interrupts-in-l0-through-l2-idt": {PRE: (("D12",), ("KB8",)),
                                               POST: (("D12",), ("KB8",)), NOV: (("D12",), ())},
    "two-l1-interrupts-in-l0-then-more": {v: (("D12",), ()) for v in KernelVersion},
    "kb2-after-two-l1-interrupts": {PRE: (("D12",), ("KB2",)), POST: (("D12",), ("KB2",)),
                                    NOV: (("D12",), ())},
    "nv-while-in-l0-race-after": {v: ((), ("KB7",)) for v in KernelVersion},
    "l2-virtual-recognized-at-reentry-then-tpr": {v: (("D11",), ()) for v in KernelVersion},
    "seed-then-more-l1-interrupts": SEED_BUG,
    # found by pi-cosim regress at seeds 2-4 and shipped open (OPEN)
    "d12-l1-handlers-unfinished-while-l2-runs": {v: (("D12",), ()) for v in KernelVersion},
    "d12-l1-level-handler-ended-on-one-side": {v: (("D12",), ()) for v in KernelVersion},
    "d12-harvested-post-held-by-l2-if": {v: (("D12",), ()) for v in KernelVersion},
    "open-l1-takes-nv-through-its-idt": D12_BUT_KB1_AT_PRE,
    "kb2-with-the-entry-rvi-delivered-first": {PRE: ((), ("KB2",)), POST: ((), ("KB2",)),
                                               NOV: ((), ("KB10",))},
    "d12-nv-meets-another-l1-ppr": {PRE: (("D12",), ("KB1",)), POST: (("D12",), ()),
                              NOV: (("D12",), ())},
    "kb4-consequence-after-l2-eoi-and-a-second-nv": {PRE: ((), ("KB1",)), POST: ((), ("KB4",)),
                                                     NOV: ((), ("KB4",))},
    "open-seed-4-case-1584": D12_BUT_KB1_AT_PRE,
    "open-seed-4-case-3371": D12_BUT_KB1_AT_PRE,
    "kb1-then-l1-ends-what-held-back-a-level-vector": SEED_BUG,
    "d12-nv-waits-behind-l1-ppr-after-reentry": {v: (("D12",), ()) for v in KernelVersion},
    "open-seed-2-case-18050": {v: ((), ("KB7",)) for v in KernelVersion},
    "d12-nv-waits-behind-l1-ppr-with-pir": {v: (("D12",), ()) for v in KernelVersion},
    "kb2-with-the-entry-rvi-first-in-the-drain": {PRE: ((), ("KB2",)), POST: ((), ("KB2",)),
                                                  NOV: ((), ("KB10",))},
}

#: the lost-interrupt checks at rest: scenario -> version -> check -> (vectors on the
#: hardware only, vectors on KVM only); a version not listed loses nothing
S41, SFF, NONE = frozenset({0x41}), frozenset({0xFF}), frozenset()
SEED_LOST = {"lost.l2_delivered": (S41, NONE), "lost.l1_delivered": (NONE, SFF),
             "lost.pid_stuck": (NONE, S41)}
LOST = {
    "seed-ipiv": {PRE: SEED_LOST},
    "seed-device-post": {PRE: SEED_LOST},
    "nv-before-lower-vector": {v: {"lost.l2_delivered": (S41, NONE),
                                   "lost.pid_stuck": (NONE, S41)} for v in (PRE, POST)},
    "nv-with-on-clear": {v: {"lost.l2_delivered": (S41, NONE)} for v in (POST, NOV)},
    "trapped-ipi-nv-masked": {v: {"lost.l2_delivered": (NONE, S41),
                                  "lost.pid_stuck": (S41, NONE)} for v in KernelVersion},
    "nv-with-empty-pir": {PRE: {"lost.l1_delivered": (NONE, SFF)}},
    "nv-while-in-l0": {v: {"lost.l2_delivered": (S41, NONE), "lost.pid_stuck": (NONE, S41)}
                       for v in KernelVersion},
    "race-during-processing": {PRE: {"lost.l2_delivered": (S41 | {0x52}, NONE),
                                     "lost.l1_delivered": (NONE, SFF),
                                     "lost.pid_stuck": (NONE, S41 | {0x52})}},
    "rvi-outside-virr-at-entry": {v: {"lost.l2_delivered": (frozenset({0x4a}), NONE)}
                                  for v in KernelVersion},
    "kb3-strands-later-posts": {v: {"lost.l2_delivered": (frozenset({0x1c}), NONE),
                                    "lost.pid_stuck": (NONE, frozenset({0x1c}))}
                                for v in KernelVersion},
    "kb4-with-racing-post": {v: {"lost.l2_delivered": (frozenset({0x52}), NONE),
                                 "lost.pid_stuck": (NONE, frozenset({0x52}))}
                             for v in KernelVersion},
    "kb4-consequence-at-l2-eoi": {PRE: {"lost.l2_delivered": (frozenset({0xa8}), NONE),
                                        "lost.l1_delivered": (NONE, frozenset({0x2f}))},
                                  **{v: {"lost.l2_delivered": (frozenset({0xa8}), NONE)}
                                     for v in (POST, NOV)}},
    "kb4-rvi-outside-virr": {PRE: {"lost.l2_delivered": (frozenset({0xbd}), frozenset({0xb2})),
                                   "lost.l1_delivered": (NONE, frozenset({0xbd}))},
                             **{v: {"lost.l2_delivered": (frozenset({0xbd}), frozenset({0xb2}))}
                                for v in (POST, NOV)}},
    "d2-bit-zero-stays-in-pir": {PRE: {"lost.l1_delivered": (NONE, frozenset({0xcb}))}},
    "kb2-after-two-l1-interrupts": {v: {"lost.l2_delivered": (frozenset({0x52}), NONE),
                                        "lost.pid_stuck": (NONE, frozenset({0x52}))}
                                    for v in (PRE, POST)},
    "nv-while-in-l0-race-after": {v: {"lost.l2_delivered": (frozenset({0x52}), NONE),
                                      "lost.pid_stuck": (NONE, frozenset({0x52}))}
                                  for v in KernelVersion},
    "seed-then-more-l1-interrupts": {PRE: {"lost.l1_delivered": (NONE, SFF)}},
    # two arrivals of one vector, taken once by KVM (D12): the one delivery fewer allowed
    "two-l1-interrupts-in-l0-same-vector": {v: {"lost.l1_delivered": (frozenset({0x30}), NONE)}
                                            for v in KernelVersion},
    # posts after the hardware's processing of NV that KVM harvests later (D12)
    "d12-nv-first-race-harvested-later": {v: {"lost.l2_delivered": (NONE, frozenset({0x52})),
                                              "lost.pid_stuck": (frozenset({0x52}), NONE)}
                                          for v in KernelVersion},
    "d12-nv-first-later-post-harvested": {v: {"lost.l2_delivered": (NONE, frozenset({0x4a})),
                                              "lost.pid_stuck": (frozenset({0x4a}), NONE)}
                                          for v in KernelVersion},
    # 0x3c is held in KVM's VIRR behind L2's VTPR (not lost): KB1 explains the difference
    "kb1-then-an-l2-instruction-kvm-never-ran": {
        PRE: {"lost.l1_delivered": (NONE, frozenset({0x5c}))}},
    "kb2-after-d12-in-steps-apart": {v: {"lost.l2_delivered": (frozenset({0x52}), NONE),
                                         "lost.pid_stuck": (NONE, frozenset({0x52}))}
                                     for v in (PRE, POST)},
    "d12-nv-arrives-second": {PRE: {"lost.l1_delivered": (NONE, frozenset({0xc4}))}},
    # the hardware collapsed the second arrival with the pending first; KVM had it in service
    "d12-then-the-same-vector-again": {v: {"lost.l1_delivered": (NONE, frozenset({0x36}))}
                                       for v in KernelVersion},
    "kb4-at-the-start-then-a-post": {
        PRE: {"lost.l2_delivered": (frozenset({0x13}), NONE),
              "lost.l1_delivered": (NONE, frozenset({0x5d})),
              "lost.pid_stuck": (NONE, frozenset({0x13}))},
        **{v: {"lost.l2_delivered": (frozenset({0x13}), NONE),
               "lost.pid_stuck": (NONE, frozenset({0x13}))} for v in (POST, NOV)}},
    # a post KVM's stale pi_pending harvested, waiting on the hardware for its notification
    "d13-stale-pi-pending-harvests-a-post": {v: {"lost.l2_delivered": (NONE, frozenset({0x52})),
                                                 "lost.pid_stuck": (frozenset({0x52}), NONE)}
                                             for v in KernelVersion},
    "d10-delivered-later-at-a-second-entry": {v: {"lost.l2_delivered": (frozenset({0x52}), NONE),
                                                  "lost.pid_stuck": (NONE, frozenset({0x52}))}
                                              for v in (PRE, POST)},
    "race-held-in-l0": {PRE: {"lost.l2_delivered": (frozenset({0x52}), NONE),
                              "lost.l1_delivered": (NONE, frozenset({0xe7})),
                              "lost.pid_stuck": (NONE, frozenset({0x52}))}},
}


@pytest.fixture(scope="module")
def scenarios():
    return [load_scenario(f) for f in SCENARIOS]


@pytest.fixture(scope="module")
def amaranth_runs(scenarios):
    return simulate([Job(s) for s in scenarios], "amaranth")


@pytest.mark.parametrize("version", list(KernelVersion), ids=lambda v: v.value)
def test_each_version_on_each_scenario(scenarios, amaranth_runs, version):
    for scenario, run in zip(scenarios, amaranth_runs, strict=True):
        software = run_beside(scenario, version, run.side).side
        verdict = compare(scenario, version, "amaranth", 0, run.side, software)
        assert verdict.impossible is None and verdict.expect_ok is not False, \
            (scenario.name, verdict.expect_mismatches)
        deviations, bugs = EXPECTED.get(scenario.name, {}).get(version, ((), ()))
        lost = LOST.get(scenario.name, {}).get(version)
        with waves_on_failure(run.job, "amaranth"):
            unexplained = OPEN.get(scenario.name, {}).get(version, ())
            assert (verdict.deviations, verdict.known_bugs, verdict.divergent) == \
                (deviations, bugs, unexplained), scenario.name
            assert verdict.agree == (not bugs and not unexplained)
            if lost is not None:
                assert dict(verdict.drain.lost) == lost, scenario.name
            if bugs:  # a known bug is named at the event that shows it, or at rest when it
                # strikes in the drain's steps
                assert any(e.known_bugs == bugs for e in (*verdict.events, verdict.drain)), \
                    scenario.name
            if deviations:  # a deviation loses nothing: the drain finds no lost interrupt
                # but two arrivals of one vector that KVM took as one IRR request (D12), or
                # posts that KVM's later processing harvested and whose notification the
                # hardware's sender owes (D12)
                by = {f for c, f in verdict.drain.classes if c in dict(verdict.drain.lost)
                      and f is not None and not is_known_bug(f)}
                assert by <= LOSSLESS, (scenario.name, by)
            elif not bugs and not unexplained:  # agreement: no difference at all
                assert all(e.differences == () for e in verdict.events), scenario.name
                assert verdict.drain.differences == (), scenario.name


def test_seed_exit_information(scenarios, amaranth_runs):
    """Pre-patch KVM's wrong exit is exactly the patch's: external interrupt (reason 1) with
    intr_info 0x800000ff; the hardware does not exit and delivers 0x41 to L2."""
    by_name = dict(zip((s.name for s in scenarios), zip(scenarios, amaranth_runs,
                                                        strict=True), strict=True))
    for name in ("seed-ipiv", "seed-device-post"):
        scenario, run = by_name[name]
        (event,) = compare(scenario, PRE, "amaranth", 0, run.side,
                           run_model(scenario, PRE).side).events
        assert event.hardware.vmexit is None and event.hardware.l2.delivered == (0x41,)
        assert (event.software.vmexit.reason, event.software.vmexit.intr_info) == \
            (1, 0x800000FF)
    # trapped-ipi: KVM's sender-side check catches the vector on every version
    scenario, run = by_name["seed-trapped-ipi"]
    model = run_model(scenario, PRE)
    assert any("vmx_deliver_nested_posted_interrupt: vector 0xff == nested NV" in line
               for line in model.traces[0])
    assert compare(scenario, PRE, "amaranth", 0, run.side, model.side).agree


def test_compiled_backends_match_amaranth(scenarios, amaranth_runs, compiled_sim):
    """The same scenarios in one simulation of the exported design (cocotb, or the native
    server) give the same outcomes, event by event."""
    runs = simulate([Job(s) for s in scenarios], compiled_sim)
    for scenario, run, reference in zip(scenarios, runs, amaranth_runs, strict=True):
        with waves_on_failure(run.job, compiled_sim):
            assert run.side == reference.side, scenario.name


def test_memory_wait_states_do_not_change_outcomes(scenarios, amaranth_runs, sim):
    """Seeds 1-3 add 0-3 wait cycles per memory request; the outcomes stay the same (but in
    scenarios with races, where the wait states decide which side of the processing another
    agent's post lands on: test_races_agree_with_kvm_in_every_window)."""
    timeless = [(s, run) for s, run in zip(scenarios, amaranth_runs, strict=True)
                if not s.races]
    jobs = [Job(s, seed=seed) for seed in (1, 2, 3) for s, _run in timeless]
    runs = simulate(jobs, sim)
    references = [run for _s, run in timeless] * 3
    for job, run, reference in zip(jobs, runs, references, strict=True):
        with waves_on_failure(job, sim):
            assert run.side == reference.side, (job.scenario.name, job.seed)


def test_concurrent_posts_lose_no_bit(sim):
    """C14 (PI-9): another agent posts 0x52 at every cycle offset of the seed's processing,
    with and without memory wait states, all in one simulation. Each post is either harvested
    by this processing (0x52 reaches L2) or left in PIR with ON = 1 (a new notification is
    pending): never lost."""
    from dataclasses import replace

    from cosim.scenario.format import Race

    scenario = load_scenario(Path(__file__).parent.parent / "scenarios" / "seed-ipiv.toml")
    jobs = [Job(replace(scenario, races=(Race(event=0, cycle=cycle, vector=0x52),)), seed=seed)
            for seed in (0, 11) for cycle in range(0, 17)]  # both steps land within the event
    runs = simulate(jobs, sim)
    harvested = left = 0
    for job, run in zip(jobs, runs, strict=True):
        (outcome,) = run.outcomes
        l2 = outcome.l2
        if 0x52 in outcome.pid.pir:
            assert outcome.pid.on, job  # left behind: a notification is pending
            assert 0x52 not in l2.virr | l2.visr
            left += 1
        else:
            assert 0x52 in l2.virr | l2.visr | set(l2.delivered), job
            harvested += 1
        assert 0x41 in l2.virr | l2.visr | set(l2.delivered)  # the seed's own post
    assert harvested and left  # both sides of the race were reached


def test_races_agree_with_kvm_in_every_window(sim):
    """A race (another agent's post at every cycle offset of the seed's processing, with and
    without wait states): the hardware's post lands before, during or after the processing;
    the model places it in the same window and agrees on everything else at post-patch and
    nov-2024 (pre-patch: the seed's KB1, the raced vector among the vectors it strands)."""
    from dataclasses import replace

    from cosim.scenario.drain import race_windows
    from cosim.scenario.format import Race

    scenario = load_scenario(Path(__file__).parent.parent / "scenarios" / "seed-ipiv.toml")
    jobs = [Job(replace(scenario, races=(Race(event=0, cycle=cycle, vector=0x52),)), seed=seed)
            for seed in (0, 11) for cycle in range(17)]
    runs = simulate(jobs, sim)
    windows = set()
    for job, run in zip(jobs, runs, strict=True):
        windows.update(race_windows(job.scenario, run.side))
        for version in KernelVersion:
            software = run_beside(job.scenario, version, run.side).side
            verdict = compare(job.scenario, version, sim, job.seed, run.side, software)
            assert not verdict.divergent, (job.scenario.races, job.seed, version)
            assert verdict.known_bugs == (("KB1",) if version is PRE else ()), version
    assert windows == {"before", "during", "after"}


def test_verbose_logs_the_transactions_with_their_cycles(capsys):
    """-v: the driver's events, the memory operations and the monitor's transactions, each
    with its cycle, on standard error; nothing there without it."""
    from cosim.cli import main

    seed = str(Path(__file__).parent.parent / "scenarios" / "seed-ipiv.toml")
    assert main(["replay", seed, "--sim", "amaranth"]) == 0
    assert capsys.readouterr().err == ""
    try:
        assert main(["replay", seed, "--sim", "amaranth", "-v"]) == 0
    finally:
        import logging

        logger = logging.getLogger("cosim")
        logger.handlers.clear()
        logger.setLevel(logging.NOTSET)
    err = capsys.readouterr().err.splitlines()
    driver = ("cosim.hardware.testbench: driver: cycle 14: InterruptEvent(vector=255, "
              "route='ipiv', in_l0=False)")
    assert driver in err
    memory = "cosim.hardware.testbench: memory: cycle 16: AND 0x10020 -> old 0xff0001"
    delivery = "cosim.hardware.testbench: monitor: Delivery(cycle=24, vector=65)"
    assert memory in err and delivery in err
    # in time order: the event, the descriptor's operations, the delivery
    assert err.index(driver) < err.index(memory) < err.index(delivery)


def test_a_hang_reports_the_last_transactions_and_the_state():
    """Memory that (almost) never answers (65535 wait cycles for the first request): the
    event does not settle, and the error names the cycle, the last transactions and the
    path's state."""
    import cosim.hardware.testbench as testbench

    scenario = load_scenario(Path(__file__).parent.parent / "scenarios" / "seed-ipiv.toml")
    with pytest.raises(testbench.HardwareHang) as info:
        simulate([Job(scenario, seed=0xFFFF, wait_mask=0xFFFF)], "amaranth")
    message = str(info.value)
    assert message.startswith("the hardware model did not settle within 2000 cycles (cycle ")
    assert "last transactions: none; state=POSTED mem__valid=1" in message

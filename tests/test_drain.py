"""The drain (cosim/drain.py) and the judgement at rest (cosim/scoreboard.py): the policy a
real L1 and L2 follow, and that a deviation's promise is checked, never trusted."""

from dataclasses import replace
from pathlib import Path

import pytest

from cosim.hardware.backends import simulate
from cosim.hardware.testbench import Job
from cosim.judge.scoreboard import compare
from cosim.reference.kvm import run_beside, run_model
from cosim.scenario.drain import SideRun, next_drain_event, settled
from cosim.scenario.format import EoiEvent, L2EoiEvent, StiEvent, VmEntryEvent, load_scenario
from cosim.scenario.outcome import L1ApicOutcome, L2Outcome, Outcome, PidOutcome, VmExit
from software_model import KernelVersion

SCENARIOS = Path(__file__).parent.parent / "scenarios"
POST = KernelVersion.POST_PATCH


def outcome(mode="l2", isr=(), visr=(), error=None, pir=(), on=False, delivered=(), irr=(),
            ppr=0):
    return Outcome(
        vmexit=None, vmentry_error=error, mode=mode,
        l1_apic=L1ApicOutcome(irr=frozenset(irr), isr=frozenset(isr), ppr=ppr),
        pid=PidOutcome(pir=frozenset(pir), on=on, sn=False),
        l2=L2Outcome(virr=frozenset(), visr=frozenset(visr), rvi=0, svi=0, vppr=0,
                     delivered=tuple(delivered)))


@pytest.mark.parametrize("state,step", [
    (outcome(mode="l1", isr={0x30}), EoiEvent()),  # L1 handles what is in service
    (outcome(mode="l1", isr={0x30}, irr={0x41}), EoiEvent()),  # before it takes more
    (outcome(mode="l1", irr={0x41}), StiEvent()),  # L1 takes what its APIC presents
    (outcome(mode="l1", irr={0x41}, ppr=0x40), VmEntryEvent()),  # masked: stays pending
    (outcome(mode="l1", irr={0xF2, 0x41}), VmEntryEvent()),  # NV waits for the entry
    (outcome(mode="l1"), VmEntryEvent()),  # then re-enters L2
    (outcome(mode="l1", error=7), None),  # the same vmcs12 fails the same checks again
    (outcome(mode="l1", irr={0x41}, error=7), None),  # pending alike on both sides
    (outcome(mode="l1", isr={0x30}, error=7), EoiEvent()),
    (outcome(mode="l2", visr={0x41}), L2EoiEvent()),  # L2 handles what is in service
    (outcome(mode="l2"), None),  # at rest
], ids=["l1-eoi", "eoi-before-sti", "l1-sti", "masked", "nv-left-for-entry",
        "l1-enter", "entry-fails", "entry-fails-pending", "eoi-before-stop", "l2-eoi", "rest"])
def test_the_drain_policy(state, step):
    assert next_drain_event(state, notification=0xF2) == step


def test_without_posted_interrupts_l1_takes_every_vector():
    assert next_drain_event(outcome(mode="l1", irr={0xF2}), notification=None) == StiEvent()


def test_a_step_that_changes_nothing_settles():
    before = outcome(mode="l1")
    again = replace(before, vmexit=VmExit(reason=1, intr_info=0))  # exit without ack
    assert settled(before, again)
    assert not settled(before, outcome(mode="l2"))


def test_d10_is_checked_at_rest_not_trusted():
    """D10 claims KVM delivers the virtual interrupt later. Had KVM never delivered it, the
    drain would report the lost vector as an unexplained divergence, not as D10."""
    scenario = load_scenario(SCENARIOS / "l2-virtual-before-l1-exit.toml")
    kvm = run_model(scenario, POST).side
    (run,) = simulate([Job(scenario)], "amaranth")
    verdict = compare(scenario, POST, "amaranth", 0, run.side, kvm)
    assert verdict.deviations == ("D10",) and verdict.agree
    assert verdict.drain.differences == () and verdict.drain.lost == ()
    # the same event, but KVM never delivers 0x50 afterwards: lost, unexplained
    final = kvm.final
    broken = replace(final, l2=replace(final.l2, delivered=(), virr=frozenset({0x50}),
                                       visr=frozenset(), rvi=0x50))
    lying = SideRun(kvm.outcomes, ((kvm.drain[0][0], broken),))
    verdict = compare(scenario, POST, "amaranth", 0, run.side, lying)
    assert verdict.deviations == ("D10",) and not verdict.agree
    assert dict(verdict.drain.lost) == {"lost.l2_delivered": (frozenset({0x50}), frozenset())}
    assert "lost.l2_delivered" in verdict.divergent


def test_a_known_bug_names_only_the_vectors_it_decides():
    """The seed (KB1) explains the loss of 0x41; a vector it has nothing to do with, lost at
    rest too, stays an unexplained divergence."""
    scenario = load_scenario(SCENARIOS / "seed-ipiv.toml")
    hardware = run_model(scenario, POST).side  # the hardware's answer on this scenario
    pre = run_model(scenario, KernelVersion.PRE_PATCH).side
    verdict = compare(scenario, KernelVersion.PRE_PATCH, "model", 0, hardware, pre)
    assert verdict.known_bugs == ("KB1",) and verdict.divergent == ()
    extra = replace(hardware.final, l2=replace(hardware.final.l2,
                                               delivered=(*hardware.final.l2.delivered, 0x77)))
    more = SideRun(hardware.outcomes, hardware.drain[:-1] + ((hardware.drain[-1][0], extra),))
    verdict = compare(scenario, KernelVersion.PRE_PATCH, "model", 0, more, pre)
    assert verdict.known_bugs == ("KB1",) and "lost.l2_delivered" in verdict.divergent


def test_a_drain_that_never_settles_is_a_divergence():
    scenario = load_scenario(SCENARIOS / "seed-ipiv.toml")
    side = run_model(scenario, POST).side
    stuck = replace(side, drain_settled=False)
    verdict = compare(scenario, POST, "model", 0, side, stuck)
    assert verdict.divergent == ("drain.settled",) and not verdict.agree


def _verdicts(name, *tampers):
    """A shipped scenario's hardware run and KVM run (post-patch), the verdict, and one more
    verdict per function of KVM's state at rest standing in for it (a KVM that lies)."""
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    (run,) = simulate([Job(scenario)], "amaranth")
    kvm = run_beside(scenario, POST, run.side).side
    verdicts = [compare(scenario, POST, "amaranth", 0, run.side, kvm)]
    for tamper in tampers:
        lying = (replace(kvm, drain=kvm.drain[:-1] + ((kvm.drain[-1][0], tamper(kvm.final)),))
                 if kvm.drain else  # at rest after its last event
                 replace(kvm, outcomes=kvm.outcomes[:-1] + (tamper(kvm.final),)))
        verdicts.append(compare(scenario, POST, "amaranth", 0, run.side, lying))
    return run, kvm, verdicts


@pytest.mark.parametrize("tamper,unexplained", [
    # KVM delivers the harvested post twice: the loss check admits 0x52, the residue (which
    # takes one delivery of it off KVM's side) does not, nor D12's descriptor difference
    (lambda f: replace(f, l2=replace(f.l2, delivered=(0x52, 0x52))),
     {"l2.delivered", "pid.pir", "pid.on"}),
    # KVM delivers a vector nobody posted after the hardware's processing
    (lambda f: replace(f, l2=replace(f.l2, delivered=(0x52, 0x77))),
     {"lost.l2_delivered", "pid.pir", "pid.on"}),
    # KVM's descriptor differs in more than the harvested post (SN)
    (lambda f: replace(f, pid=replace(f.pid, sn=True)),
     {"lost.l2_delivered", "lost.pid_stuck", "pid.pir", "pid.on", "pid.sn"}),
], ids=["twice", "not-posted", "sn"])
def test_posts_harvested_later_are_d12_only_in_its_shape(tamper, unexplained):
    """D12 with NV first: KVM's later processing harvests a post the hardware's processing
    missed (the hardware holds it in PIR with ON = 1, its notification owed). The judge
    names D12 for exactly that shape; a delivery too many, a vector not posted after the
    hardware's processing, or another descriptor difference stays unexplained."""
    run, kvm, (verdict, verdict_lying) = _verdicts("d12-nv-first-race-harvested-later", tamper)
    assert verdict.deviations == ("D12",) and verdict.agree
    assert dict(verdict.drain.classes)["lost.pid_stuck"] == "D12"
    assert kvm.final.l2.delivered == (0x52,) and run.side.final.pid.pir == {0x52}
    verdict = verdict_lying
    assert verdict.deviations == ("D12",)
    assert set(verdict.divergent) == unexplained and not verdict.agree


def test_kb2_on_kvm_side_alone_needs_a_notification_that_goes_nowhere():
    """KB2's one-sided signature (judged in drain steps the hardware did not take): at a VM
    entry NV leaves L1's IRR, KVM exits for another vector and the descriptor is untouched.
    If the descriptor was processed, or the exit reports NV, some CPU could do the same:
    no signature."""
    from cosim.judge.findings import by_id

    scenario = load_scenario(SCENARIOS / "kb2-after-d12-in-steps-apart.toml")
    signature = by_id("KB2").signature
    before = outcome(mode="l1", irr={0x8C, 0x6C}, pir={0x52}, on=True)
    lost = replace(outcome(mode="l1", isr={0x6C}, pir={0x52}, on=True),
                   vmexit=VmExit(reason=1, intr_info=0x8000006C))
    assert signature(scenario, before, VmEntryEvent(), lost) == {0x8C, 0x52}
    processed = replace(lost, pid=replace(lost.pid, pir=frozenset(), on=False))
    assert signature(scenario, before, VmEntryEvent(), processed) == frozenset()
    reported = replace(lost, vmexit=VmExit(reason=1, intr_info=0x8000008C))
    assert signature(scenario, before, VmEntryEvent(), reported) == frozenset()
    assert signature(scenario, before, L2EoiEvent(), lost) == frozenset()


def test_a_stale_pi_pending_harvest_is_d13_only_in_its_shape():
    """D13: KVM's stale nested pi_pending harvests a post that waits on the hardware for its
    owed notification. Delivered twice by KVM, or with another vector, it stays unexplained."""
    tampers = [lambda f, d=d: replace(f, l2=replace(f.l2, delivered=d))
               for d in ((0x52, 0x52), (0x52, 0x77))]
    _run, _kvm, (verdict, *lying) = _verdicts("d13-stale-pi-pending-harvests-a-post", *tampers)
    assert verdict.deviations == ("D13",) and verdict.agree
    assert dict(verdict.drain.classes)["lost.l2_delivered"] == "D13"
    for v in lying:
        assert not v.agree and v.divergent


def test_an_eoi_message_after_a_known_bug_is_its_only_behind_its_vector():
    """Pre-patch, KB1 runs KVM's L1: its drain ends 0xa9 and 0x18, then takes and ends the
    level-triggered 0x16 that 0x18 held back (an EOI message for 0x16), where the hardware's
    L1, not running, still holds 0x16 pending behind 0x18. That message is KB1's. An EOI
    message on KVM's side only for a vector nothing held back stays unexplained."""
    pre = KernelVersion.PRE_PATCH
    scenario = load_scenario(SCENARIOS / "kb1-then-l1-ends-what-held-back-a-level-vector.toml")
    (run,) = simulate([Job(scenario)], "amaranth")
    kvm = run_beside(scenario, pre, run.side).side
    assert kvm.final.l1_apic.eoi_messages == (0x16,)
    assert run.side.final.l1_apic.irr == {0x16} and run.side.final.l1_apic.isr == {0x18}
    verdict = compare(scenario, pre, "amaranth", 0, run.side, kvm)
    assert verdict.known_bugs == ("KB1",) and verdict.divergent == ()
    assert dict(verdict.drain.classes)["l1_apic.eoi_messages"] == "KB1"
    final = replace(kvm.final, l1_apic=replace(kvm.final.l1_apic, eoi_messages=(0x16, 0x27)))
    lying = replace(kvm, drain=kvm.drain[:-1] + ((kvm.drain[-1][0], final),))
    verdict = compare(scenario, pre, "amaranth", 0, run.side, lying)
    assert verdict.known_bugs == ("KB1",) and verdict.divergent == ("l1_apic.eoi_messages",)


@pytest.mark.parametrize("tamper,unexplained", [
    # KVM's L1 sends a message for a vector nobody had in service
    (lambda f: replace(f, l1_apic=replace(f.l1_apic, eoi_messages=(0x41,))),
     {"l1_apic.eoi_messages"}),
    # KVM's L1 no longer has 0x92 in service, yet never sent its message: lost, not pending
    (lambda f: replace(f, l1_apic=replace(f.l1_apic, isr=frozenset({0xFF}))),
     {"l1_apic.eoi_messages"}),
], ids=["never-in-service", "ended-without-message"])
def test_an_eoi_message_after_d12_is_its_only_for_a_handler_not_run_yet(tamper, unexplained):
    """D12 with 0x92 level-triggered: the hardware's L1 ends 0x92 in the drain (an EOI
    message), KVM's L1, whose L2 runs at rest, still has it in service. The message on one
    side is D12's; a message for a vector never in service, or 0x92 ended on KVM's side
    without its message, stays unexplained."""
    run, kvm, (verdict, verdict_lying) = _verdicts("d12-l1-level-handler-ended-on-one-side",
                                                   tamper)
    assert run.side.final.l1_apic.eoi_messages == (0x92,) and not kvm.final.l1_apic.eoi_messages
    assert 0x92 in kvm.final.l1_apic.isr and kvm.final.mode == "l2"
    assert verdict.deviations == ("D12",) and verdict.agree
    assert dict(verdict.drain.classes)["l1_apic.eoi_messages"] == "D12"
    assert set(verdict_lying.divergent) == unexplained and not verdict_lying.agree


@pytest.mark.parametrize("tamper", [
    # a vector nobody posted pending in KVM's L2 beside the harvested one
    lambda f: replace(f, l2=replace(f.l2, virr=f.l2.virr | {0x77}, rvi=0x77)),
    # RVI not VIRR's highest
    lambda f: replace(f, l2=replace(f.l2, rvi=0x00)),
], ids=["not-posted", "rvi"])
def test_a_harvested_post_pending_in_l2_is_d12_only_in_its_shape(tamper):
    """D12 with NV first: KVM's later processing harvests a post that raced the hardware's,
    into L2's VIRR, where L2 (RFLAGS.IF = 0) cannot take it; the hardware holds it in PIR
    with ON = 1. L2's pending state differing by exactly that post, RVI its vector, is D12's;
    another vector pending, or RVI not following VIRR, stays unexplained."""
    run, kvm, (verdict, verdict_lying) = _verdicts("d12-harvested-post-held-by-l2-if", tamper)
    assert kvm.final.l2.virr == {0x52} and kvm.final.l2.rvi == 0x52
    assert run.side.final.pid.pir == {0x52} and run.side.final.pid.on
    assert verdict.deviations == ("D12",) and verdict.agree
    assert dict(verdict.drain.classes)["l2.virr"] == "D12"
    assert "l2.virr" in verdict_lying.divergent and not verdict_lying.agree


@pytest.mark.parametrize("tamper,unexplained", [
    # KVM's PIR holds a vector the hardware's processing never delivered
    (lambda f: replace(f, pid=replace(f.pid, pir=f.pid.pir | {0x77})),
     {"lost.l2_delivered", "lost.pid_stuck", "pid.on", "pid.pir"}),
    # KVM delivered 0x6b and still holds it in PIR: once too often
    (lambda f: replace(f, l2=replace(f.l2, delivered=(0x6B,))),
     {"lost.pid_stuck", "pid.on", "pid.pir"}),
], ids=["not-harvested", "delivered-and-waiting"])
def test_kvm_processing_still_to_come_is_d12_only_in_its_shape(tamper, unexplained):
    """D12 with NV first: the hardware processed NV (0x6b from PIR to L2); KVM took the other
    interrupt first and its NV waits in L1's IRR behind L1's PPR, so its descriptor is the
    hardware's before that processing (ON = 1, 0x6b in PIR). That is D12's, pending, not
    lost; a PIR vector the hardware never harvested, or 0x6b both delivered and waiting on
    KVM's side, stays unexplained."""
    run, kvm, (verdict, verdict_lying) = _verdicts("d12-nv-waits-behind-l1-ppr-with-pir", tamper)
    assert kvm.final.pid.pir == {0x6B} and kvm.final.pid.on and 0x6B in kvm.final.l1_apic.irr
    assert run.side.final.l2.delivered == (0x6B,) and not run.side.final.pid.on
    assert verdict.deviations == ("D12",) and verdict.agree
    classes = dict(verdict.drain.classes)
    assert classes["lost.pid_stuck"] == classes["lost.l2_delivered"] == "D12"
    assert set(verdict_lying.divergent) == unexplained and not verdict_lying.agree

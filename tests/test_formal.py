"""Formal proofs (cosim/hardware/formal.py, rtl/lapic_properties.py): the local APIC's
priority rules are proved by k-induction with every cover reached; a broken design fails with a
counterexample trace; an unreachable cover is reported as vacuous; results are cached by the
design's hash."""

import json
import subprocess
from pathlib import Path

import pytest

from cosim.cli import main
from cosim.hardware.formal import PROOFS, replay_trace, run_proof

from .conftest import require_tools

pytestmark = pytest.mark.slow  # the first YoWASP run compiles Yosys and Boolector (~1-2 min)

APIC = next(p for p in PROOFS if p.name == "local_apic")


def test_local_apic_priority_rules_are_proved_and_covered(tmp_path):
    result = run_proof(APIC, tmp_path)
    assert (result.status, result.failed, result.unreached) == ("proved", (), ())
    assert result.clauses == tuple(f"APIC-{n}" for n in range(1, 15))
    again = run_proof(APIC, tmp_path)
    assert again.cached and again.status == "proved"


def test_a_broken_design_fails_with_a_trace(tmp_path):
    """The INTA vector read from the low IRR bits instead of the highest pending vector."""
    result = run_proof(APIC, tmp_path, mutant="inta_lowest")
    assert result.status == "failed" and result.failed == ("APIC_9_10_inta_vector",)
    assert result.trace is not None and result.trace.endswith(".vcd")
    # the counterexample replayed in amaranth.sim fails the same property at the same step,
    # and the correct reading of the same design passes the same inputs
    assert result.reproduced, (result.step, result.replay)
    assert replay_trace(APIC, Path(result.trace)).step is None


def test_an_unreachable_cover_makes_the_proof_vacuous(tmp_path):
    result = run_proof(APIC, tmp_path, mutant="vacuous")
    assert result.status == "vacuous" and result.unreached == ("cover_unreachable",)


def test_pi_cosim_formal_writes_the_report(tmp_path, capsys):
    assert main(["formal", "--out", str(tmp_path), "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "proving 7 property modules, 2 at a time" in out
    assert "local_apic: PROVED" in out
    report = json.loads((tmp_path / "formal.json").read_text())
    assert [(p["name"], p["status"], p["engine"]) for p in report["proofs"]] == [
        ("local_apic", "proved", "smtbmc boolector"),
        ("nv_decision", "proved", "smtbmc boolector"),
        ("pi_concurrent_posts", "proved", "smtbmc boolector"),
        ("ipiv_notifications", "proved", "smtbmc boolector"),
        ("sender_and_unit_on_one_memory", "proved", "smtbmc boolector"),
        ("virtual_interrupt", "proved", "smtbmc boolector"),
        ("descriptor_layout", "proved", "smtbmc boolector")]
    # the signoff view: each catalogue clause with the proofs that prove it
    clauses = report["clauses"]
    assert clauses["PI-9"] == {"status": "proved", "proofs": ["pi_concurrent_posts",
                                                              "sender_and_unit_on_one_memory"]}
    assert clauses["PI-5"]["proofs"] == ["nv_decision", "pi_concurrent_posts"]
    assert clauses["VID-4"] == {"status": "proved", "proofs": ["virtual_interrupt"]}
    assert clauses["PI-1"] == {"status": "proved", "proofs": ["descriptor_layout"]}
    assert clauses["VID-12"]["status"] == "proved" and "NMI" in clauses["VID-12"]["not_modelled"]
    unproved = {c: e for c, e in clauses.items() if e["status"] != "proved"}
    # every clause but the two that are no property of this RTL: APIC-1..14; EXT-1..6;
    # PI-1..14, 16, 17; VID-1, 3-12; IPIV-1..9
    assert sorted(unproved) == ["PI-15", "VID-2"]
    assert all(e["out_of_scope"] for e in unproved.values())
    assert f"clauses proved: {len(clauses) - 2} of {len(clauses)}" in out
    assert "  VID-2 not proved: the byte layout of VIRR/VISR" in out
    assert "  VID-12 proved but for a part not modelled: the ranking below NMI" in out


LAYOUT = next(p for p in PROOFS if p.name == "descriptor_layout")


def test_the_descriptor_layout_is_proved(tmp_path):
    """PI-1 with the clause's own bit numbers: both units that touch the descriptor (the
    receiving CPU's steps 3 and 5, the IPI-virtualization sender) stay in its 64 bytes and use
    PIR 255:0, ON 256, SN 257, NV 279:272 and NDST 319:288 where the SDM puts them."""
    result = run_proof(LAYOUT, tmp_path)
    assert (result.status, result.failed, result.unreached) == ("proved", (), ())
    assert result.clauses == ("IPIV-5", "IPIV-6", "IPIV-8", "IPIV-9", "PI-1")


def test_step_3_clearing_sn_breaks_the_layout(tmp_path):
    """A design mutant: step 3's AND also clears bit 257 (SN)."""
    result = run_proof(LAYOUT, tmp_path, mutant="step_3_clears_sn_too")
    assert result.status == "failed"
    assert result.failed == ("PI_1_step_3_clears_bit_256_and_keeps_sn_nv_ndst",)
    assert result.reproduced, (result.step, result.replay)


NV = next(p for p in PROOFS if p.name == "nv_decision")


def test_the_nv_decision_is_proved(tmp_path):
    """The central property: in non-root operation with posted interrupts, processing starts
    iff the acknowledged vector is NV[7:0]; otherwise exit 1 with 0x80000000 | vector."""
    result = run_proof(NV, tmp_path)
    assert (result.status, result.failed, result.unreached) == ("proved", (), ())
    assert result.clauses == ("APIC-9", "EXT-1", "EXT-2", "EXT-3", "EXT-4", "EXT-5", "EXT-6",
                              "PI-2", "PI-3", "PI-4", "PI-5", "PI-11", "PI-16", "VID-11",
                              "VID-12")


def test_an_external_interrupt_taken_before_a_virtual_one_fails(tmp_path):
    """A design mutant: rtl/top.py takes the local APIC's interrupt without waiting for a
    deliverable virtual interrupt. VID-12's unchanged property fails, and the trace replays."""
    result = run_proof(NV, tmp_path, mutant="external_interrupt_before_virtual")
    assert result.status == "failed"
    assert "VID_12_no_inta_while_a_virtual_interrupt_is_deliverable" in result.failed
    assert result.reproduced, (result.step, result.replay)


def test_the_nv_decision_fails_when_nv_is_compared_without_the_ack(tmp_path):
    """A reading that takes the lowest IRR byte for the acknowledged vector breaks the
    central property."""
    result = run_proof(NV, tmp_path, mutant="vector_without_ack")
    assert result.status == "failed"
    assert "PI_2_3_5_processing_starts_only_for_an_acked_nv" in result.failed
    assert result.reproduced, (result.step, result.replay)


def test_the_nv_decision_fails_for_a_design_that_compares_nv_without_the_ack(tmp_path):
    """A design mutant (cosim/hardware/mutants.py): step 2 in rtl/top.py compares NV with the
    IRR's low byte instead of the acknowledged vector. The unchanged central property fails,
    with a counterexample trace."""
    result = run_proof(NV, tmp_path, mutant="nv_compared_without_the_ack")
    assert result.status == "failed"
    assert "PI_2_3_5_processing_starts_only_for_an_acked_nv" in result.failed
    assert result.reproduced, (result.step, result.replay)
    assert result.trace is not None and Path(result.trace).stat().st_size > 0
    # the trace opens in GTKWave with the property module's signals
    require_tools("gtkwave", "xvfb-run", install="apt-get install -y gtkwave xvfb")
    assert result.gtkw == str(Path(result.trace).with_suffix(".gtkw"))
    probe = tmp_path / "probe.tcl"
    probe.write_text('puts "TRACES [gtkwave::getTotalNumTraces]"\ngtkwave::/File/Quit\n')
    shown = subprocess.run(["xvfb-run", "-a", "gtkwave", "-S", str(probe), result.gtkw],
                           capture_output=True, text=True, timeout=120)
    traces = [ln for ln in shown.stdout.splitlines() if ln.startswith("TRACES ")]
    assert traces and int(traces[0].split()[1]) > 10, shown.stdout[-2000:]


def test_a_design_mutant_that_no_longer_applies_is_refused(monkeypatch):
    from cosim.hardware import mutants

    monkeypatch.setitem(mutants.DESIGN_MUTANTS, "gone", mutants.DesignMutant(
        "rtl.top", "InterruptPath", "elaborate", "no such statement", "x", "nothing"))
    with pytest.raises(ValueError, match="is not written exactly once in "
                                         "rtl.top.InterruptPath.elaborate"):
        mutants.mutant_class("gone")


PI = next(p for p in PROOFS if p.name == "pi_concurrent_posts")


def test_no_posted_bit_is_lost_with_an_adversarial_writer(tmp_path):
    """PI-9 and PI-8 with another agent ORing free bits into any PIR word at any edge, before
    or after the unit's operation; the unit issues only step 3's AND and step 5's swaps, in
    the SDM's order (step 3 once, step 4, each PIR word once in order, steps 6-7 last)."""
    result = run_proof(PI, tmp_path)
    assert (result.status, result.failed, result.unreached) == ("proved", (), ())
    assert result.clauses == ("PI-5", "PI-6", "PI-7", "PI-8", "PI-9", "PI-10", "PI-11",
                              "PI-12", "PI-13", "PI-14", "PI-17")


def test_a_harvested_word_dropped_is_a_lost_bit(tmp_path):
    result = run_proof(PI, tmp_path, mutant="drop_merge")
    assert result.status == "failed" and result.failed == ("PI_9_no_posted_bit_is_lost",)
    assert result.reproduced, (result.step, result.replay)
    assert replay_trace(PI, Path(result.trace)).step is None


def test_pir_read_before_on_is_cleared_breaks_the_order(tmp_path):
    """A design mutant (cosim/hardware/mutants.py) that skips step 3: the unchanged order
    proof fails (the run reads PIR with ON still set), with a counterexample trace."""
    result = run_proof(PI, tmp_path, mutant="pir_read_before_on_is_cleared")
    assert result.status == "failed" and result.trace is not None
    assert set(result.failed) & {"PI_10_on_cleared_before_pir_is_read",
                                 "PI_7_eoi_after_step_3_and_before_step_5",
                                 "helper_eoi_state_follows_step_3"}, result.failed
    # replayed in amaranth.sim: the mutant fails at the tools' step, the real unit does not
    assert result.reproduced, (result.step, result.replay)
    assert replay_trace(PI, Path(result.trace)).step is None


IPIV = next(p for p in PROOFS if p.name == "ipiv_notifications")


def test_one_notification_per_on_transition(tmp_path):
    """IPIV-7/9 with NotifyInfo rewritten by another agent at any edge: a notification only
    for a 0-to-1 turn of ON by this sender, exactly one each; IPIV-5, IPIV-6 as well; the
    guards (IPIV-1..4: an APIC-write exit with qualification 300H, no descriptor access but
    through a valid entry read at table + 8 x index) and the destination (IPIV-8)."""
    result = run_proof(IPIV, tmp_path)
    assert (result.status, result.failed, result.unreached) == ("proved", (), ())
    assert result.clauses == ("IPIV-1", "IPIV-2", "IPIV-3", "IPIV-4", "IPIV-5", "IPIV-6",
                              "IPIV-7", "IPIV-8", "IPIV-9")


def test_a_notification_nobody_owes_fails(tmp_path):
    result = run_proof(IPIV, tmp_path, mutant="notify_twice")
    assert result.status == "failed"
    assert result.failed == ("IPIV_7_9_notification_only_for_an_on_transition",)
    assert result.reproduced, (result.step, result.replay)


POSTING = next(p for p in PROOFS if p.name == "sender_and_unit_on_one_memory")


def test_the_sender_and_the_unit_on_one_memory_lose_and_strand_no_vector(tmp_path):
    """The real concurrent agent: the IPI-virtualization sender and the posted-interrupt unit
    on one memory, every interleaving of their indivisible operations. No vector lost
    (PI-9) or invented (PI-8); every PIR bit is harvested by the run in progress or notified
    afterwards; a notification only from the sender that posted and turned ON from 0 to 1;
    and a run that finds PIR already harvested is reachable (C4)."""
    result = run_proof(POSTING, tmp_path)
    assert (result.status, result.failed, result.unreached) == ("proved", (), ())
    assert result.clauses == ("IPIV-5", "IPIV-6", "IPIV-7", "IPIV-9", "PI-8", "PI-9", "PI-10")


def test_a_sender_that_leaves_on_clear_strands_its_vector(tmp_path):
    """A design mutant of the sender (it updates NotifyInfo only when ON is already set): the
    unchanged properties fail, and the counterexample replays in simulation at the tools'
    step; the real sender passes the same inputs."""
    result = run_proof(POSTING, tmp_path, mutant="sender_stops_when_on_is_clear")
    assert result.status == "failed" and result.trace is not None
    assert set(result.failed) & {"PI_10_IPIV_5_6_7_every_pir_bit_harvested_or_notified",
                                 "IPIV_7_9_notified_only_by_a_sender_that_posted_and_turned_on_on",
                                 "helper_owed_means_send", "helper_send_state_owes"}
    assert result.reproduced, (result.step, result.replay)
    assert replay_trace(POSTING, Path(result.trace)).step is None


VAPIC = next(p for p in PROOFS if p.name == "virtual_interrupt")


def test_virtual_interrupt_delivery_follows_the_sdm(tmp_path):
    """The virtual APIC against the clauses' own text, every input free: the status layout,
    PPR virtualization, recognition and its triggers, delivery's conditions and effects, EOI,
    TPR and self-IPI virtualization, the posted-interrupt merge; six covers reached."""
    result = run_proof(VAPIC, tmp_path)
    assert (result.status, result.failed, result.unreached) == ("proved", (), ())
    assert result.clauses == ("VID-1", "VID-3", "VID-4", "VID-5", "VID-6", "VID-7", "VID-8",
                              "VID-9", "VID-10", "VID-11")


def test_an_eoi_exit_tested_at_the_new_svi_fails(tmp_path):
    """A design mutant: EOI virtualization looks up the EOI-exit bitmap at the new SVI instead
    of the vector whose EOI it virtualizes; the counterexample replays in simulation."""
    result = run_proof(VAPIC, tmp_path, mutant="eoi_exit_checks_the_new_svi")
    assert result.status == "failed"
    assert "VID_8_eoi_exit_iff_the_bitmap_bit" in result.failed
    assert result.reproduced, (result.step, result.replay)
    assert replay_trace(VAPIC, Path(result.trace)).step is None

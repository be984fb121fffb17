"""pi-cosim model and pi-cosim replay: output, JSON shape, exit codes (docs/cli.md)."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from cosim.cli import MIN_FILES_PER_WORKER, main, replay_slices
from cosim.judge.scoreboard import compare
from cosim.reference.kvm import run_model
from cosim.report.text import result_line
from cosim.scenario.drain import SideRun
from cosim.scenario.format import load_scenario
from software_model import KernelVersion

SEED = str(Path(__file__).parent.parent / "scenarios" / "seed-ipiv.toml")


def test_model_prints_versions_side_by_side_and_marks_differences(capsys):
    assert main(["model", SEED]) == 0
    out = capsys.readouterr().out
    assert "== seed-ipiv" in out
    assert "pre-patch" in out and "post-patch" in out and "nov-2024" in out
    line = next(ln for ln in out.splitlines() if "vmexit" in ln)
    assert line.split()[:5] == ["*", "vmexit", "exit", "1", "info"]
    assert "0x800000ff" in line and line.rstrip().endswith("none")
    assert "-- drain: each version runs to rest as L1 and L2 would\n" \
           "     pre-patch: eoi vm_entry\n     post-patch: l2_eoi\n     nov-2024: l2_eoi\n" in out
    assert "pre-patch: misses vmexit, pid.pir, pid.on, l2.visr, l2.svi, l2.delivered; " \
           "post-patch: holds; nov-2024: holds" in out


def test_model_json_shape(capsys):
    assert main(["model", SEED, "--kvm", "post-patch", "--json"]) == 0
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(docs) == 1
    doc = docs[0]
    assert doc["scenario"] == "seed-ipiv" and doc["kvm"] == "post-patch"
    assert doc["commit"].startswith("6e0b456547f4") and doc["expect_ok"] is True
    event = doc["events"][0]
    assert event["event"] == {"kind": "interrupt", "vector": 255, "route": "ipiv"}
    assert event["software"] == {
        "vmexit": None, "vmentry_error": None, "mode": "l2",
        "l1_apic": {"irr": [], "isr": [], "ppr": 0, "eoi_messages": []},
        "pid": {"pir": [], "on": False, "sn": False},
        "l2": {"virr": [], "visr": [65], "rvi": 0, "svi": 65, "vppr": 64, "delivered": [65]},
    }


def test_bad_file_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[events]]\nkind = "interrupt"\nvector = 0x50\nroute = "ipi"\n')
    assert main(["model", SEED, str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # files are validated before anything runs
    assert captured.err == (f'pi-cosim: error: {bad}: events[0].route: unknown route \'ipi\'; '
                            'allowed: "ipiv", "trapped-ipi", "device-post"\n')


def test_bad_argument_exits_2_with_one_line():
    result = subprocess.run([sys.executable, "-m", "cosim", "model", SEED, "--kvm", "v6.9"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == ("pi-cosim model: error: argument --kvm: invalid choice: 'v6.9' "
                             "(choose from 'pre-patch', 'post-patch', 'nov-2024', 'all') "
                             "(see pi-cosim model --help)\n")


def test_console_script_help_lists_model():
    result = subprocess.run([sys.executable, "-m", "cosim", "--help"], capture_output=True,
                            text=True, check=True)
    assert "model" in result.stdout


# --- replay -------------------------------------------------------------------------------------

SCENARIOS = Path(__file__).parent.parent / "scenarios"
SEED_OUTCOME = {
    "vmexit": None, "vmentry_error": None, "mode": "l2",
    "l1_apic": {"irr": [], "isr": [], "ppr": 0, "eoi_messages": []},
    "pid": {"pir": [], "on": False, "sn": False},
    "l2": {"virr": [], "visr": [65], "rvi": 0, "svi": 65, "vppr": 64, "delivered": [65]},
}


def test_replay_json_contract(capsys):
    """The --json shape of docs/cli.md, for all versions, from one simulation: the
    seed is known bug KB1 on pre-patch (still agree = false, exit 1), with the drain's lost
    interrupts."""
    assert main(["replay", SEED, "--sim", "amaranth", "--kvm", "all", "--json"]) == 1
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["kvm"] for d in docs] == ["pre-patch", "post-patch", "nov-2024"]
    pre, post, _ = docs
    keys = ("scenario", "sim", "agree", "expect_ok", "deviations", "known_bugs", "divergences",
            "impossible")
    assert {k: post[k] for k in keys} == {
        "scenario": "seed-ipiv", "sim": "amaranth", "agree": True, "expect_ok": True,
        "deviations": [], "known_bugs": [], "divergences": [], "impossible": None}
    assert post["events"][0]["event"] == {"kind": "interrupt", "vector": 255, "route": "ipiv"}
    assert post["events"][0]["hardware"] == post["events"][0]["software"] == SEED_OUTCOME
    assert post["events"][0]["differences"] == []
    assert post["drain"]["hardware"]["steps"] == post["drain"]["software"]["steps"] == ["l2_eoi"]
    assert post["drain"]["differences"] == [] and post["drain"]["lost"] == {}
    assert {k: pre[k] for k in keys} == {
        "scenario": "seed-ipiv", "sim": "amaranth", "agree": False, "expect_ok": True,
        "deviations": [], "known_bugs": ["KB1"], "divergences": [], "impossible": None}
    event = pre["events"][0]
    assert event["hardware"] == SEED_OUTCOME
    assert event["software"]["vmexit"] == {"reason": 1, "intr_info": 0x800000FF,
                                           "qualification": 0}
    assert event["differences"] == ["vmexit", "mode", "l1_apic.isr", "l1_apic.ppr", "pid.pir",
                                    "pid.on", "l2.visr", "l2.svi", "l2.vppr", "l2.delivered"]
    assert event["known_bugs"] == {f: "KB1" for f in event["differences"]}
    assert event["divergences"] == [] and event["deviations"] == {}
    drain = pre["drain"]
    assert drain["hardware"]["steps"] == ["l2_eoi"]
    assert drain["software"]["steps"] == ["eoi", "vm_entry"]
    assert drain["lost"] == {"lost.l2_delivered": {"hardware": [0x41], "software": []},
                             "lost.l1_delivered": {"hardware": [], "software": [0xFF]},
                             "lost.pid_stuck": {"hardware": [], "software": [0x41]}}
    assert drain["known_bugs"] == {"lost.l2_delivered": "KB1", "lost.l1_delivered": "KB1",
                                   "lost.pid_stuck": "KB1", "pid.pir": "KB1", "pid.on": "KB1"}


def test_replay_names_deviations_and_exits_0(capsys):
    files = [str(SCENARIOS / f"{n}.toml") for n in ("l2-virtual-before-l1-exit",
                                                    "pir-vector-zero")]
    assert main(["replay", *files, "--sim", "amaranth", "--json"]) == 0
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["scenario"], d["agree"], d["deviations"], d["known_bugs"]) for d in docs] == [
        ("l2-virtual-before-l1-exit", True, ["D10"], []), ("pir-vector-zero", True, ["D2"], [])]
    assert docs[1]["events"][0]["deviations"] == {"pid.pir": "D2", "l2.virr": "D2"}
    # D10 is reconciled: nothing differs at rest; D2 leaves exactly its residue (bit 0)
    assert docs[0]["drain"]["differences"] == []
    assert docs[1]["drain"]["deviations"] == {"pid.pir": "D2", "l2.virr": "D2"}
    assert docs[1]["drain"]["lost"] == {}


def test_replay_d6_scenario_is_a_known_bug_until_nov_2024(capsys):
    """The issue's acceptance: nv-before-lower-vector with the drain reports known bug KB2
    for pre-patch and post-patch and agreement (deviation D10, reconciled) for nov-2024."""
    scenario = str(SCENARIOS / "nv-before-lower-vector.toml")
    assert main(["replay", scenario, "--sim", "amaranth", "--kvm", "all", "--json"]) == 1
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["agree"], d["known_bugs"], d["deviations"]) for d in docs] == [
        (False, ["KB2"], []), (False, ["KB2"], []), (True, [], ["D10"])]
    assert docs[1]["drain"]["software"]["final"]["pid"] == {"pir": [0x41], "on": True,
                                                            "sn": False}
    assert docs[1]["drain"]["hardware"]["final"]["l2"]["delivered"] == [0x41]
    assert docs[2]["drain"]["software"]["final"]["l2"]["delivered"] == [0x41]


def test_replay_human_output_side_by_side(capsys):
    assert main(["replay", SEED, "--sim", "amaranth", "--kvm", "pre-patch"]) == 1
    out = capsys.readouterr().out
    assert "hardware: amaranth, memory seed 0    software: KVM pre-patch (8c23670f2b00)" in out
    line = next(ln for ln in out.splitlines() if "vmexit" in ln)
    assert line.split()[:4] == ["!", "vmexit", "none", "exit"]
    assert line.endswith("<- known KVM bug KB1")
    assert ("-- drain: each side runs to rest as L1 and L2 would (L1 EOIs what is in service, "
            "takes what its APIC presents and re-enters L2; L2 EOIs)\n     hardware: l2_eoi\n"
            "     KVM:      eoi vm_entry\n" in out)
    line = next(ln for ln in out.splitlines() if "lost.l2_delivered" in ln)
    assert line.split() == ["!", "lost.l2_delivered", "{0x41}", "-", "<-", "known", "KVM",
                            "bug", "KB1"]
    assert ("   result: KNOWN KVM BUG KB1 (L2's notification vector in L1's IRR becomes a "
            "nested VM exit (the seed))\n") in out
    assert main(["replay", str(SCENARIOS / "pir-vector-zero.toml"), "--sim", "amaranth"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "pid.pir" in ln)
    assert line.split()[:4] == ["~", "pid.pir", "{}", "{0x00}"]
    assert line.endswith("<- deviation D2")
    assert "result: AGREE with deviations D2 (PIR holding only bit 0)" in out


def test_replay_summary_over_many_runs(capsys):
    files = [SEED, str(SCENARIOS / "nv-while-in-l0.toml")]
    assert main(["replay", *files, "--sim", "amaranth", "--kvm", "all"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == ("summary: 6 runs: 2 agree (0 with deviations), 4 show known KVM bugs "
                       "(KB1, KB7), 0 unexplained divergences, 0 impossible events, "
                       "0 missed [expect]")


def test_replay_unexplained_divergence_is_named_so(tmp_path, capsys):
    """A difference no finding explains is an unexplained divergence, never a deviation or a
    known bug: the seed against a post-patch run whose VPPR was tampered with."""

    scenario = load_scenario(SEED)
    post = run_model(scenario, KernelVersion.POST_PATCH).side
    wrong = replace(post.outcomes[0], l2=replace(post.outcomes[0].l2, vppr=0x50))
    verdict = compare(scenario, KernelVersion.POST_PATCH, "model", 0, post,
                      SideRun((wrong,), post.drain))
    assert verdict.divergent == ("l2.vppr",) and not verdict.known_bugs
    assert not verdict.agree
    assert result_line(verdict) == "UNEXPLAINED DIVERGENCE in l2.vppr"


def test_replay_impossible_event_stops_the_scenario_exit_2(tmp_path, capsys):
    """An event made impossible by what happened before (here: the interrupt did not exit,
    so L1 is not running for its EOI) stops the scenario with a clear result."""
    path = tmp_path / "impossible.toml"
    path.write_text((SCENARIOS / "seed-ipiv.toml").read_text().split("[expect]")[0]
                    + '[[events]]\nkind = "eoi"\n')
    assert main(["replay", str(path), "--sim", "amaranth", "--kvm", "all"]) == 2
    out = capsys.readouterr().out
    assert ("   result: IMPOSSIBLE EVENT: events[1] (eoi) needs L1 running, but L2 runs at that "
            "point; the scenario stops there\n") in out
    assert "-- drain" not in out
    assert main(["replay", str(path), "--sim", "amaranth", "--json"]) == 2
    (doc,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert doc["impossible"]["index"] == 1 and doc["impossible"]["mode"] == "l2"
    assert len(doc["events"]) == 1 and doc["drain"] is None


def test_replay_missed_expect_exits_1(tmp_path, capsys):
    text = (SCENARIOS / "seed-ipiv.toml").read_text().replace("delivered = [0x41]",
                                                             "delivered = [0x42]")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(text)
    assert main(["replay", str(wrong), "--sim", "amaranth", "--json"]) == 1
    (doc,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert doc["agree"] is True and doc["expect_ok"] is False
    assert doc["expect_mismatches"] == ["l2.delivered"]


def test_replay_bad_file_names_file_and_key(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[pid]\npir = [0x41, 300]\n')
    assert main(["replay", SEED, str(bad), "--sim", "amaranth"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"pi-cosim: error: {bad}: pid.pir")


def test_replay_bad_arguments_exit_2():
    for args, message in [
        (["--sim", "modelsim"], "argument --sim: invalid choice: 'modelsim'"),
        (["--seed", "-1"], "argument --seed: invalid seed '-1': an integer from 0 to 4294967295"),
        (["--seed", "0x100000000"],
         "argument --seed: invalid seed '0x100000000': an integer from 0 to 4294967295"),
        (["--kvm", "6.9"], "argument --kvm: invalid choice: '6.9'"),
        (["--workers", "0"], "argument --workers: invalid worker count '0': an integer >= 1"),
    ]:
        result = subprocess.run([sys.executable, "-m", "cosim", "replay", SEED, *args],
                                capture_output=True, text=True)
        assert result.returncode == 2, args
        assert result.stdout == "" and result.stderr.count("\n") == 1
        assert result.stderr.startswith(f"pi-cosim replay: error: {message}"), result.stderr


def test_replay_missing_simulator_exits_2_with_install_hint(tmp_path):
    """No iverilog on PATH: one line saying how to install it, exit 2."""
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "cosim", "replay", SEED, "--sim", "icarus"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "apt-get install -y iverilog" in result.stderr and result.stdout == ""


@pytest.fixture(scope="module")
def kut_files(tmp_path_factory) -> list[str]:
    """Enough kvm-unit-tests cases for two replay workers (MIN_FILES_PER_WORKER each)."""
    from cosim.scenario.kut import posted_interrupts

    directory = tmp_path_factory.mktemp("kut")
    files = []
    for name, text in list(posted_interrupts())[:2 * MIN_FILES_PER_WORKER + 7]:
        (directory / name).write_text(text)
        files.append(str(directory / name))
    return files


@pytest.mark.parametrize("json_out", [True, False], ids=["json", "text"])
def test_replay_split_over_workers_prints_what_one_process_prints(kut_files, native, capsys,
                                                                   json_out):
    """519 files over 2 worker processes (at least MIN_FILES_PER_WORKER each): the same
    output byte for byte (verdicts in file order, the summary line) and the same exit status
    as one process; pre-patch's KB1 makes it 1."""
    flags = ["--kvm", "all", "--sim", native] + (["--json"] if json_out else [])
    one = main(["replay", *kut_files, *flags, "--workers", "1"])
    first = capsys.readouterr().out
    two = main(["replay", *kut_files, *flags, "--workers", "2"])
    second = capsys.readouterr().out
    assert (two, second) == (one, first)
    assert one == 1
    if json_out:
        docs = [json.loads(line) for line in first.splitlines()]
        assert [d["file"] for d in docs[::3]] == kut_files
        assert {d["known_bugs"] == ["KB1"] for d in docs if d["kvm"] == "pre-patch"} == {True}
    else:
        assert first.splitlines()[-1].startswith(f"summary: {3 * len(kut_files)} runs: ")


def test_replay_gives_each_worker_at_least_min_files():
    files = [f"f{i}.toml" for i in range(2 * MIN_FILES_PER_WORKER + 7)]
    assert [len(s) for s in replay_slices(files, 4)] == [260, 259]  # 2 workers, not 4
    assert sum(replay_slices(files, 4), []) == files  # contiguous, in order
    assert [len(s) for s in replay_slices(files[:MIN_FILES_PER_WORKER + 1], 4)] == [257]
    assert [len(s) for s in replay_slices(files, 1)] == [len(files)]
    assert replay_slices(files[:3], 2) == [files[:3]]


def test_replay_bad_file_in_a_worker_is_one_line_and_no_output(kut_files, native, tmp_path,
                                                              capsys):
    """A bad file in the second worker's slice: the first one's verdicts are not printed
    either (as in one process, which loads every file before it prints), one line, exit 2."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[pid]\npir = [0x41, 300]\n")
    files = [*kut_files[:-1], str(bad)]
    assert main(["replay", *files, "--sim", native, "--workers", "1"]) == 2
    alone = capsys.readouterr()
    assert main(["replay", *files, "--sim", native, "--workers", "2"]) == 2
    captured = capsys.readouterr()
    assert (captured.out, alone.out) == ("", "")
    assert captured.err == alone.err
    assert captured.err.startswith(f"pi-cosim: error: {bad}: pid.pir")
    assert captured.err.count("\n") == 1


def test_cocotb_test_module_imports_no_amaranth():
    """The cocotb simulation process imports only the batch loop: Amaranth and the scenario
    format took half of its start (cosim.hardware.batches)."""
    code = ("import sys, cosim.hardware.cocotb_replay; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('amaranth', 'rtl') or m.startswith('cosim.scenario')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"

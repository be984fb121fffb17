"""pi-cosim model: output, JSON shape, exit codes (DESIGN.md section 6)."""

import json
import subprocess
import sys
from pathlib import Path

from cosim.cli import main

SEED = str(Path(__file__).parent.parent / "scenarios" / "seed-ipiv.toml")


def test_model_prints_versions_side_by_side_and_marks_differences(capsys):
    assert main(["model", SEED]) == 0
    out = capsys.readouterr().out
    assert "== seed-ipiv" in out
    assert "pre-patch" in out and "post-patch" in out and "nov-2024" in out
    line = next(ln for ln in out.splitlines() if "vmexit" in ln)
    assert line.split()[:5] == ["*", "vmexit", "exit", "1", "info"]
    assert "0x800000ff" in line and line.rstrip().endswith("none")
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
        "vmexit": None, "vmentry_error": None,
        "l1_apic": {"irr": [], "isr": [], "ppr": 0},
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

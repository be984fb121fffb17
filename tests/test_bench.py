"""The benchmark suite runs (``python -m bench --quick``): a smoke test, not a benchmark."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import require_simulator

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_bench_quick_writes_the_three_reports(tmp_path):
    for sim in ("icarus", "verilator"):
        require_simulator(sim)
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((tmp_path / "bench.json").read_text())
    assert set(data["backends"]) == {"verilator", "icarus", "amaranth"}
    raw = data["raw"]
    assert raw["verilator"]["cycles_per_s"] > data["backends"]["verilator"][
        "harness_cycles_per_s"] > 0
    # the raw C++ main replays the same encoded jobs through the same harness: same outcomes
    assert raw["verilator"]["same_outcomes_as_cocotb"] is True
    # the same jobs through the same harness: the same cycles, but for the testbenches' own
    # first edge
    assert abs(raw["icarus"]["cycles"] - raw["verilator"]["cycles"]) <= 1
    assert 0 < data["backends"]["verilator"]["fraction_of_raw"] <= 1.5
    kut = data["kut_3_versions_s"]
    assert kut["verdicts"] == 20 * 3 and set(kut["sims"]) == {"verilator", "verilator-native"}
    # post-patch and nov-2024 agree on every case, pre-patch shows KB1: exit status 1
    assert {f["exit_status"] for f in kut["sims"].values()} == {1}
    report = (tmp_path / "bench.md").read_text()
    # the fixed and marginal cost per backend, and the replay per simulator and workers
    assert all(f"| {name} | {data['backends'][sim]['fixed_s']:.2f} |" in report
               for sim, name in (("verilator", "cocotb + Verilator"),
                                 ("icarus", "cocotb + Icarus"), ("amaranth", "amaranth.sim")))
    assert all(f"| {sim} | {f['workers_1_s']:.2f} | {f['default_s']:.2f} |" in report
               for sim, f in kut["sims"].items())
    assert data["model"]["runs"] == 20 * 3 and data["model"]["check_nested_events_calls"] > 0
    assert data["design"]["accept_to_vm_exit_cycles"] > 0 and data["design"]["flip_flops"] > 0
    assert "| cocotb + Verilator |" in (tmp_path / "bench.md").read_text()
    sweep = data["sweep"]  # --quick: the native server against the three versions at once
    assert set(sweep) == {"verilator-native"} and set(sweep["verilator-native"]) == {"all"}
    figure = sweep["verilator-native"]["all"]
    assert figure["points"] == 169 and figure["mismatches"] == 0 and figure["points_per_s"] > 0
    assert (tmp_path / "bench.svg").read_text().startswith("<svg")

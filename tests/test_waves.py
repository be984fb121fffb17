"""Waveforms: dump names, GTKWave save files (groups, enums by name, opened headless under
xvfb-run on every backend), the committed translate filters, dumps written by failing tests,
and the SDM ordering of posted-interrupt processing read back from a VCD with vcdvcd."""

import subprocess
from pathlib import Path

import pytest
from vcdvcd import VCDVCD

from cosim.cli import main
from cosim.hardware.backends import simulate
from cosim.hardware.testbench import Job
from cosim.hardware.waves import FILTER_DIR, GROUPS, dump_path, enums, filter_text
from cosim.scenario.format import load_scenario

from .conftest import require_tools, waves_on_failure

SCENARIOS = Path(__file__).parent.parent / "scenarios"
SEED = SCENARIOS / "seed-ipiv.toml"
DESC = 0x10000


def test_committed_filters_match_the_rtl_enums():
    assert sorted(p.stem for p in FILTER_DIR.glob("*.txt")) == sorted(enums()) == [
        "ExitReason", "MemOp", "PathState", "Phase", "PiState"]
    for name, enum_type in enums().items():
        assert (FILTER_DIR / f"{name}.txt").read_text() == filter_text(enum_type), name
    assert (FILTER_DIR / "PiState.txt").read_text().splitlines()[1:] == [
        "0 IDLE", "1 CLEAR_ON", "2 EOI", "3 HARVEST", "4 RVI"]


def test_dump_names_never_overwrite(tmp_path):
    first = dump_path(tmp_path, "seed-ipiv", "icarus", 7)
    assert first.name == "seed-ipiv-icarus-seed7.fst"
    first.write_text("")
    second = dump_path(tmp_path, "seed-ipiv", "icarus", 7)
    assert second.name == "seed-ipiv-icarus-seed7-2.fst"
    second.with_suffix(".gtkw").write_text("")
    assert dump_path(tmp_path, "seed-ipiv", "icarus", 7).name == "seed-ipiv-icarus-seed7-3.fst"
    assert dump_path(tmp_path, "seed-ipiv", "amaranth", 0).name == "seed-ipiv-amaranth-seed0.vcd"


GTKWAVE_PROBE = """
set n [gtkwave::getTotalNumTraces]
puts "TRACES $n"
gtkwave::setMarker 0
for {set i 0} {$i < $n} {incr i} {
    puts "TRACE [gtkwave::getTraceNameFromIndex $i]=[gtkwave::getTraceValueAtMarkerFromIndex $i]"
}
gtkwave::/File/Quit
"""


def test_replay_waves_open_in_gtkwave_grouped_with_enum_names(tmp_path, capsys, wave_sim):
    sim = wave_sim
    require_tools("gtkwave", "xvfb-run", install="apt-get install -y gtkwave xvfb")
    assert main(["replay", str(SEED), "--sim", sim, "--waves", "--waves-dir",
                 str(tmp_path)]) == 0
    out = capsys.readouterr().out
    fst = tmp_path / f"seed-ipiv-{sim}-seed0.fst"
    gtkw = fst.with_suffix(".gtkw")
    assert f"waves: {fst} (gtkwave {gtkw})" in out
    assert fst.stat().st_size > 0
    probe = tmp_path / "probe.tcl"
    probe.write_text(GTKWAVE_PROBE)
    result = subprocess.run(["xvfb-run", "-a", "gtkwave", "-S", str(probe), str(gtkw)],
                            capture_output=True, text=True, timeout=120)
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("TRACE")]
    signals = sum(len(s) for _, s in GROUPS)
    # clock and reset, every signal, and a start and end marker per group: nothing missing
    assert lines[0] == f"TRACES {2 + signals + 2 * len(GROUPS)}", result.stdout[-2000:]
    values = dict(ln[len("TRACE "):].split("=", 1) for ln in lines[1:])
    assert {g for g, _ in GROUPS} <= set(values)  # group markers by name
    # enums by name at time 0: the path in VMX root, the PI unit idle, no exit reason
    assert values["state"] == "ROOT" and values["pi_state"] == "IDLE"
    assert values["exit_reason"] == "NONE" and values["mem__op"] == "READ"


def test_failing_test_writes_a_dump(tmp_path):
    scenario = load_scenario(SEED)
    with pytest.raises(AssertionError) as info, waves_on_failure(
            Job(scenario, seed=5), "amaranth", tmp_path):
        raise AssertionError("outcomes differ")
    message = str(info.value)
    assert message.startswith("outcomes differ\nwaveform: ")
    assert (tmp_path / "seed-ipiv-amaranth-seed5.vcd").exists()
    assert (tmp_path / "seed-ipiv-amaranth-seed5.gtkw").exists()


def _value_at(vcd, name, time) -> int:
    """The value of a signal at ``time`` (the last change at or before it)."""
    value = "0"
    for t, v in vcd[name].tv:
        if t > time:
            break
        value = v
    return int(value, 2)


class Cycles:
    """A VCD sampled as the design sees it: the inputs just before each rising clock edge."""

    def __init__(self, vcd, top):
        self.vcd, self.top = vcd, top
        self.edges = [t for t, v in vcd[f"{top}.clk"].tv if v == "1"]

    def get(self, name, edge) -> int:
        return _value_at(self.vcd, f"{self.top}.{name}", edge - 1)

    def when(self, predicate) -> list[int]:
        """The edges at which ``predicate(edge)`` holds."""
        return [t for t in self.edges if predicate(t)]


def test_posted_interrupt_processing_order_on_the_wires(tmp_path):
    """SDM 29.6 on the seed, read back from the VCD: INTA of the notification vector, then ON
    cleared (a locked AND of NotifyInfo with bit 0 clear), then the EOI, then the PIR
    harvest (each PIR word swapped), then the RVI update to 0x41."""
    scenario = load_scenario(SEED)
    (run,) = simulate([Job(scenario)], "amaranth", tmp_path)
    vcd = VCDVCD(str(run.waves.with_suffix(".vcd")))
    top = "bench.top.dut"

    c = Cycles(vcd, top)
    inta = c.when(lambda t: c.get("lapic.inta__valid", t) and c.get("lapic.inta__vector", t)
                  == 0xFF)
    assert len(inta) == 1

    def accesses(addr):
        return c.when(lambda t: c.get("mem__valid", t) and c.get("mem__ready", t)
                      and c.get("mem__addr", t) == addr)

    (on_clear,) = accesses(DESC + 32)
    assert c.get("mem__data", on_clear) & 1 == 0
    (eoi,) = c.when(lambda t: c.get("pi.eoi", t))
    harvest = [a for i in range(4) for a in accesses(DESC + 8 * i)]
    assert len(harvest) == 4
    assert all(c.get("mem__data", t) == 0 for t in harvest)  # each word swapped with 0
    rvi = [t for t, v in vcd[f"{top}.status"].tv if int(v, 2) & 0xFF == 0x41]
    assert inta[0] < on_clear < eoi < min(harvest) <= max(harvest) < rvi[0]

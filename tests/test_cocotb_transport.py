"""How the cocotb backends move jobs and results (``cosim.hardware.backends``,
``cosim.hardware.cocotb_replay``): jobs and result records go over a socket while the
simulator runs; under Verilator the clock is driven by the simulator's main and the memories
are loaded and read through the main's backdoor functions. Every way of running the same
build gives the same side runs, a hang in the design is still the design's, and a simulator
that dies mid-run is reported as a failed simulation, never waited for."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from cosim.hardware import backends
from cosim.hardware.backends import (
    JOB_BYTES,
    RESULT_BYTES,
    SimulationFailed,
    simulate,
    verilator_public,
)
from cosim.hardware.batches import pack, unpack
from cosim.hardware.harness import JOB, RESULT
from cosim.hardware.testbench import HardwareHang, Job
from cosim.scenario.format import load_scenario
from cosim.scenario.kut import posted_interrupts

from .conftest import require_simulator

SEED = Path(__file__).parent.parent / "scenarios" / "seed-ipiv.toml"


def _kut_jobs(count: int) -> list[Job]:
    """``count`` kvm-unit-tests cases spread over the 3568 (repeated past them), each with
    its own memory seed."""
    import tomllib

    from cosim.scenario.format import parse_scenario

    cases = list(posted_interrupts())
    picked = [cases[i * len(cases) // count % len(cases)] for i in range(count)]
    return [Job(parse_scenario(tomllib.loads(text), name), seed=i)
            for i, (name, text) in enumerate(picked)]


def test_records_pack_little_endian_in_whole_bytes():
    """The socket's and the backdoor's format: each record in its own whole bytes, least
    significant first; the widest job and result records fit and come back."""
    assert (JOB_BYTES, RESULT_BYTES) == (368, 178)  # 2941 and 1419 bits
    assert pack([0x0102, 0x03], 2) == b"\x02\x01\x03\x00"
    assert unpack(b"\x02\x01\x03\x00\x09", 2) == [0x0102, 0x03]  # a partial record is left out
    for size, width in ((JOB_BYTES, JOB.size), (RESULT_BYTES, RESULT.size)):
        words = [(1 << width) - 1, 0, 1 << (width - 1)]
        assert unpack(pack(words, size), size) == words


def test_public_declarations_writable_only_where_the_testbench_drives():
    lines = verilator_public().splitlines()
    assert lines[0] == "`verilator_config"
    access = {line.split('"')[3]: line.split()[0] for line in lines[1:]}
    assert {name for name, a in access.items() if a == "public_flat_rw"} == {
        "clk", "rst", "start", "trace_memory", "n_jobs", "first_job", "jobs"}
    assert {name for name, a in access.items() if a == "public_flat_rd"} == {
        "done", "job", "event_index", "phase", "n_results", "overflow", "results"}
    memories = verilator_public(ports=False).splitlines()[1:]
    assert memories == ['public_flat_rw -module "pi_cosim_harness" -var "jobs"',
                        'public_flat_rd -module "pi_cosim_harness" -var "results"']


@pytest.mark.slow
def test_every_way_of_driving_the_verilator_build_gives_the_same_runs(monkeypatch):
    """Three ways over one build, 240 kvm-unit-tests cases (a batch boundary at 512 jobs is
    not needed here: test_harness covers batches), against the native server's runs."""
    require_simulator("verilator")
    jobs = _kut_jobs(240)
    expected = [run.side for run in simulate(jobs, "verilator-native")]
    for way, (gpi_clock, vpi_memories) in backends.VERILATOR_WAYS.items():
        monkeypatch.setenv(backends.GPI_CLOCK, gpi_clock)
        monkeypatch.setenv(backends.VPI_MEMORIES, vpi_memories)
        runs = [run.side for run in simulate(jobs, "verilator")]
        assert runs == expected, way
    assert len({run.cycles for run in expected}) > 1


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_a_hang_in_the_design_is_the_designs(sim):
    """The records stop making sense mid-stream (the design never settles): the hang is
    raised as the design's, the simulator is not left running."""
    require_simulator(sim)
    before = threading.active_count()
    with pytest.raises(HardwareHang, match="did not settle within 2000 cycles"):
        simulate([Job(load_scenario(SEED), seed=0xFFFF, wait_mask=0xFFFF)], sim)
    assert threading.active_count() == before


def _children() -> list[int]:
    """This process's child processes (from /proc)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.slow
def test_a_simulator_killed_mid_run_is_a_failed_simulation():
    """The simulator process dies while the parent decodes its records: the parent reports a
    failed simulation with the log's tail, and does not wait for records that never come."""
    require_simulator("verilator")
    jobs = _kut_jobs(4 * 3568)  # about 2 s of simulation
    killed = []

    def kill_the_simulator() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            for pid in _children():
                if "pi_cosim_harness" in Path(f"/proc/{pid}/cmdline").read_text(
                        errors="replace"):
                    time.sleep(1.0)  # well into the run
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_the_simulator)
    killer.start()
    started = time.monotonic()
    with pytest.raises(SimulationFailed, match="the verilator simulation failed"):
        simulate(jobs, "verilator")
    killer.join()
    assert killed and time.monotonic() - started < 60

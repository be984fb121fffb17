"""``python -m bench``: measure the cosimulation, the KVM model and the design in one run, and
write ``reports/bench.json``, ``reports/bench.md`` and ``reports/bench.svg``.

All figures come from the same run on the same machine, so their ratios hold even when the
machine is noisy; the absolute numbers do not travel. Timings of under a second or so (the
raw Verilator limit, cocotb + Verilator's runs) are the best of three (``REPEATS``).
Benchmarks are not tests: the test suite only checks that ``--quick`` runs
(``tests/test_bench.py``).

What is measured:

- the raw limits: the exported design toggled by a C++ Verilator main (no Python), and by a
  plain Verilog testbench under Icarus (``vvp``), with every input idle; cycles/s;
- each backend (cocotb + Verilator, cocotb + Icarus, amaranth.sim) on kvm-unit-tests cases
  (``vmx_posted_interrupts_test``), the drain included: wall time, scenarios/s, cycles/s and
  that as a fraction of the backend's raw limit (amaranth.sim against Verilator's); the build
  time of each cocotb backend (a fresh build in a scratch cache);
- the KVM model alone: scenario runs/s and ``vmx_check_nested_events`` calls/s; the same runs
  with 1 and 2 worker processes;
- the design: cells and flip-flops (Yosys ``stat`` after ``proc; flatten; opt``), and cycles
  from an interrupt's acceptance to its VM exit and to L2's delivery of a posted vector.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from cosim.hardware import backends
from cosim.hardware.testbench import Job
from cosim.reference.kvm import run_model
from cosim.scenario.format import Scenario, load_scenario
from cosim.scenario.kut import posted_interrupts
from software_model import KernelVersion, nested

ROOT = Path(__file__).resolve().parent.parent

RAW_MAIN = r"""
// Replays encoded jobs through the harness without Python: reads job words (hex, one per
// line) from argv[1], writes result words (hex, one per line) to argv[2], prints the harness
// cycles and the seconds of the simulation and the result reads (not the file I/O).
#include "Vpi_cosim_harness.h"
#include "Vpi_cosim_harness___024root.h"
#include "verilated.h"
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

static void set_wide(EData* words, int n, const std::string& hex) {
    for (int i = 0; i < n; ++i) words[i] = 0;
    int bit = 0;
    for (int i = (int)hex.size() - 1; i >= 0 && bit < n * 32; --i, bit += 4) {
        char c = hex[i];
        unsigned v = (c <= '9') ? c - '0' : (c | 0x20) - 'a' + 10;
        words[bit / 32] |= (EData)v << (bit % 32);
    }
}

static std::string get_wide(const EData* words, int n) {
    std::string s;
    char buf[9];
    for (int i = n - 1; i >= 0; --i) { std::snprintf(buf, sizeof buf, "%08x", words[i]); s += buf; }
    return s;
}

int main(int argc, char** argv) {
    VerilatedContext ctx;
    Vpi_cosim_harness top{&ctx};
    auto* root = top.rootp;
    std::vector<std::string> jobs;
    {
        std::ifstream in(argv[1]);
        std::string line;
        while (std::getline(in, line))
            if (!line.empty()) jobs.push_back(line);
    }
    std::ofstream out(argv[2]);
    const int depth = sizeof(root->pi_cosim_harness__DOT__jobs)
        / sizeof(root->pi_cosim_harness__DOT__jobs[0]);
    const int job_words = sizeof(root->pi_cosim_harness__DOT__jobs[0]) / sizeof(EData);
    const int result_words = sizeof(root->pi_cosim_harness__DOT__results[0]) / sizeof(EData);
    long cycles = 0;
    std::vector<std::vector<EData>> records;  // formatted after the timed part
    top.clk = 0; top.rst = 0; top.start = 0; top.eval();
    auto tick = [&]() { top.clk = 1; top.eval(); top.clk = 0; top.eval(); ++cycles; };
    auto started = std::chrono::steady_clock::now();
    for (size_t at = 0; at < jobs.size(); at += depth) {
        size_t n = std::min(jobs.size() - at, (size_t)depth);
        for (size_t i = 0; i < n; ++i)
            set_wide(&root->pi_cosim_harness__DOT__jobs[i][0], job_words, jobs[at + i]);
        unsigned first = 0;
        while (first < n) {
            top.n_jobs = n; top.first_job = first; top.start = 1; tick(); top.start = 0;
            while (!top.done) tick();
            if (top.overflow) { std::cerr << "overflow\n"; return 2; }
            for (unsigned i = 0; i < top.n_results; ++i) {
                const EData* w = &root->pi_cosim_harness__DOT__results[i][0];
                records.emplace_back(w, w + result_words);
            }
            first = top.job;
        }
    }
    double seconds = std::chrono::duration<double>(
        std::chrono::steady_clock::now() - started).count();
    for (const auto& r : records) out << get_wide(r.data(), result_words) << "\n";
    std::cout << cycles << " " << seconds << "\n";
    return 0;
}
"""

#: The raw Icarus limit: a Verilog testbench loading each batch with $readmemh.
RAW_TB = """
module tb;
  reg clk = 0, start = 0;
  reg [15:0] n_jobs = 0, first_job = 0;
  wire done, overflow;
  wire [15:0] job, n_results;
  wire [7:0] event_index;
  wire [3:0] phase;
  integer cycles = 0, batches, b, count;
  pi_cosim_harness h(.clk(clk), .rst(1'b0), .start(start), .trace_memory(1'b0), .n_jobs(n_jobs),
    .first_job(first_job), .done(done), .job(job), .event_index(event_index), .phase(phase),
    .n_results(n_results), .overflow(overflow));
  always #5 clk = ~clk;
  always @(posedge clk) cycles = cycles + 1;
  initial begin
    if (!$value$plusargs("batches=%d", batches)) batches = 1;
    for (b = 0; b < batches; b = b + 1) begin
      $readmemh($sformatf("jobs%0d.hex", b), h.jobs);
      if (!$value$plusargs($sformatf("count%0d=%%d", b), count)) count = 0;
      n_jobs = count; first_job = 0;
      while (first_job < count) begin
        @(negedge clk); start = 1;
        @(negedge clk); start = 0;
        wait (done);
        first_job = job;
      end
    end
    $display("%0d", cycles);
    $finish;
  end
endmodule
"""


def _scenarios(count: int) -> list[Scenario]:
    """The first ``count`` cases of vmx_posted_interrupts_test, made in memory."""
    import tomllib

    from cosim.scenario.format import parse_scenario

    cases = list(posted_interrupts())[:count]
    return [parse_scenario(tomllib.loads(text), name, default_name=name.removesuffix(".toml"))
            for name, text in cases]


def _job_words(scenarios: list[Scenario]) -> list[int]:
    from cosim.hardware.testbench import encode

    return [encode(Job(s)) for s in scenarios]


def raw_verilator(scenarios: list[Scenario], work: Path) -> dict:
    """The raw limit: a C++ Verilator main (no Python, no VPI) replaying the same encoded
    jobs through the same harness; its result records, which must equal the cocotb run's."""
    backends._simulator_env("verilator")
    work.mkdir(parents=True, exist_ok=True)
    (work / "pi_cosim_harness.v").write_text(backends._verilog())
    (work / "main.cpp").write_text(RAW_MAIN)
    (work / "memories.vlt").write_text(backends.verilator_public(ports=False))
    (work / "jobs.hex").write_text("".join(f"{w:x}\n" for w in _job_words(scenarios)))
    started = time.monotonic()
    subprocess.run(["verilator", "--cc", "--exe", "--build", "-O3", "-Wno-fatal",
                    "--top-module", "pi_cosim_harness", "-j", "2",
                    str(ROOT / "rtl" / "verilator_lint.vlt"), "memories.vlt",
                    "pi_cosim_harness.v", "main.cpp", "-o", "raw"], cwd=work, check=True,
                   capture_output=True)
    build = time.monotonic() - started
    timed = [subprocess.run([str(work / "obj_dir" / "raw"), "jobs.hex", "results.hex"],
                            cwd=work, check=True, capture_output=True, text=True).stdout.split()
             for _ in range(REPEATS["verilator"])]
    records = [int(line, 16) for line in (work / "results.hex").read_text().split()]
    cycles, seconds = int(timed[0][0]), min(float(out[1]) for out in timed)
    return {"scenarios": len(scenarios), "cycles": cycles, "seconds": seconds,
            "cycles_per_s": cycles / seconds, "scenarios_per_s": len(scenarios) / seconds,
            "build_s": build, "records": len(records), "_records": records}


def raw_icarus(scenarios: list[Scenario], work: Path) -> dict:
    """The raw Icarus limit: a plain Verilog testbench (vvp) replaying the same encoded jobs
    through the same harness (batches loaded with $readmemh)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "pi_cosim_harness.v").write_text(backends._verilog())
    (work / "tb.v").write_text(RAW_TB)
    words = _job_words(scenarios)
    batches = [words[i:i + backends.JOB_DEPTH] for i in range(0, len(words),
                                                               backends.JOB_DEPTH)]
    for b, batch in enumerate(batches):
        (work / f"jobs{b}.hex").write_text("".join(f"{w:x}\n" for w in batch))
    subprocess.run(["iverilog", "-g2012", "-o", "raw.vvp", "-s", "tb", "tb.v",
                    "pi_cosim_harness.v"], cwd=work, check=True, capture_output=True)
    args = [f"+batches={len(batches)}", *(f"+count{b}={len(batch)}"
                                          for b, batch in enumerate(batches))]

    def timed(argv: list[str]) -> tuple[float, int]:
        started = time.monotonic()
        out = subprocess.run(["vvp", "-n", "raw.vvp", *argv], cwd=work, check=True,
                             capture_output=True, text=True).stdout.split()
        return time.monotonic() - started, int(out[-1])

    startup, _ = timed(["+batches=0"])
    total, cycles = timed(args)
    seconds = max(total - startup, 1e-9)
    return {"scenarios": len(scenarios), "cycles": cycles, "seconds": seconds,
            "cycles_per_s": cycles / seconds, "scenarios_per_s": len(scenarios) / seconds}


#: Runs per timing, the best kept, where one run takes under a second or so and the machine's
#: noise would decide the figure (Verilator: the raw limit, and cocotb + Verilator's runs)
REPEATS = {"verilator": 3, "icarus": 1, "amaranth": 1}


def _best_of(repeats: int, run):
    """``run()``'s result and the shortest of ``repeats`` timings of it."""
    times, result = [], None
    for _ in range(repeats):
        started = time.monotonic()
        result = run()
        times.append(time.monotonic() - started)
    return result, min(times)


def backend_run(sim: str, scenarios: list[Scenario]) -> dict:
    """The scenarios in one simulation (build cached beforehand), drain included; one
    scenario alone (the fixed cost of a run: the simulator process's start, cocotb's and the
    test module's imports); then the same with 2 workers."""
    backends.simulate([Job(scenarios[0])], sim)  # build, or check the cached build
    _, fixed = _best_of(REPEATS[sim], lambda: backends.simulate([Job(scenarios[0])], sim))
    runs, seconds = _best_of(REPEATS[sim],
                             lambda: backends.simulate([Job(s) for s in scenarios], sim))
    cycles = sum(run.side.cycles for run in runs)
    started = time.monotonic()
    backends.simulate([Job(s) for s in scenarios], sim, workers=2)
    two = time.monotonic() - started
    return {"scenarios": len(scenarios), "seconds": seconds, "testbench_cycles": cycles,
            "scenarios_per_s": len(scenarios) / seconds, "fixed_s": fixed,
            # what each scenario adds once the run has started
            "marginal_s": max(seconds - fixed, 1e-9) / max(len(scenarios) - 1, 1),
            "workers_2_s": two, "workers_2_over_1": two / seconds,
            "_sides": [run.side for run in runs]}


def verilator_ways(scenarios: list[Scenario]) -> dict:
    """cocotb + Verilator driven three ways, the same jobs through the same build,
    interleaved, best of three each: cocotb's GPI clock and VPI memory accesses (cocotb's
    plain way), the clock driven by the simulator's main (``backends.VERILATOR_MAIN``) with
    VPI memory accesses, and the main's clock with the main's backdoor memory functions (the
    default)."""
    jobs = [Job(s) for s in scenarios]
    times: dict[str, list[float]] = {way: [] for way in backends.VERILATOR_WAYS}
    for _ in range(3):
        for way, (gpi_clock, vpi_memories) in backends.VERILATOR_WAYS.items():
            os.environ[backends.GPI_CLOCK] = gpi_clock
            os.environ[backends.VPI_MEMORIES] = vpi_memories
            started = time.monotonic()
            backends.simulate(jobs, "verilator", workers=1)
            times[way].append(time.monotonic() - started)
    os.environ.pop(backends.GPI_CLOCK)
    os.environ.pop(backends.VPI_MEMORIES)
    return {f"{way}_s": min(t) for way, t in times.items()}


def raw_amaranth(scenarios: list[Scenario]) -> dict:
    """amaranth.sim's own limit: the harness running the encoded jobs through the testbench's
    own batch loop (``run_encoded``), timed without elaboration, encoding or decoding."""
    from amaranth.sim import Simulator

    from cosim.hardware.batches import run_encoded
    from cosim.hardware.bench import AmaranthHarnessBench
    from cosim.hardware.harness import Harness, ResultKind

    words = _job_words(scenarios)
    harness = Harness(backends.AMARANTH_JOB_DEPTH, backends.AMARANTH_RESULT_DEPTH)
    spans: list[float] = []

    async def testbench(ctx):
        started = time.monotonic()
        await run_encoded(AmaranthHarnessBench(ctx, harness), words,
                          end_kind=ResultKind.END.value)
        spans.append(time.monotonic() - started)

    sim = Simulator(harness)
    sim.add_clock(backends.CLOCK_PERIOD_NS * 1e-9)
    sim.add_testbench(testbench)
    sim.run()
    return {"scenarios": len(scenarios), "seconds": spans[0],
            "scenarios_per_s": len(scenarios) / spans[0]}


def kut_three_versions(count: int, sims: list[str]) -> dict:
    """All the cases against the three KVM versions as a user runs it: ``pi-cosim replay
    FILES --kvm all --sim SIM --json`` (output discarded), build cached, per backend with
    one worker process and with the default (one per CPU); and the hardware alone."""
    import contextlib
    import io

    from cosim.cli import main as cli

    scenarios = _scenarios(count)
    out: dict = {"scenarios": count, "verdicts": count * len(KernelVersion),
                 "default_workers": os.cpu_count() or 1, "sims": {}}
    with tempfile.TemporaryDirectory(prefix="pi-cosim-bench-kut-") as tmp:
        files = []
        for name, text in list(posted_interrupts())[:count]:
            (Path(tmp) / name).write_text(text)
            files.append(str(Path(tmp) / name))
        for sim in sims:
            figures: dict = {}
            with contextlib.redirect_stdout(io.StringIO()):
                cli(["replay", files[0], "--sim", sim])  # the build, cached
                for name, extra in (("workers_1_s", ["--workers", "1"]), ("default_s", [])):
                    started = time.monotonic()
                    figures["exit_status"] = cli(["replay", *files, "--kvm", "all", "--sim",
                                                  sim, "--json", *extra])
                    figures[name] = time.monotonic() - started
            figures["default_over_1"] = figures["default_s"] / figures["workers_1_s"]
            started = time.monotonic()
            backends.simulate([Job(s) for s in scenarios], sim)
            figures["hardware_s"] = time.monotonic() - started
            out["sims"][sim] = figures
    return out


def sweep_rates(sims: list[str], shard: int, each_version: bool = True) -> dict:
    """The sweep (``pi-cosim sweep``) on shard 1/``shard`` of the default mode, per backend,
    against each KVM version alone (``each_version``) and against all three, with the default
    workers: points/s and verdicts/s."""
    from cosim.campaign import sweep
    from cosim.scenario.sweep import MODES

    out: dict = {}
    workers = 2 * (os.cpu_count() or 1)
    for sim in sims:
        figures = {}
        alone = [(v.value, [v]) for v in KernelVersion] if each_version else []
        for name, versions in [*alone, ("all", list(KernelVersion))]:
            run = sweep.run(MODES["default"], sim, versions, shard=(1, shard), workers=workers)
            doc = run.document
            figures[name] = {"points": doc["points"], "seconds": run.seconds,
                             "points_per_s": doc["points"] / run.seconds,
                             "verdicts_per_s": doc["points"] * len(versions) / run.seconds,
                             "mismatches": len(doc["mismatches"])}
        out[sim] = figures
    return out


def build_time(sim: str) -> float:
    """A fresh build of ``sim`` in a scratch cache, in seconds."""
    saved = os.environ.get("PI_COSIM_BUILD_DIR")
    with tempfile.TemporaryDirectory(prefix="pi-cosim-bench-build-") as tmp:
        os.environ["PI_COSIM_BUILD_DIR"] = tmp
        try:
            started = time.monotonic()
            backends._build(sim, waves=False)
            return time.monotonic() - started
        finally:
            if saved is None:
                del os.environ["PI_COSIM_BUILD_DIR"]
            else:
                os.environ["PI_COSIM_BUILD_DIR"] = saved


def _model_chunk(scenarios: list[Scenario]) -> int:
    for scenario in scenarios:
        for version in KernelVersion:
            run_model(scenario, version)
    return len(scenarios) * len(KernelVersion)


def model(scenarios: list[Scenario]) -> dict:
    """The KVM model alone: runs/s, vmx_check_nested_events calls/s, 1 and 2 workers."""
    calls = 0
    original = nested.vmx_check_nested_events

    def counted(vcpu):
        nonlocal calls
        calls += 1
        return original(vcpu)

    nested.vmx_check_nested_events = counted
    try:
        started = time.monotonic()
        runs = _model_chunk(scenarios)
        seconds = time.monotonic() - started
    finally:
        nested.vmx_check_nested_events = original
    scaling = {}
    for workers in (1, 2):
        chunks = [scenarios[i::workers] for i in range(workers)]
        with ProcessPoolExecutor(workers) as pool:
            started = time.monotonic()
            assert sum(pool.map(_model_chunk, chunks)) == runs
            scaling[workers] = time.monotonic() - started
    return {"runs": runs, "seconds": seconds, "runs_per_s": runs / seconds,
            "check_nested_events_calls": calls, "calls_per_s": calls / seconds,
            "workers_1_s": scaling[1], "workers_2_s": scaling[2],
            "workers_2_over_1": scaling[2] / scaling[1]}


def design() -> dict:
    """Cells and flip-flops of the design, and two latencies measured by the testbench."""
    import logging

    from amaranth.back import rtlil

    from rtl.__main__ import TOP_NAME, find_yosys
    from rtl.top import InterruptPath

    text = rtlil.convert(InterruptPath(), name=TOP_NAME, emit_src=False)
    yosys = find_yosys(lambda version: version >= (0, 40))
    # amaranth's built-in Yosys has no `stat`: count the cells of the netlist it writes
    netlist = yosys.run(["-q", "-"], f"read_rtlil <<rtlil\n{text}\nrtlil\n"
                                     "proc; flatten; opt\nwrite_rtlil\n", ignore_warnings=True)
    blocks = re.findall(r"^\s*cell (\S+) .*?^\s*end$", netlist, re.M | re.S)
    cells = len(blocks)
    ffs = 0
    for block in re.finditer(r"^\s*cell (\$\w*dff\w*) .*?^\s*end$", netlist, re.M | re.S):
        width = re.search(r"parameter \\WIDTH (\d+)", block.group(0))
        ffs += int(width.group(1)) if width else 1

    events: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            events.append(record.getMessage())

    logger = logging.getLogger("cosim.hardware.testbench")
    handler = Collect()
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        for name in ("non-nv-vector", "seed-ipiv"):
            backends.simulate([Job(load_scenario(ROOT / "scenarios" / f"{name}.toml"))],
                              "amaranth")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    text_log = "\n".join(events)
    strobes = [int(c) for c in re.findall(r"driver: cycle (\d+): InterruptEvent", text_log)]
    exit_cycle = int(re.search(r"Exit\(cycle=(\d+)", text_log).group(1))  # type: ignore
    delivery = [int(c) for c in re.findall(r"Delivery\(cycle=(\d+)", text_log)]
    return {"cells": cells, "flip_flops": ffs,
            "accept_to_vm_exit_cycles": exit_cycle - strobes[0],
            "accept_to_l2_delivery_cycles": delivery[-1] - strobes[1]}


def markdown(r: dict) -> str:
    raw = r["raw"]
    cases = raw["verilator"]["scenarios"]
    lines = [
        "# pi-cosim benchmarks", "",
        f"One run on {r['machine']['cpus']} CPU(s), Python {r['machine']['python']}; "
        f"{cases} kvm-unit-tests cases (amaranth.sim: {raw['amaranth']['scenarios']}), drain "
        "included, every figure the same encoded jobs through the same harness. Ratios hold; "
        "absolute figures are this machine's.", "",
        "| what | harness cycles/s | scenarios/s | fraction of its raw limit | 2 workers / 1 |",
        "|---|---|---|---|---|",
        f"| raw: C++ Verilator main replaying the jobs | {raw['verilator']['cycles_per_s']:,.0f} "
        f"| {raw['verilator']['scenarios_per_s']:,.0f} | 1 | - |",
    ]
    if "icarus" in raw:
        lines.append(f"| raw: Verilog testbench under vvp replaying the jobs | "
                     f"{raw['icarus']['cycles_per_s']:,.0f} | "
                     f"{raw['icarus']['scenarios_per_s']:,.0f} | 1 | - |")
    lines.append(f"| raw: amaranth.sim running the harness, no Python per batch | - | "
                 f"{raw['amaranth']['scenarios_per_s']:,.1f} | 1 | - |")
    names = {"verilator": "cocotb + Verilator", "icarus": "cocotb + Icarus",
             "amaranth": "amaranth.sim"}
    for sim, fig in r["backends"].items():
        lines.append(f"| {names[sim]} | {fig['harness_cycles_per_s']:,.0f} | "
                     f"{fig['scenarios_per_s']:,.1f} | {fig['fraction_of_raw']:.2f} | "
                     f"{fig['workers_2_over_1']:.2f} |")
    lines += ["", "| backend | fixed cost of a run (s) | each further scenario (us) | "
              "that as a fraction of the raw limit's |", "|---|---|---|---|"]
    for sim, fig in r["backends"].items():
        marginal = fig.get("marginal_fraction_of_raw")
        lines.append(f"| {names[sim]} | {fig['fixed_s']:.2f} | {fig['marginal_s'] * 1e6:,.0f} "
                     f"| {'-' if marginal is None else f'{marginal:.2f}'} |")
    ways = r["backends"].get("verilator", {}).get("ways")
    if ways:
        lines += ["", "cocotb + Verilator driven three ways, the same jobs and build (best of "
                  "three each, interleaved):", "",
                  "| clock | job and result memories | seconds | against cocotb's plain way |",
                  "|---|---|---|---|"]
        plain = ways["gpi_vpi_s"]
        for key, clock, memories in (
                ("gpi_vpi_s", "cocotb's GPI clock", "VPI, one access a record"),
                ("main_vpi_s", "the simulator's main", "VPI, one access a record"),
                ("main_backdoor_s", "the simulator's main", "the main's backdoor, one call a "
                                                            "batch (the default)")):
            lines.append(f"| {clock} | {memories} | {ways[key]:.2f} | {ways[key] / plain:.2f} |")
    kut = r.get("kut_3_versions_s")
    if kut:
        lines += ["", f"All {kut['scenarios']} cases against the three KVM versions as a user "
                  f"types it (`pi-cosim replay FILES --kvm all --sim SIM --json`, "
                  f"{kut['verdicts']} verdicts, output discarded):", "",
                  f"| SIM | 1 worker (s) | default, {kut['default_workers']} workers (s) | "
                  "ratio | the hardware alone (s) |", "|---|---|---|---|---|"]
        for sim, f in kut["sims"].items():
            lines.append(f"| {sim} | {f['workers_1_s']:.2f} | {f['default_s']:.2f} | "
                         f"{f['default_over_1']:.2f} | {f['hardware_s']:.2f} |")
    if "same_outcomes_as_cocotb" in raw["verilator"]:
        lines += ["", "The raw C++ replay's result records decode to the same outcomes as the "
                  f"cocotb run: {raw['verilator']['same_outcomes_as_cocotb']}."]
    if r.get("sweep"):
        lines += ["", "| sweep (shard of the default mode) | KVM | points | points/s | "
                  "verdicts/s |", "|---|---|---|---|---|"]
        for sim, figures in r["sweep"].items():
            for version, f in figures.items():
                lines.append(f"| {sim} | {version} | {f['points']:,} | "
                             f"{f['points_per_s']:,.0f} | {f['verdicts_per_s']:,.0f} |")
    m, d = r["model"], r["design"]
    lines += [
        "", "| KVM model | figure |", "|---|---|",
        f"| scenario runs/s (one core) | {m['runs_per_s']:,.0f} |",
        f"| vmx_check_nested_events calls/s | {m['calls_per_s']:,.0f} |",
        f"| 2 workers / 1 worker wall time | {m['workers_2_over_1']:.2f} |",
        "", "| design | figure |", "|---|---|",
        f"| cells (proc; flatten; opt) | {d['cells']:,} |",
        f"| flip-flops | {d['flip_flops']:,} |",
        f"| interrupt accepted to VM exit | {d['accept_to_vm_exit_cycles']} cycles |",
        f"| interrupt accepted to L2 delivery of the posted vector (seed) | "
        f"{d['accept_to_l2_delivery_cycles']} cycles |",
        "", "| build (fresh) | seconds |", "|---|---|",
        *(f"| {sim} | {s:.1f} |" for sim, s in r["build_s"].items()),
        f"| raw C++ Verilator main | {r['raw']['verilator']['build_s']:.1f} |", "",
    ]
    return "\n".join(lines)


def svg(r: dict) -> str:
    """Horizontal bars of cycles/s on a log scale."""
    import math

    bars = [("raw Verilator (C++)", r["raw"]["verilator"]["cycles_per_s"])]
    if "icarus" in r["raw"]:
        bars.append(("raw Icarus (vvp)", r["raw"]["icarus"]["cycles_per_s"]))
    bars += [(f"cocotb + {s}" if s != "amaranth" else "amaranth.sim", f["harness_cycles_per_s"])
             for s, f in r["backends"].items()]
    top = math.log10(max(v for _, v in bars)) + 0.5
    width, left, row = 720, 200, 34
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{row * len(bars) + 40}" font-family="sans-serif" font-size="12">',
             f'<text x="{left}" y="16">harness cycles/s, log scale (one run)</text>']
    for i, (label, value) in enumerate(bars):
        y = 28 + i * row
        length = (width - left - 110) * max(math.log10(max(value, 1)), 0) / top
        parts += [f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{label}</text>',
                  f'<rect x="{left}" y="{y + 4}" width="{length:.1f}" height="18" '
                  f'fill="#4878a8"/>',
                  f'<text x="{left + length + 6:.1f}" y="{y + 17}">{value:,.0f}</text>']
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv=None) -> int:
    from cosim.cli import tune_gc

    tune_gc()  # as pi-cosim runs
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a tiny run (the smoke test): 20 cases, no fresh builds")
    parser.add_argument("--cases", type=int, default=None,
                        help="kvm-unit-tests cases per backend (default: all 3568)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports", help="output folder")
    args = parser.parse_args(argv)
    cases = args.cases or (20 if args.quick else 3568)
    scenarios = _scenarios(cases)
    sims = [s for s in ("verilator", "icarus", "amaranth")
            if s == "amaranth" or _available(s)]
    amaranth_cases = scenarios[: max(1, cases // 10)]  # about 10x slower
    print(f"bench: {cases} cases on {', '.join(sims)}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="pi-cosim-bench-") as tmp:
        work = Path(tmp)
        raw = {"verilator": raw_verilator(scenarios, work / "v"),
               "amaranth": raw_amaranth(amaranth_cases)}
        if "icarus" in sims:
            raw["icarus"] = raw_icarus(scenarios, work / "i")
    backends_run = {sim: backend_run(sim, amaranth_cases if sim == "amaranth" else scenarios)
                    for sim in sims}
    if "verilator" in backends_run:
        backends_run["verilator"]["ways"] = verilator_ways(scenarios)
    # the raw C++ replay's records decode to exactly the cocotb runs' outcomes
    from cosim.hardware.testbench import decode

    records = raw["verilator"].pop("_records")
    if "verilator" in backends_run:
        same = decode(records, [Job(s) for s in scenarios]) == backends_run["verilator"].pop(
            "_sides")
        raw["verilator"]["same_outcomes_as_cocotb"] = same
    cycles_per_job = raw["verilator"]["cycles"] / len(scenarios)
    for sim, run in backends_run.items():
        run.pop("_sides", None)
        limit = raw.get(sim)
        run["harness_cycles"] = round(cycles_per_job * run["scenarios"])
        run["harness_cycles_per_s"] = run["harness_cycles"] / run["seconds"]
        if limit is not None:
            # the same jobs through the same harness: the fraction is the ratio of times
            per_scenario = limit["seconds"] / limit["scenarios"]
            run["fraction_of_raw"] = per_scenario / (run["seconds"] / run["scenarios"])
            run["marginal_fraction_of_raw"] = per_scenario / run["marginal_s"]
    result = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "raw": raw,
        "backends": backends_run,
        # the native server needs what the cocotb Verilator backend needs but cocotb
        "kut_3_versions_s": kut_three_versions(cases, ["verilator", "verilator-native"])
        if "verilator" in sims else None,
        # fresh builds in a scratch cache: a minute; the smoke test (--quick) leaves them out
        "build_s": {} if args.quick else {sim: build_time(sim) for sim in sims
                                           if sim != "amaranth"},
        "model": model(scenarios),
        # the native server needs what the Verilator backend needs but cocotb
        "sweep": sweep_rates(["verilator-native"] if args.quick else [
            s for s, needs in (("verilator-native", "verilator"), ("icarus", "icarus"))
            if needs in sims], 20_000 if args.quick else 400, each_version=not args.quick),
        "design": design(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "bench.md").write_text(markdown(result))
    (args.out / "bench.svg").write_text(svg(result))
    print(markdown(result))
    return 0


def _available(sim: str) -> bool:
    try:
        backends.check_simulator(sim)
    except backends.SimulatorUnavailable:
        return False
    return sim != "verilator" or shutil.which("g++") is not None


if __name__ == "__main__":
    sys.exit(main())

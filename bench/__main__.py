"""``python -m bench``: measure the cosimulation, the KVM model and the design in one run, and
write ``reports/bench.json``, ``reports/bench.md`` and ``reports/bench.svg``.

All figures come from the same run on the same machine, so their ratios hold even when the
machine is noisy; the absolute numbers do not travel. Benchmarks are not tests: the test suite
only checks that ``--quick`` runs (``tests/test_bench.py``).

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
#include "Vpi_cosim_top.h"
#include "verilated.h"
#include <chrono>
#include <cstdio>
#include <cstdlib>
int main(int argc, char** argv) {
    long cycles = argc > 1 ? atol(argv[1]) : 1000000;
    Vpi_cosim_top* top = new Vpi_cosim_top;
    top->rst = 1; top->clk = 0; top->eval(); top->clk = 1; top->eval(); top->rst = 0;
    auto start = std::chrono::steady_clock::now();
    for (long i = 0; i < cycles; ++i) { top->clk = 0; top->eval(); top->clk = 1; top->eval(); }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    printf("%ld %.6f\n", cycles, s);
    delete top;
    return 0;
}
"""


def _scenarios(count: int) -> list[Scenario]:
    """The first ``count`` cases of vmx_posted_interrupts_test, made in memory."""
    import tomllib

    from cosim.scenario.format import parse_scenario

    cases = list(posted_interrupts())[:count]
    return [parse_scenario(tomllib.loads(text), name, default_name=name.removesuffix(".toml"))
            for name, text in cases]


def raw_verilator(cycles: int, work: Path) -> dict:
    """The design under a C++ Verilator main: build it, run ``cycles`` idle cycles."""
    backends._simulator_env("verilator")
    (work / "pi_cosim_top.v").write_text(backends._verilog())
    (work / "main.cpp").write_text(RAW_MAIN)
    started = time.monotonic()
    subprocess.run(["verilator", "--cc", "--exe", "--build", "-O3", "-Wno-fatal",
                    "--top-module", "pi_cosim_top", "-j", "2",
                    str(ROOT / "rtl" / "verilator_lint.vlt"), "pi_cosim_top.v", "main.cpp",
                    "-o", "raw"], cwd=work, check=True, capture_output=True)
    build = time.monotonic() - started
    out = subprocess.run([str(work / "obj_dir" / "raw"), str(cycles)], check=True,
                         capture_output=True, text=True).stdout.split()
    return {"cycles": int(out[0]), "seconds": float(out[1]),
            "cycles_per_s": int(out[0]) / float(out[1]), "build_s": build}


def raw_icarus(cycles: int, work: Path) -> dict:
    """The design under a plain Verilog testbench (vvp), every input tied to 0."""
    from amaranth.lib import wiring

    from cosim.hardware.bench import class_signature
    from rtl.top import InterruptPath

    signature = class_signature(InterruptPath)
    inputs = ["__".join(map(str, path)) for path, member in signature.members.flatten()
              if member.is_port and member.flow is wiring.In]
    ties = ", ".join(f".{name}(0)" for name in inputs)
    (work / "pi_cosim_top.v").write_text(backends._verilog())
    (work / "tb.v").write_text(f"""
module tb;
  reg clk = 0, rst = 1;
  integer i, n;
  pi_cosim_top dut(.clk(clk), .rst(rst), {ties});
  initial begin
    if (!$value$plusargs("cycles=%d", n)) n = 1000;
    #1 clk = 1; #1 clk = 0; rst = 0;
    for (i = 0; i < n; i = i + 1) begin #1 clk = 1; #1 clk = 0; end
    $finish;
  end
endmodule
""")
    subprocess.run(["iverilog", "-g2012", "-o", "raw.vvp", "-s", "tb", "tb.v",
                    "pi_cosim_top.v"], cwd=work, check=True, capture_output=True)

    def timed(n: int) -> float:
        started = time.monotonic()
        subprocess.run(["vvp", "-n", "raw.vvp", f"+cycles={n}"], cwd=work, check=True,
                       capture_output=True)
        return time.monotonic() - started

    startup = timed(1)
    seconds = max(timed(cycles) - startup, 1e-9)
    return {"cycles": cycles, "seconds": seconds, "cycles_per_s": cycles / seconds}


def backend_run(sim: str, scenarios: list[Scenario]) -> dict:
    """The scenarios in one simulation (build cached beforehand), drain included."""
    backends.simulate([Job(scenarios[0])], sim)  # build, or check the cached build
    started = time.monotonic()
    runs = backends.simulate([Job(s) for s in scenarios], sim)
    seconds = time.monotonic() - started
    cycles = sum(run.side.cycles for run in runs)
    started = time.monotonic()
    backends.simulate([Job(s) for s in scenarios], sim, workers=2)
    two = time.monotonic() - started
    return {"scenarios": len(scenarios), "seconds": seconds, "cycles": cycles,
            "scenarios_per_s": len(scenarios) / seconds, "cycles_per_s": cycles / seconds,
            "workers_2_s": two, "workers_2_over_1": two / seconds}


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
    raw_v, raw_i = r["raw"]["verilator"]["cycles_per_s"], r["raw"]["icarus"]["cycles_per_s"]
    lines = [
        "# pi-cosim benchmarks", "",
        f"One run on {r['machine']['cpus']} CPU(s), Python {r['machine']['python']}; "
        f"{r['backends']['verilator']['scenarios']} kvm-unit-tests cases per backend, drain "
        "included. Ratios hold; absolute figures are this machine's.", "",
        "| what | cycles/s | scenarios/s | fraction of its raw limit | 2 workers / 1 |",
        "|---|---|---|---|---|",
        f"| raw: C++ Verilator main, idle inputs | {raw_v:,.0f} | - | 1 | - |",
        f"| raw: Verilog testbench under vvp, idle inputs | {raw_i:,.0f} | - | 1 | - |",
    ]
    limits = {"verilator": raw_v, "icarus": raw_i, "amaranth": raw_v}
    names = {"verilator": "cocotb + Verilator", "icarus": "cocotb + Icarus",
             "amaranth": "amaranth.sim (against Verilator's raw)"}
    for sim, fig in r["backends"].items():
        lines.append(f"| {names[sim]} | {fig['cycles_per_s']:,.0f} | "
                     f"{fig['scenarios_per_s']:,.1f} | {fig['cycles_per_s'] / limits[sim]:.4f} | "
                     f"{fig['workers_2_over_1']:.2f} |")
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

    bars = [("raw Verilator (C++)", r["raw"]["verilator"]["cycles_per_s"]),
            ("raw Icarus (vvp)", r["raw"]["icarus"]["cycles_per_s"])]
    bars += [(f"cocotb + {s}" if s != "amaranth" else "amaranth.sim", f["cycles_per_s"])
             for s, f in r["backends"].items()]
    top = math.log10(max(v for _, v in bars)) + 0.5
    width, left, row = 720, 200, 34
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{row * len(bars) + 40}" font-family="sans-serif" font-size="12">',
             f'<text x="{left}" y="16">cycles/s, log scale (one run)</text>']
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
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a tiny run (the smoke test): 20 cases, 200k raw cycles")
    parser.add_argument("--cases", type=int, default=None,
                        help="kvm-unit-tests cases per backend (default: all 3568)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports", help="output folder")
    args = parser.parse_args(argv)
    cases = args.cases or (20 if args.quick else 3568)
    raw_cycles = 200_000 if args.quick else 5_000_000
    scenarios = _scenarios(cases)
    sims = [s for s in ("verilator", "icarus", "amaranth")
            if s == "amaranth" or _available(s)]
    print(f"bench: {cases} cases on {', '.join(sims)}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="pi-cosim-bench-") as tmp:
        work = Path(tmp)
        (work / "v").mkdir()
        (work / "i").mkdir()
        raw = {"verilator": raw_verilator(raw_cycles, work / "v"),
               "icarus": raw_icarus(raw_cycles // 10, work / "i")}
    amaranth_cases = scenarios[: max(1, cases // 10)]  # about 10x slower
    result = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "raw": raw,
        "backends": {sim: backend_run(sim, amaranth_cases if sim == "amaranth" else scenarios)
                     for sim in sims},
        "build_s": {sim: build_time(sim) for sim in sims if sim != "amaranth"},
        "model": model(scenarios),
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

"""The cocotb test module of the Icarus and Verilator backends (``cosim.backends``).

One cocotb test replays every job of ``$PI_COSIM_JOBS`` (written by ``cosim.backends``) in one
simulation of the harness (``cosim.hardware.harness``) through the testbench's batch loop
(``cosim.hardware.batches``, which imports no Amaranth) and writes the result records as JSON
(the parent process decodes them). :class:`CocotbHarnessBench` is the cocotb side of the
:class:`~cosim.hardware.bench.HarnessBench` contract: inputs are driven at the falling edge
and sampled at the rising edge; the job and result memories are accessed as arrays (one GPI
access per record); while the harness runs, no Python runs per cycle (the clock is cocotb's
GPI clock, or under Verilator the simulator's main loop: ``PI_COSIM_MAIN_CLOCK``).
"""

import json
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from cosim.hardware.batches import run_encoded

__all__ = ["CocotbHarnessBench", "replay"]


class CocotbHarnessBench:
    """A :class:`~cosim.hardware.bench.HarnessBench` over a cocotb handle of the harness."""

    def __init__(self, dut, job_depth: int):
        self.dut = dut
        self.clk = dut.clk
        self.job_depth = job_depth
        self._jobs, self._results = dut.jobs, dut.results
        self._handles: dict = {}

    def _handle(self, port: str):
        handle = self._handles.get(port)
        if handle is None:
            handle = self._handles[port] = getattr(self.dut, port)
        return handle

    def get(self, port: str) -> int:
        return int(self._handle(port).value)

    def set(self, port: str, value: int) -> None:
        self._handle(port).value = value

    def write_job(self, index: int, word: int) -> None:
        self._jobs[index].value = word

    def read_result(self, index: int) -> int:
        return int(self._results[index].value)

    async def tick(self) -> None:
        await FallingEdge(self.clk)

    async def until_done(self) -> None:
        if not self.dut.done.value:
            await RisingEdge(self.dut.done)
        await FallingEdge(self.clk)


@cocotb.test()
async def replay(dut):
    """Every encoded job of the run, one batch after the other, in this simulation; the
    result records go back undecoded (the parent process decodes and logs them)."""
    spec = json.loads(Path(os.environ["PI_COSIM_JOBS"]).read_text())
    dut.rst.value = 0
    dut.start.value = 0
    if os.environ.get("PI_COSIM_MAIN_CLOCK") != "1":  # else the simulator's main drives it
        Clock(dut.clk, spec["period_ns"], unit="ns", impl="gpi").start(start_high=False)
    # into the falling-edge phase after a real rising edge (the X -> 0 at time 0 can count as
    # a falling edge)
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    records = await run_encoded(CocotbHarnessBench(dut, spec["job_depth"]),
                                [int(word, 16) for word in spec["jobs"]], spec["trace_memory"],
                                end_kind=spec["end_kind"])
    Path(spec["out"]).write_text(json.dumps([f"{r:x}" for r in records]))

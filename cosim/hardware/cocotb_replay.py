"""The cocotb test module of the Icarus and Verilator backends (``cosim.backends``).

One cocotb test replays every job of ``$PI_COSIM_JOBS`` (written by ``cosim.backends``) in one
simulation of the harness (``cosim.hardware.harness``) through the shared testbench
(``cosim.hardware.testbench``) and writes the outcomes as JSON. :class:`CocotbHarnessBench` is
the cocotb side of the :class:`~cosim.hardware.bench.HarnessBench` contract: inputs are driven
at the falling edge and sampled at the rising edge; the job and result memories are accessed
as arrays (one GPI access per record); while the harness runs, no Python runs per cycle (the
clock is cocotb's GPI clock).
"""

import json
import logging
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from cosim.hardware.testbench import Job, run_jobs

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
    """Every job of the run, one after the other, in this simulation."""
    spec = json.loads(Path(os.environ["PI_COSIM_JOBS"]).read_text())
    jobs = [Job.from_json(j) for j in spec["jobs"]]
    # the parent's log level for the testbench's loggers; their records go to a file the
    # parent re-emits (cocotb's own handler writes to the simulator log)
    logger = logging.getLogger("cosim")
    logger.setLevel(spec["log_level"])
    if spec["log_level"] <= logging.DEBUG:
        handler = logging.FileHandler(spec["log"])
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logger.addHandler(handler)
    dut.rst.value = 0
    dut.start.value = 0
    Clock(dut.clk, spec["period_ns"], unit="ns", impl="gpi").start(start_high=False)
    # into the falling-edge phase after a real rising edge (the X -> 0 at time 0 can count as
    # a falling edge)
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    results = await run_jobs(CocotbHarnessBench(dut, spec["job_depth"]), jobs)
    Path(spec["out"]).write_text(json.dumps([side.to_json() for side in results]))

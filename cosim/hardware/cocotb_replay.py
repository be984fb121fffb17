"""The cocotb test module of the Icarus and Verilator backends (``cosim.backends``).

One cocotb test replays every job of ``$PI_COSIM_JOBS`` (written by ``cosim.backends``) in one
simulation through the shared testbench (``cosim.testbench``) and writes the outcomes as JSON.
:class:`CocotbBench` is the cocotb side of the :class:`~cosim.bench.Bench` contract: inputs are
driven at the falling edge and sampled by the design at the rising edge; outputs are read at the
falling edge, when the state after the rising edge is stable.
"""

import json
import logging
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from cosim.hardware.testbench import Job, run_jobs

__all__ = ["CocotbBench", "replay"]


class CocotbBench:
    """A :class:`~cosim.bench.Bench` over a cocotb DUT handle."""

    def __init__(self, dut):
        self.dut = dut
        self.clk = dut.clk
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

    async def tick(self) -> None:
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
    Clock(dut.clk, spec["period_ns"], unit="ns").start(start_high=False)
    # into the falling-edge phase after a real rising edge (the X -> 0 at time 0 can count as
    # a falling edge)
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    results = await run_jobs(CocotbBench(dut), jobs)
    Path(spec["out"]).write_text(json.dumps([side.to_json() for side in results]))

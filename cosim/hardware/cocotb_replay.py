"""The cocotb test module of the Icarus and Verilator backends (``cosim.backends``).

One cocotb test replays every job the parent process (``cosim.hardware.backends``) sends in
one simulation of the harness (``cosim.hardware.harness``) through the testbench's batch loop
(``cosim.hardware.batches``, which imports no Amaranth) and sends the result records back
batch by batch (the parent decodes them). :class:`CocotbHarnessBench` is the cocotb side of the
:class:`~cosim.hardware.bench.HarnessBench` contract: inputs are driven at the falling edge
and sampled at the rising edge; the job and result memories are accessed as arrays (one GPI
access per record), or under Verilator through the main's backdoor functions, one call per
batch (``PI_COSIM_BACKDOOR``); while the harness runs, no Python runs per cycle (the clock is
cocotb's GPI clock, or under Verilator the simulator's main loop: ``PI_COSIM_MAIN_CLOCK``).
"""

import ctypes
import json
import os
import socket
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from cosim.hardware.batches import pack, run_encoded, unpack

__all__ = ["CocotbHarnessBench", "replay"]


class CocotbHarnessBench:
    """A :class:`~cosim.hardware.bench.HarnessBench` over a cocotb handle of the harness.

    The memories are reached through the simulator's VPI, one access per record, or, with
    ``backdoor`` (:class:`VerilatorBackdoor`), by the simulator's own C++ in one call per
    batch."""

    def __init__(self, dut, job_depth: int, backdoor: "VerilatorBackdoor | None" = None):
        self.dut = dut
        self.clk = dut.clk
        self.job_depth = job_depth
        self._jobs, self._results = dut.jobs, dut.results
        self._handles: dict = {}
        self._backdoor = backdoor

    def _handle(self, port: str):
        handle = self._handles.get(port)
        if handle is None:
            handle = self._handles[port] = getattr(self.dut, port)
        return handle

    def get(self, port: str) -> int:
        return int(self._handle(port).value)

    def set(self, port: str, value: int) -> None:
        self._handle(port).value = value

    def write_jobs(self, words: list[int]) -> None:
        if self._backdoor is not None:
            self._backdoor.write_jobs(words)
            return
        for index, word in enumerate(words):
            self._jobs[index].value = word

    def read_results(self, count: int) -> list[int]:
        if self._backdoor is not None:
            return self._backdoor.read_results(count)
        return [int(self._results[index].value) for index in range(count)]

    async def tick(self) -> None:
        await FallingEdge(self.clk)

    async def until_done(self) -> None:
        if not self.dut.done.value:
            await RisingEdge(self.dut.done)
        await FallingEdge(self.clk)


class VerilatorBackdoor:
    """The harness's job and result memories through the functions pi-cosim's Verilator main
    exports (``cosim/hardware/verilator_main.cpp``: ``pi_cosim_write_jobs``,
    ``pi_cosim_read_results``), called with ctypes from inside the simulator process: a batch
    of records is one call and one copy instead of one VPI access per record (11 us each).
    Records go as little-endian 32-bit words, the layout of Verilator's wide values."""

    def __init__(self):
        simulator = ctypes.CDLL(None)  # the simulator's executable (linked -rdynamic)
        self._write = simulator.pi_cosim_write_jobs
        self._read = simulator.pi_cosim_read_results
        words = simulator.pi_cosim_record_words
        self._job_bytes, self._result_bytes = 4 * words(0), 4 * words(1)

    def write_jobs(self, words: list[int]) -> None:
        if self._write(pack(words, self._job_bytes), len(words)) != 0:
            raise ValueError(f"{len(words)} jobs do not fit the harness's job memory")

    def read_results(self, count: int) -> list[int]:
        buffer = ctypes.create_string_buffer(self._result_bytes * count)
        if self._read(buffer, count) != 0:
            raise ValueError(f"the result memory holds fewer than {count} records")
        return unpack(buffer.raw, self._result_bytes)


@cocotb.test()
async def replay(dut):
    """Every encoded job of the run, one batch after the other, in this simulation. The jobs
    come from the parent process over the socket ``$PI_COSIM_JOBS`` names (sent while this
    process starts) and the result records go back over it undecoded, one send per batch as
    each finishes, so that the parent decodes a batch while this simulates the next
    (``cosim.hardware.backends``: the protocol's record sizes and counts)."""
    spec = json.loads(Path(os.environ["PI_COSIM_JOBS"]).read_text())
    dut.rst.value = 0
    dut.start.value = 0
    if os.environ.get("PI_COSIM_MAIN_CLOCK") != "1":  # else the simulator's main drives it
        Clock(dut.clk, spec["period_ns"], unit="ns", impl="gpi").start(start_high=False)
    job_bytes, result_bytes = spec["job_bytes"], spec["result_bytes"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(spec["socket"])
        data = conn.makefile("rb").read(spec["jobs"] * job_bytes)
        if len(data) != spec["jobs"] * job_bytes:
            raise RuntimeError(f"the parent process sent {len(data)} bytes of jobs, not "
                               f"{spec['jobs'] * job_bytes}")
        words = unpack(data, job_bytes)

        def send(records: list[int]) -> None:
            conn.sendall(len(records).to_bytes(4, "little") + pack(records, result_bytes))

        backdoor = VerilatorBackdoor() if os.environ.get("PI_COSIM_BACKDOOR") == "1" else None
        # into the falling-edge phase after a real rising edge (the X -> 0 at time 0 can count
        # as a falling edge)
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        await run_encoded(CocotbHarnessBench(dut, spec["job_depth"], backdoor), words,
                          spec["trace_memory"], end_kind=spec["end_kind"], emit=send)

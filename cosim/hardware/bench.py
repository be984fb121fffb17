"""The bench: how testbench code touches a simulated design, whatever the simulator.

Two contracts:

- :class:`HarnessBench`: a simulated ``cosim.hardware.harness.Harness``, which the cosimulation
  (``cosim.hardware.testbench``) drives a batch at a time on all three backends:
  ``amaranth.sim`` (:class:`AmaranthHarnessBench`, here) and cocotb with Icarus or Verilator
  (``CocotbHarnessBench`` in ``cosim.hardware.cocotb_replay``);
- :class:`Bench`: any component cycle by cycle (:class:`AmaranthBench`), for the unit tests of
  the RTL components with ``cosim.hardware.memory.MemoryResponder``.

Ports are named as in the exported Verilog (``python -m rtl``): a signature member's path joined
with ``__`` (``accept__vector``, ``mem__ready``); structured ports (control words, the guest
interrupt status) are plain integers of their width.

Timing contract, the same on every backend
------------------------------------------
- :meth:`Bench.tick` advances one clock cycle. Inputs set before it are sampled at the rising
  edge; when it returns, the outputs show the state after that edge (cocotb: the falling edge,
  half a period later; amaranth.sim: the testbench's settled view just after the edge).
- In each cycle, code reads outputs first and sets inputs afterwards; it never reads an output
  after setting an input in the same cycle (the backends would disagree on the combinational
  path from that input).
"""

import enum
from typing import Protocol

from amaranth.hdl import Value
from amaranth.lib import wiring

__all__ = ["AmaranthBench", "AmaranthHarnessBench", "Bench", "HarnessBench",
           "class_signature", "component_ports"]


class Bench(Protocol):
    """Access to one simulated design (see the module docstring for the timing contract)."""

    def get(self, port: str) -> int:
        """The value of a port as an unsigned integer."""

    def set(self, port: str, value: int) -> None:
        """Drive an input port from now on."""

    async def tick(self) -> None:
        """Advance one clock cycle."""


def class_signature(component_class) -> wiring.Signature:
    """The signature a ``Component`` subclass builds from its annotations, without making an
    instance (an instance never elaborated draws Amaranth's ``UnusedElaboratable``
    warning)."""
    return wiring.Signature({name: member for name, member
                             in component_class.__annotations__.items()
                             if isinstance(member, wiring.Member)})


def component_ports(component) -> dict[str, Value]:
    """The ports of an ``amaranth.lib.wiring.Component`` by their Verilog names."""
    return {"__".join(map(str, path)): Value.cast(obj)
            for path, _member, obj in component.signature.flatten(component)}


class AmaranthBench:
    """A :class:`Bench` over an ``amaranth.sim`` testbench context.

    ``ports`` maps port names to signals: :func:`component_ports` of the design, plus ``rst``
    for the clock domain's reset when the harness owns the domain.
    """

    def __init__(self, ctx, ports: dict[str, Value]):
        self.ctx = ctx
        self.ports = ports

    def get(self, port: str) -> int:
        value = self.ctx.get(self.ports[port])
        return value.value if isinstance(value, enum.Enum) else int(value)

    def set(self, port: str, value: int) -> None:
        self.ctx.set(self.ports[port], value)

    async def tick(self) -> None:
        await self.ctx.tick()


class HarnessBench(Bench, Protocol):
    """A simulated harness: a :class:`Bench` over its ports (``start``, ``n_jobs``,
    ``first_job``, ``done``, ``job``, ``n_results``, ``overflow``), plus its two memories.
    Ports set between clock edges are sampled at the next rising edge."""

    job_depth: int

    def write_jobs(self, words: list[int]) -> None:
        """Store job records at the start of the job memory (at most its depth)."""

    def read_results(self, count: int) -> list[int]:
        """The first ``count`` records of the result memory."""

    async def until_done(self) -> None:
        """Let the simulation run freely until ``done`` is high (then between clock edges)."""


class AmaranthHarnessBench:
    """A :class:`HarnessBench` over an ``amaranth.sim`` testbench context."""

    def __init__(self, ctx, harness):
        self.ctx, self.harness = ctx, harness
        self.ports = component_ports(harness)
        self.job_depth = harness.jobs.depth

    def get(self, port: str) -> int:
        return int(self.ctx.get(self.ports[port]))

    def set(self, port: str, value: int) -> None:
        self.ctx.set(self.ports[port], value)

    def write_jobs(self, words: list[int]) -> None:
        for index, word in enumerate(words):
            self.ctx.set(self.harness.jobs.data[index], word)

    def read_results(self, count: int) -> list[int]:
        return [self.ctx.get(self.harness.results.data[index]) for index in range(count)]

    async def tick(self) -> None:
        await self.ctx.tick()

    async def until_done(self) -> None:
        await self.ctx.tick().until(self.harness.done)

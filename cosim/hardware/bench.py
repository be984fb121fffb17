"""The bench: how testbench code touches a simulated design, whatever the simulator.

The driver, the memory responder and the monitor (``cosim.testbench``, ``cosim.memory``) are
written once against :class:`Bench`, and run unchanged on the three backends: ``amaranth.sim``
(:class:`AmaranthBench`, here) and cocotb with Icarus or Verilator (``CocotbBench`` in
``cosim.cocotb_replay``).

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

__all__ = ["AmaranthBench", "Bench", "component_ports"]


class Bench(Protocol):
    """Access to one simulated design (see the module docstring for the timing contract)."""

    def get(self, port: str) -> int:
        """The value of a port as an unsigned integer."""

    def set(self, port: str, value: int) -> None:
        """Drive an input port from now on."""

    async def tick(self) -> None:
        """Advance one clock cycle."""


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

"""A Python model of memory for the RTL memory port (``rtl.memory``): sparse 64-bit words,
each operation indivisible; other agents (a second CPU posting, L1 software) act between
operations through the same methods, at any cycle.

:class:`MemoryResponder` serves the port of a component simulated cycle by cycle through a
:class:`~cosim.hardware.bench.Bench`: the unit tests of the RTL components use it. The
cosimulation's memory is the harness's (``cosim.hardware.harness``), in hardware.
"""

import logging
from collections.abc import Callable

from amaranth.lib import data

from rtl.layouts import NOTIFY_INFO_OFFSET, WORD_BITS, NotifyInfo, PIDescriptor
from rtl.memory import MemOp

__all__ = ["MemoryResponder", "WordMemory"]

log = logging.getLogger(__name__)

MASK = (1 << WORD_BITS) - 1
WORD_BYTES = WORD_BITS // 8
DESCRIPTOR = data.Layout.cast(PIDescriptor)
DESCRIPTOR_WORDS = DESCRIPTOR.size // WORD_BITS
SET_ON = data.Layout.cast(NotifyInfo).const({"on": 1}).as_bits()


class WordMemory:
    """Sparse memory of aligned 64-bit words (missing words read as 0)."""

    def __init__(self):
        self.words: dict[int, int] = {}
        self.log: list[tuple[str, int, int, int]] = []  # (op, addr, old, new)

    def read(self, addr: int) -> int:
        return self.words.get(addr, 0)

    def perform(self, op: MemOp, addr: int, data: int = 0, compare: int = 0) -> int:
        """Do one operation atomically; return the old value."""
        if addr % 8:
            raise ValueError(f"unaligned memory access at {addr:#x}")
        old = self.read(addr)
        if op is MemOp.READ:
            new = old
        elif op in (MemOp.WRITE, MemOp.SWAP):
            new = data
        elif op is MemOp.OR:
            new = old | data
        elif op is MemOp.AND:
            new = old & data
        elif op is MemOp.CMPXCHG:
            new = data if old == compare else old
        else:
            raise ValueError(f"unknown memory operation {op!r}")
        self.words[addr] = new & MASK
        self.log.append((op.name, addr, old, new & MASK))
        return old

    # the descriptor, built and read through rtl.layouts.PIDescriptor (PI-1)
    def store_descriptor(self, addr: int, pir: int, on: bool, sn: bool, nv: int, ndst: int):
        bits = DESCRIPTOR.const({"pir": pir, "notify": {"on": on, "sn": sn, "nv": nv,
                                                        "ndst": ndst}}).as_bits()
        for i in range(DESCRIPTOR_WORDS):
            self.words[addr + WORD_BYTES * i] = bits >> (WORD_BITS * i) & MASK

    def post_pir(self, addr: int, vector: int) -> None:
        """Another agent's first posting step: PIR[vector] := 1 by a locked OR (SDM 29.6)."""
        self.perform(MemOp.OR, addr + WORD_BYTES * (vector // WORD_BITS), 1 << vector % WORD_BITS)

    def post_on(self, addr: int) -> None:
        """Another agent's second posting step: ON := 1 by a locked OR."""
        self.perform(MemOp.OR, addr + NOTIFY_INFO_OFFSET, SET_ON)

    def load_descriptor(self, addr: int) -> dict:
        """The descriptor's fields: ``pir``, ``on``, ``sn``, ``nv``, ``ndst``."""
        bits = sum(self.read(addr + WORD_BYTES * i) << (WORD_BITS * i)
                   for i in range(DESCRIPTOR_WORDS))
        desc = DESCRIPTOR.from_bits(bits)
        notify = desc.notify
        return {"pir": desc.pir, "on": bool(notify.on), "sn": bool(notify.sn), "nv": notify.nv,
                "ndst": notify.ndst}


class MemoryResponder:
    """Serves a ``rtl.memory.MemorySignature`` port from a :class:`WordMemory`.

    Call :meth:`serve` once per cycle, before the bench's ``tick``. A request (``valid``) waits
    ``latency()`` cycles, drawn when it is first seen (0: performed at the coming edge); then the
    operation is performed indivisibly, ``ready`` is driven for the coming edge and ``rdata``
    holds the old value. ``interleave(cycle, memory)`` runs first in every cycle: other agents'
    operations land between the port's operations, at any cycle (PI-9, C14).

    Parameters
    ----------
    memory : WordMemory
    prefix : str
        The port's name prefix on the bench (``"mem"`` gives ``mem__valid`` ...).
    latency : callable returning int, optional
        Wait cycles for each request (default: none).
    interleave : callable ``(cycle, memory)``, optional
    """

    def __init__(self, memory: WordMemory, prefix: str = "mem",
                 latency: Callable[[], int] = lambda: 0,
                 interleave: Callable[[int, WordMemory], None] | None = None):
        self.memory = memory
        self.latency = latency
        self.interleave = interleave
        self.cycle = 0
        self.served: list[tuple[int, MemOp, int]] = []  # (cycle, op, addr) of the port's ops
        self._wait: int | None = None
        # the port names, built once (serve runs every cycle)
        (self._valid, self._ready, self._op, self._addr, self._data, self._compare,
         self._rdata) = (f"{prefix}__{n}" for n in ("valid", "ready", "op", "addr", "data",
                                                     "compare", "rdata"))

    def serve(self, bench) -> bool:
        """Serve the port for the coming edge; returns whether a request is outstanding."""
        if self.interleave is not None:
            self.interleave(self.cycle, self.memory)
        self.cycle += 1
        if not bench.get(self._valid):
            bench.set(self._ready, 0)
            return False
        if self._wait is None:
            self._wait = self.latency()
        if self._wait > 0:
            self._wait -= 1
            bench.set(self._ready, 0)
            return True
        self._wait = None
        op, addr = MemOp(bench.get(self._op)), bench.get(self._addr)
        old = self.memory.perform(op, addr, bench.get(self._data), bench.get(self._compare))
        self.served.append((self.cycle - 1, op, addr))
        log.debug("memory: cycle %d: %s %#x -> old %#x", self.cycle - 1, op.name, addr, old)
        bench.set(self._ready, 1)
        bench.set(self._rdata, old)
        return True

"""The memory port: 64-bit reads, writes and atomic read-modify-writes that the memory
performs indivisibly (``docs/architecture.md``).

Never enable postponed evaluation of annotations (PEP 563) here: it breaks ``Signature`` members.
"""

from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["MemOp", "MemorySignature"]


class MemOp(enum.Enum, shape=3):
    """Memory operations on one aligned 64-bit word. Every one returns the old value."""

    READ = 0  # old
    WRITE = 1  # mem := data
    SWAP = 2  # mem := data (read-and-clear with data = 0: "xchg")
    OR = 3  # mem := old | data ("lock or")
    AND = 4  # mem := old & data ("lock and")
    CMPXCHG = 5  # mem := data if old == compare ("lock cmpxchg")


class MemorySignature(wiring.Signature):
    """A request/response port, seen from the initiator (the CPU side).

    Members
    -------
    valid : ``Out(1)``
        A request is presented; ``op``, ``addr``, ``data`` and ``compare`` are held stable
        until ``ready``.
    op : ``Out(MemOp)``; addr : ``Out(64)`` (8-byte aligned); data, compare : ``Out(64)``
    ready : ``In(1)``
        The memory performed the operation indivisibly at this edge; ``rdata`` holds the old
        value in this cycle. The memory may take any number of cycles.
    rdata : ``In(64)``
    """

    def __init__(self):
        super().__init__({
            "valid": Out(1), "op": Out(MemOp), "addr": Out(64), "data": Out(64),
            "compare": Out(64), "ready": In(1), "rdata": In(64),
        })

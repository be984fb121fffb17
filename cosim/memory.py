"""A Python model of memory for the RTL memory port (``rtl.memory``): sparse 64-bit words,
each operation indivisible; other agents (a second CPU posting, L1 software) act between
operations through the same methods."""

from rtl.memory import MemOp

__all__ = ["WordMemory"]

MASK = (1 << 64) - 1


class WordMemory:
    """Sparse memory of aligned 64-bit words (missing words read as 0)."""

    def __init__(self):
        self.words: dict[int, int] = {}
        self.log: list[tuple[str, int, int, int]] = []  # (op, addr, old, new)

    def respond(self, ctx, port) -> bool:
        """Serve ``port`` (an ``rtl.memory.MemorySignature`` initiator seen from an amaranth.sim
        testbench) with zero wait for the coming edge; returns whether a request was served."""
        ctx.set(port.ready, 0)
        if not ctx.get(port.valid):
            return False
        old = self.perform(MemOp(ctx.get(port.op)), ctx.get(port.addr), ctx.get(port.data),
                           ctx.get(port.compare))
        ctx.set(port.ready, 1)
        ctx.set(port.rdata, old)
        return True

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

    # descriptor helpers (PI-1 layout: PIR in words 0-3, NotifyInfo in word 4)
    def store_descriptor(self, addr: int, pir: int, on: bool, sn: bool, nv: int, ndst: int):
        for i in range(4):
            self.words[addr + 8 * i] = (pir >> (64 * i)) & MASK
        self.words[addr + 32] = int(on) | int(sn) << 1 | nv << 16 | ndst << 32

    def load_descriptor(self, addr: int) -> dict:
        pir = sum(self.read(addr + 8 * i) << (64 * i) for i in range(4))
        notify = self.read(addr + 32)
        return {"pir": pir, "on": bool(notify & 1), "sn": bool(notify >> 1 & 1),
                "nv": notify >> 16 & 0xFF, "ndst": notify >> 32}

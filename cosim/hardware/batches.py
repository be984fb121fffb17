"""The harness's batch loop, with nothing but the standard library: the cocotb test module
(``cosim.hardware.cocotb_replay``) imports only this, so that a cocotb simulation does not
spend its start importing Amaranth and the scenario format it never uses (0.4 s of a
simulator process's 0.8 s start, measured with ``PYTHONPROFILEIMPORTTIME``).

:func:`run_encoded` writes a batch of encoded jobs into the harness's job memory, pulses
``start``, lets the simulator run until ``done`` and reads the result records; the native
Verilator server (``cosim.hardware.native``) runs the same loop in C++.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from cosim.hardware.bench import HarnessBench

__all__ = ["pack", "run_encoded", "unpack"]


def pack(records: list[int], size: int) -> bytes:
    """Records as ``size`` little-endian bytes each, one after the other: the format of the
    cocotb backends' socket (``cosim.hardware.backends``) and of the Verilator backdoor."""
    return b"".join(record.to_bytes(size, "little") for record in records)


def unpack(data: bytes, size: int) -> list[int]:
    """The records of :func:`pack`'s bytes (a trailing partial record is left out)."""
    return [int.from_bytes(data[at:at + size], "little")
            for at in range(0, len(data) - size + 1, size)]


async def run_encoded(bench: "HarnessBench", words: list[int], memory: bool = False, *,
                      end_kind: int,
                      emit: "Callable[[list[int]], None] | None" = None) -> list[int]:
    """Encoded jobs through the harness, in batches of its job memory's depth; the result
    records of all of them, in order (a batch whose results fill the result memory is
    resumed where the harness stopped). ``memory``: record the memory operations too;
    ``end_kind``: the kind field (bits 1:0) of a job's last record, ``ResultKind.END``;
    ``emit``: called with the records of each run of the harness as it ends (in order, all
    of them once), instead of their being returned."""
    records: list[int] = []
    bench.set("trace_memory", int(memory))
    for at in range(0, len(words), bench.job_depth):
        batch = words[at:at + bench.job_depth]
        bench.write_jobs(batch)
        first = 0
        while first < len(batch):
            bench.set("n_jobs", len(batch))
            bench.set("first_job", first)
            bench.set("start", 1)
            await bench.tick()
            bench.set("start", 0)
            await bench.until_done()
            written = bench.read_results(bench.get("n_results"))
            if bench.get("overflow"):
                # the last job started did not fit in what was left: keep the jobs that
                # ended, run that one again from an empty result memory
                ends = [i for i, r in enumerate(written) if r & 3 == end_kind]
                if not ends:
                    raise RuntimeError(f"job {at + first}: its results alone do not fit the "
                                       "harness's result memory")
                kept = written[:ends[-1] + 1]
                first += len(ends)
            else:
                kept = written
                first = bench.get("job")
            if emit is None:
                records += kept
            else:
                emit(kept)
    return records

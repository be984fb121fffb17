"""Waveform dumps and GTKWave save files (``DESIGN.md`` section 6).

Each dump is named after the scenario, the backend and the memory seed
(``seed-ipiv-icarus-seed0.fst``) and never overwrites another run's dump (``-2``, ``-3`` ...).
Icarus writes FST; Verilator (its FST writer needs liblz4's headers) and ``amaranth.sim`` write
VCD, converted to FST as well when GTKWave's ``vcd2fst`` is installed (the VCD stays:
``vcdvcd`` reads it).

:func:`write_gtkw` writes a save file next to the dump that opens it with the signals grouped
(L1 APIC, PI unit, virtual APIC, VM exit, memory port) and enums shown by name, through the
translate filter files in ``waveforms/filters`` (generated from the RTL enums by
:func:`filter_files`; a test keeps the committed files in step with ``rtl``).
"""

import shutil
import subprocess
from pathlib import Path

from vcd.gtkw import GTKWSave

__all__ = ["FILTER_DIR", "GROUPS", "dump_path", "filter_files", "scope", "trace_names",
           "write_gtkw"]

FILTER_DIR = Path(__file__).resolve().parent.parent / "waveforms" / "filters"

#: the design's scope in each backend's dump (amaranth.sim: the harness module "top" holding
#: the design "top", under the writer's "bench")
_SCOPES = {"icarus": "pi_cosim_top", "verilator": "pi_cosim_top", "amaranth": "bench.top.top"}

#: (group, [(signal relative to the top scope, width, enum filter or None)])
GROUPS: tuple[tuple[str, tuple[tuple[str, int, str | None], ...]], ...] = (
    ("L1 APIC", (
        ("accept__valid", 1, None), ("accept__vector", 8, None), ("irr", 256, None),
        ("isr", 256, None), ("tmr", 256, None), ("tpr", 8, None), ("ppr", 8, None),
        ("lapic.intr", 1, None), ("lapic.inta__valid", 1, None),
        ("lapic.inta__vector", 8, None), ("eoi", 1, None), ("eoi_message", 1, None),
        ("eoi_message_vector", 8, None))),
    ("PI unit", (
        ("state", 3, "PathState"), ("pi.state", 3, "PiState"), ("pi.eoi", 1, None),
        ("pi.merge", 1, None), ("pi.merge_bits", 256, None), ("pi.merge_rvi", 1, None),
        ("pi.merge_rvi_vector", 8, None), ("pi.evaluate", 1, None), ("pi.done", 1, None),
        ("posted_intr_nv", 16, None), ("posted_intr_desc_addr", 64, None))),
    ("virtual APIC", (
        ("virr", 256, None), ("visr", 256, None), ("status", 16, None), ("vppr", 8, None),
        ("vtpr", 8, None), ("vapic.recognized", 1, None), ("delivered", 1, None),
        ("delivered_vector", 8, None))),
    ("VM exit", (
        ("vmexit", 1, None), ("exit_reason", 16, "ExitReason"), ("exit_intr_info", 32, None),
        ("entry_failed", 1, None), ("entry_error", 8, None))),
    ("memory port", (
        ("mem__valid", 1, None), ("mem__ready", 1, None), ("mem__op", 3, "MemOp"),
        ("mem__addr", 64, None), ("mem__data", 64, None), ("mem__compare", 64, None),
        ("mem__rdata", 64, None))),
)


def dump_path(directory: Path, scenario: str, sim: str, seed: int) -> Path:
    """A dump path that no earlier run used: ``SCENARIO-SIM-seedS.EXT``, then ``-2`` ..."""
    ext = ".fst" if sim == "icarus" else ".vcd"
    stem = f"{scenario}-{sim}-seed{seed}"
    n = 1
    while True:
        name = stem if n == 1 else f"{stem}-{n}"
        taken = [directory / f"{name}{e}" for e in (".fst", ".vcd", ".gtkw")]
        if not any(p.exists() for p in taken):
            return directory / f"{name}{ext}"
        n += 1


def scope(sim: str) -> str:
    return _SCOPES[sim]


def trace_names(sim: str) -> list[str]:
    """The full names of the traces in the save file, as GTKWave knows them for this dump
    (vectors carry their bit range)."""
    top = _SCOPES[sim]
    names = [f"{top}.clk", f"{top}.rst"]
    for _, signals in GROUPS:
        names += [_name(sim, s, w, e is not None) for s, w, e in signals]
    return names


def _name(sim: str, signal: str, width: int, enum: bool) -> str:
    """GTKWave's name for a signal: vectors carry their bit range, except amaranth.sim's
    enums, which its VCD writer dumps as strings."""
    ranged = width > 1 and not (enum and sim == "amaranth")
    return f"{_SCOPES[sim]}.{signal}" + (f"[{width - 1}:0]" if ranged else "")


def finish_dump(dump: Path) -> Path:
    """The file to open: a VCD is converted to FST when ``vcd2fst`` exists."""
    if dump.suffix == ".vcd" and shutil.which("vcd2fst"):
        fst = dump.with_suffix(".fst")
        subprocess.run(["vcd2fst", str(dump), str(fst)], check=True, capture_output=True)
        return fst
    return dump


def write_gtkw(dump: Path, sim: str) -> Path:
    """Write ``DUMP.gtkw`` for the dump GTKWave opens (``dump``, already finished by
    :func:`finish_dump`): the groups of :data:`GROUPS`, enums by name (amaranth.sim's VCD
    holds enums as their names already; Verilog dumps get the translate filters)."""
    opened = dump
    save = dump.with_suffix(".gtkw")
    top = _SCOPES[sim]
    filters = filter_files()
    with save.open("w") as f:
        gtkw = GTKWSave(f)
        gtkw.comment(f"pi-cosim: {dump.name} ({sim}); open with: gtkwave {save.name}")
        gtkw.dumpfile(str(opened.resolve()))
        gtkw.savefile(str(save.resolve()))
        gtkw.zoom_markers(-8.0)
        gtkw.treeopen(top)
        gtkw.trace(f"{top}.clk", datafmt="bin")
        gtkw.trace(f"{top}.rst", datafmt="bin")
        for group, signals in GROUPS:
            with gtkw.group(group):
                for signal, width, enum_name in signals:
                    name = _name(sim, signal, width, enum_name is not None)
                    if enum_name is not None and sim == "amaranth":
                        gtkw.trace(name, alias=_alias(signal), datafmt="ascii")
                    elif enum_name is not None:
                        gtkw.trace(name, alias=_alias(signal), datafmt="dec",
                                   translate_filter_file=str(filters[enum_name]))
                    else:
                        gtkw.trace(name, alias=_alias(signal),
                                   datafmt="bin" if width == 1 else "hex")
    return save


def _alias(signal: str) -> str:
    """The name shown in GTKWave (it would cut a dotted alias at the last dot)."""
    return signal.replace(".", "_")


def _enums() -> dict:
    from rtl.layouts import ExitReason
    from rtl.memory import MemOp
    from rtl.posted_interrupt import PiState
    from rtl.top import Decision, PathState

    return {"PathState": PathState, "PiState": PiState, "Decision": Decision,
            "ExitReason": ExitReason, "MemOp": MemOp}


def filter_text(enum_type) -> str:
    """A GTKWave translate filter: one ``VALUE NAME`` line per member, values in decimal."""
    lines = [f"# {enum_type.__module__}.{enum_type.__qualname__} (decimal values)"]
    lines += [f"{member.value} {member.name}" for member in enum_type]
    return "\n".join(lines) + "\n"


def filter_files() -> dict[str, Path]:
    """The committed translate filter files, by enum name (written if missing)."""
    paths = {}
    for name, enum_type in _enums().items():
        path = FILTER_DIR / f"{name}.txt"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(filter_text(enum_type))
        paths[name] = path
    return paths

"""Waveform dumps and GTKWave save files (``docs/cli.md``).

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

import functools
import shutil
import subprocess
from pathlib import Path

from vcd.gtkw import GTKWSave

__all__ = [
    "FILTER_DIR",
    "GROUPS",
    "dump_path",
    "enums",
    "filter_files",
    "filter_text",
    "finish_dump",
    "port_shapes",
    "write_gtkw",
]

FILTER_DIR = Path(__file__).resolve().parents[2] / "waveforms" / "filters"

#: the harness's scope in each backend's dump (amaranth.sim: the toplevel "top" under the
#: writer's "bench"); the design is its submodule "dut"
_SCOPES = {"icarus": "pi_cosim_harness", "verilator": "pi_cosim_harness",
           "amaranth": "bench.top"}
#: signals named ``harness.X`` are the harness's own (which job, event and phase run)
HARNESS = "harness."

@functools.cache
def port_shapes() -> dict[str, tuple[int, type | None]]:
    """``signal -> (width, enum or None)`` for the ports of the harness (``harness.job``),
    of the design and of its submodules, named as in :data:`GROUPS`."""
    from amaranth.hdl import Shape
    from amaranth.lib.enum import EnumType

    from cosim.hardware.bench import class_signature
    from cosim.hardware.harness import Harness
    from rtl.lapic import LocalApic
    from rtl.posted_interrupt import PostedInterruptUnit
    from rtl.top import InterruptPath
    from rtl.virtual_interrupt import VirtualInterrupt

    shapes = {}
    for prefix, component in ((HARNESS, Harness), ("", InterruptPath), ("lapic.", LocalApic),
                              ("pi.", PostedInterruptUnit), ("vapic.", VirtualInterrupt)):
        for path, member in class_signature(component).members.flatten():
            if member.is_port:
                shape = member.shape
                shapes[prefix + "__".join(map(str, path))] = (
                    Shape.cast(shape).width, shape if isinstance(shape, EnumType) else None)
    return shapes


#: The waveform groups, by member: a port, or a signature member of the design (``mem``) or of
#: its submodules ``lapic``, ``pi`` and ``vapic`` (``rtl.top.InterruptPath``), which stands for
#: all its ports in signature order.
MEMBERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("harness", ("harness.job", "harness.event_index", "harness.phase")),
    ("L1 APIC", ("accept", "irr", "isr", "tmr", "tpr", "ppr", "lapic.intr", "lapic.inta",
                 "eoi", "eoi_message")),
    ("PI unit", ("state", "pi.state", "pi.eoi", "pi.merge", "pi.done", "posted_intr_nv",
                 "posted_intr_desc_addr")),
    ("virtual APIC", ("virr", "visr", "status", "vppr", "vtpr", "vapic.recognized",
                      "delivered")),
    ("VM exit", ("vmexit", "exit_reason", "exit_intr_info", "entry_failed", "entry_error")),
    ("memory port", ("mem",)),
)


def _ports(member: str) -> tuple[str, ...]:
    """The ports a member stands for, with widths and enums from :func:`port_shapes`."""
    shapes = port_shapes()
    if member in shapes:
        return (member,)
    ports = tuple(name for name in shapes if name.startswith(member + "__"))
    assert ports, f"no port or signature member named {member!r}"
    return ports


#: (group, signals): :data:`MEMBERS` with every signature member expanded into its ports.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (group, tuple(p for member in members for p in _ports(member)))
    for group, members in MEMBERS)


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


def _name(sim: str, signal: str, width: int, enum: bool) -> str:
    """GTKWave's name for a signal: vectors carry their bit range, except amaranth.sim's
    enums, which its VCD writer dumps as strings."""
    ranged = width > 1 and not (enum and sim == "amaranth")
    path = signal.removeprefix(HARNESS) if signal.startswith(HARNESS) else f"dut.{signal}"
    return f"{_SCOPES[sim]}.{path}" + (f"[{width - 1}:0]" if ranged else "")


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
    save = dump.with_suffix(".gtkw")
    top = _SCOPES[sim]
    shapes = port_shapes()
    filters = filter_files()
    with save.open("w") as f:
        gtkw = GTKWSave(f)
        gtkw.comment(f"pi-cosim: {dump.name} ({sim}); open with: gtkwave {save.name}")
        gtkw.dumpfile(str(dump.resolve()))
        gtkw.savefile(str(save.resolve()))
        gtkw.zoom_markers(-8.0)
        gtkw.treeopen(top)
        gtkw.trace(f"{top}.clk", datafmt="bin")
        gtkw.trace(f"{top}.rst", datafmt="bin")
        for group, signals in GROUPS:
            with gtkw.group(group):
                for signal in signals:
                    width, enum_type = shapes[signal]
                    name = _name(sim, signal, width, enum_type is not None)
                    if enum_type is not None and sim == "amaranth":
                        gtkw.trace(name, alias=_alias(signal), datafmt="ascii")
                    elif enum_type is not None:
                        gtkw.trace(name, alias=_alias(signal), datafmt="dec",
                                   translate_filter_file=str(filters[enum_type.__name__]))
                    else:
                        gtkw.trace(name, alias=_alias(signal),
                                   datafmt="bin" if width == 1 else "hex")
    return save


def _alias(signal: str) -> str:
    """The name shown in GTKWave (it would cut a dotted alias at the last dot)."""
    return signal.replace(".", "_")


def filter_text(enum_type) -> str:
    """A GTKWave translate filter: one ``VALUE NAME`` line per member, values in decimal."""
    lines = [f"# {enum_type.__module__}.{enum_type.__qualname__} (decimal values)"]
    lines += [f"{member.value} {member.name}" for member in enum_type]
    return "\n".join(lines) + "\n"


def enums() -> dict[str, type]:
    """The enums of the signals in :data:`GROUPS`, by name."""
    shapes = port_shapes()
    return {e.__name__: e for _, signals in GROUPS for s in signals
            if (e := shapes[s][1]) is not None}


def filter_files() -> dict[str, Path]:
    """The committed translate filter files, by enum name (written if missing)."""
    paths = {}
    for name, enum_type in enums().items():
        path = FILTER_DIR / f"{name}.txt"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(filter_text(enum_type))
        paths[name] = path
    return paths

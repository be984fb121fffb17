"""The constrained-random regression (``pi-cosim regress``, ``docs/regress.md``).

How a run goes: cases ``0, 1, 2, ...`` of the seed (``cosim.campaign.stimulus``) are cut into
chunks of :data:`CHUNK`; each chunk runs in a worker process: its cases go through the harness
in one batch on the chosen backend, each then through the KVM model at the version under test
(beside the hardware: the hardware decides modes and where races land) and the scoreboard. The
parent takes the chunks back in case order, samples functional coverage
(``cosim.campaign.coverage``) and stops after the first chunk at which every bin is covered
(*closure*), or at the budget. Chunks are a fixed size whatever the number of workers, so the
same seed, budget, shard and backend give the same cases, the same stop and byte-identical
documents.

A case's class is the sweep's (``agree``, ``deviation D..``, ``known bug KB..``, ``unexplained
divergence``), or ``impossible event`` when the hardware ran another guest than the stimulus
predicted and stopped at an event that cannot happen there. A class other than ``agree`` and
deviations is a *divergence class*: its first case is reported with the command that
reproduces it, shrunk (``cosim.campaign.shrink``) to a minimal scenario of the same class,
written under ``reports/regress/`` with its waveform and ``.gtkw``.

``--shard K/N`` runs cases ``[(K-1)*B//N, K*B//N)`` of budget ``B`` without stopping at closure
(a shard cannot know the others' coverage); :func:`merge` adds shards' (or any runs' of the
same design, model and version) classes, divergent cases and coverage hits into the document
one run over all of them would have written.
"""

import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cosim.campaign.coverage import EXCLUDED, CoverageModel, Observation, merge_hits, observe
from cosim.campaign.shrink import shrink
from cosim.campaign.stimulus import Case, generate
from cosim.campaign.sweep import (
    AGREE,
    MergeError,
    chunks,
    differences,
    fingerprint,
    hardware_sides,
    judged,
    label,
    shard_range,
)
from cosim.campaign.sweep import write as sweep_write
from cosim.hardware.testbench import Job
from cosim.judge.scoreboard import Verdict
from cosim.reference.kvm import run_beside
from cosim.scenario.drain import SideRun
from cosim.scenario.format import Scenario, to_toml
from cosim.scenario.outcome import FIELDS
from software_model import KernelVersion

__all__ = ["CHUNK", "DEFAULT_BUDGET", "FORMAT", "IMPOSSIBLE", "Minimized", "RegressRun",
           "classify", "is_divergence", "merge", "minimize", "run", "summary", "write"]

FORMAT = "pi-cosim-regress/1"
#: Cases per chunk (the unit of work, of progress and of the closure check).
CHUNK = 250
#: The default budget: enough to close coverage against post-patch (``docs/regress.md``).
DEFAULT_BUDGET = 20_000
IMPOSSIBLE = "impossible event"


def is_divergence(name: str) -> bool:
    """A class that a regression reports: a known bug, an unexplained divergence, or an
    impossible event (the stimulus's mode prediction and the hardware disagree)."""
    return name != AGREE and not name.startswith("deviation ")


def classify(scenario: Scenario, memory_seed: int, version: KernelVersion, sim: str,
             hardware: SideRun) -> tuple[str, Verdict | None]:
    """The case's class against ``version`` (and the verdict, unless both sides ran alike):
    the sweep's, an unexplained divergence named with where it shows first."""
    if hardware.impossible is not None:
        return IMPOSSIBLE, None
    software = run_beside(scenario, version, hardware).side
    verdict = judged(scenario, version, sim, memory_seed, hardware, software)
    if verdict is None:
        return AGREE, None
    name = label(verdict)
    if verdict.divergent:
        name += f" in {_first_unexplained(verdict)}"
    return name, verdict


def _first_unexplained(verdict: Verdict) -> str:
    """Where an unexplained divergence shows first: the first field (in outcome order) that
    nothing explains at the first event that has one, or at rest. The regression reports one
    class per such field, so that different roots are not one class."""
    order = {name: i for i, name in enumerate(FIELDS)}
    for part, where in [(e, "") for e in verdict.events] + [(verdict.drain, " at rest")]:
        if part is not None and part.divergent:
            return min(part.divergent, key=lambda f: (order.get(f, len(order)), f)) + where
    raise AssertionError("no unexplained field")


@dataclass(frozen=True)
class _Task:
    seed: int
    lo: int
    hi: int
    sim: str
    version: KernelVersion


@dataclass(frozen=True)
class _Result:
    """One case's result, as a worker sends it back."""

    index: int
    klass: str
    events: int
    cycles: int
    differences: dict
    samples: dict


def _run_chunk(task: _Task) -> list[_Result]:
    cases = [generate(task.seed, i) for i in range(task.lo, task.hi)]
    sides = hardware_sides([Job(c.scenario, seed=c.memory_seed) for c in cases], task.sim)
    out = []
    for case, hardware in zip(cases, sides, strict=True):
        klass, verdict = classify(case.scenario, case.memory_seed, task.version, task.sim,
                                  hardware)
        findings = () if verdict is None else verdict.known_bugs + verdict.deviations
        obs = observe(case.scenario, hardware, findings)
        out.append(_Result(case.index, klass, len(case.scenario.events), hardware.cycles,
                           {} if verdict is None or not is_divergence(klass)
                           else differences(verdict), obs.samples))
    return out


@dataclass
class RegressRun:
    """A finished run (or a merge): the result document and, for a run, its wall time."""

    document: dict[str, Any]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No divergence class (deviations allowed)."""
        return not any(is_divergence(c) for c in self.document["classes"])


def run(seed: int, version: KernelVersion, sim: str, *, budget: int = DEFAULT_BUDGET,
        shard: tuple[int, int] = (1, 1), workers: int = 1, keep_going: bool = False,
        progress: Callable[[int, int, float, CoverageModel], None] | None = None) -> RegressRun:
    """Run the regression of ``seed`` against ``version`` on backend ``sim``: until coverage
    closes or ``budget`` cases ran (a shard, or ``keep_going``, runs its whole slice)."""
    made_of = {"design": fingerprint("design"), "model": fingerprint("model")}
    lo, hi = shard_range(budget, shard)
    stop_at_closure = shard == (1, 1) and not keep_going
    from cosim.hardware.backends import prepare

    prepare(sim)
    model = CoverageModel(version)
    tasks = [_Task(seed, a, b, sim, version) for a, b in chunks(lo, hi, CHUNK)]
    started = time.monotonic()
    tally = _Tally(first=lo, end=lo)
    if workers > 1 and len(tasks) > 1:
        pool = ProcessPoolExecutor(min(workers, len(tasks)))
        results: Iterable[list[_Result]] = pool.map(_run_chunk, tasks)
    else:
        pool = None
        results = map(_run_chunk, tasks)
    stopped = "budget"
    try:
        for chunk in results:
            tally.add(chunk, model)
            if progress:
                progress(tally.end - lo, hi - lo, time.monotonic() - started, model)
            if stop_at_closure and model.closed():
                stopped = "closure"
                break
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    seconds = time.monotonic() - started
    return RegressRun(_document(seed, version, sim, budget, shard, made_of, stop_at_closure,
                                stopped, tally, model), seconds)


@dataclass
class _Tally:
    first: int
    end: int
    events: int = 0
    cycles: int = 0
    classes: Counter = field(default_factory=Counter)
    divergent: list[dict] = field(default_factory=list)
    first_of: dict[str, int] = field(default_factory=dict)

    def add(self, chunk: list[_Result], model: CoverageModel) -> None:
        for r in chunk:
            model.sample(Observation(r.samples))
            self.classes[r.klass] += 1
            self.events += r.events
            self.cycles += r.cycles
            if is_divergence(r.klass):
                self.divergent.append({"case": r.index, "class": r.klass,
                                       "differences": r.differences})
                self.first_of.setdefault(r.klass, r.index)
            self.end = r.index + 1


def _document(seed: int, version: KernelVersion, sim: str, budget: int,
              shard: tuple[int, int], made_of: dict[str, str], stop_at_closure: bool,
              stopped: str, tally: _Tally, model: CoverageModel) -> dict[str, Any]:
    return _assemble(
        {"kvm": version.value, "commit": version.commit, "sim": sim, **made_of}, budget,
        shard, [{"seed": seed, "first": tally.first, "end": tally.end}],
        "closure or budget" if stop_at_closure else "budget", stopped, tally.events,
        tally.cycles, tally.classes,
        {c: {"seed": seed, "case": i} for c, i in tally.first_of.items()}, model,
        [{"seed": seed, **d} for d in tally.divergent])


def _assemble(header: dict[str, str], budget: int, shard: tuple[int, int], runs: list[dict],
              stop: str, stopped: str, events: int, cycles: int, classes: Counter,
              first_of: dict[str, dict], model: CoverageModel,
              divergent: list[dict]) -> dict[str, Any]:
    """The document of a run or of a merge (the same fields in the same order)."""
    return {
        "format": FORMAT,
        "seeds": sorted({r["seed"] for r in runs}),
        **{k: header[k] for k in ("kvm", "commit", "sim", "design", "model")},
        "budget": budget,
        "shard": {"index": shard[0], "count": shard[1]},
        "runs": runs,
        "stop": stop,
        "stopped": stopped,
        "cases": sum(r["end"] - r["first"] for r in runs),
        "events": events,
        "hardware_cycles": cycles,
        "classes": {c: classes[c] for c in sorted(classes, key=lambda c: (c != AGREE, c))},
        "first_of": dict(sorted(first_of.items())),
        "coverage": {"bins": model.size(), "covered": model.covered(),
                     "closed": model.closed(), "holes": model.holes(), "excluded": EXCLUDED,
                     "hits": model.hits()},
        "divergent": divergent,
    }


# --- merging --------------------------------------------------------------------------------


_SAME = ("format", "kvm", "sim", "design", "model")


def merge(documents: list[tuple[str, dict]]) -> RegressRun:
    """One document from several runs' or shards' ``(name, document)``: classes and coverage
    hits added, divergent cases in (seed, case) order. Refused for another design, model,
    KVM version or backend, and for two documents that ran the same cases of a seed."""
    if not documents:
        raise MergeError("no regression results given")
    first_name, first = documents[0]
    covered: dict[int, list[tuple[int, int, str]]] = {}
    for name, doc in documents:
        if doc.get("format") != FORMAT:
            raise MergeError(f"{name}: not a pi-cosim regression result ({FORMAT})")
        for key in _SAME:
            if doc[key] != first[key]:
                what = {"design": "another version of the design",
                        "model": "another version of the KVM model or the judge",
                        "kvm": "another KVM version"}.get(key, f"another {key}")
                raise MergeError(f"{name}: {what} than {first_name} ({key} {doc[key]!r} vs "
                                 f"{first[key]!r}); rerun with the same checkout and options")
        for r in doc["runs"]:
            for a, b, other in covered.get(r["seed"], []):
                if r["first"] < b and a < r["end"]:
                    raise MergeError(f"{name}: cases {r['first']}-{r['end'] - 1} of seed "
                                     f"{r['seed']} overlap {other}'s {a}-{b - 1}")
            covered.setdefault(r["seed"], []).append((r["first"], r["end"], name))
    version = KernelVersion(first["kvm"])
    model = CoverageModel(version)
    model.load(merge_hits(doc["coverage"]["hits"] for _, doc in documents))
    classes: Counter = Counter()
    for _, doc in documents:
        classes.update(doc["classes"])
    first_of: dict[str, dict] = {}
    for _, doc in documents:
        for c, where in doc["first_of"].items():
            if c not in first_of or (where["seed"], where["case"]) < (first_of[c]["seed"],
                                                                     first_of[c]["case"]):
                first_of[c] = where
    runs: list[dict] = []
    for r in sorted((r for _, doc in documents for r in doc["runs"]),
                    key=lambda r: (r["seed"], r["first"])):
        if runs and runs[-1]["seed"] == r["seed"] and runs[-1]["end"] == r["first"]:
            runs[-1] = {**runs[-1], "end": r["end"]}  # adjacent slices of one seed: one range
        else:
            runs.append(dict(r))
    stops = {doc["stopped"] for _, doc in documents}
    budgets = {(doc["budget"], doc["shard"]["count"]) for _, doc in documents}
    shards_of_one = len(budgets) == 1 and first["shard"]["count"] > 1
    document = _assemble(
        first, first["budget"] if shards_of_one else sum(d["budget"] for _, d in documents),
        (1, 1), runs,
        "budget" if all(d["stop"] == "budget" for _, d in documents) else "closure or budget",
        stops.pop() if len(stops) == 1 else "budget",
        sum(doc["events"] for _, doc in documents),
        sum(doc["hardware_cycles"] for _, doc in documents), classes, first_of, model,
        sorted((d for _, doc in documents for d in doc["divergent"]),
               key=lambda d: (d["seed"], d["case"])))
    return RegressRun(document)


def write(document: dict[str, Any], path: Path) -> None:
    """The document as JSON, each divergent case on a line of its own."""
    sweep_write(document, path, ("divergent",))


# --- divergences: reproduce, shrink, write --------------------------------------------------


@dataclass(frozen=True)
class Minimized:
    """A divergence class's first case, shrunk: the file written and what it took."""

    klass: str
    seed: int
    case: int
    events_before: int
    events_after: int
    rounds: int
    path: Path
    scenario: Scenario
    memory_seed: int = 0


def slug(klass: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", klass.lower()).strip("-")


def minimize(seed: int, index: int, klass: str, version: KernelVersion, sim: str,
             out: Path) -> Minimized:
    """Shrink case ``index`` of ``seed`` to a minimal scenario of class ``klass`` at
    ``version`` and write it to ``out/<class>-<version>.toml``, its description naming where it
    came from and the command that replays it."""
    case: Case = generate(seed, index)
    memory_seed = case.memory_seed

    def keeps(candidates: list[Scenario]) -> list[bool]:
        sides = hardware_sides([Job(c, seed=memory_seed) for c in candidates], sim)
        return [classify(c, memory_seed, version, sim, hw)[0] == klass
                for c, hw in zip(candidates, sides, strict=True)]

    if memory_seed and _keeps_at(case.scenario, 0, klass, version, sim):
        memory_seed = 0  # no wait states, if the class does not need them
    small, rounds = shrink(case.scenario, keeps)
    name = f"{slug(klass)}-{version.value}"
    path = out / f"{name}.toml"
    seed_note = (f" with memory seed {memory_seed} (pi-cosim replay --seed {memory_seed})"
                 if memory_seed else "")
    description = (f"{klass} at KVM {version.value}: case {index} of pi-cosim regress --seed "
                   f"{seed} ({len(case.scenario.events)} events), shrunk in {rounds} rounds to "
                   f"{len(small.events)}{seed_note}. Reproduce: pi-cosim replay {path} --kvm "
                   f"{version.value}")
    small = replace(small, name=name, description=description, path=str(path))
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(to_toml(small))
    return Minimized(klass, seed, index, len(case.scenario.events), len(small.events), rounds,
                     path, small, memory_seed)


def _keeps_at(scenario: Scenario, memory_seed: int, klass: str, version: KernelVersion,
              sim: str) -> bool:
    (hardware,) = hardware_sides([Job(scenario, seed=memory_seed)], sim)
    return classify(scenario, memory_seed, version, sim, hardware)[0] == klass


# --- text -----------------------------------------------------------------------------------


def summary(result: RegressRun) -> list[str]:
    """The report: what ran, why it stopped, coverage and its holes, each class."""
    from cosim.campaign.sweep import describe_class

    d = result.document
    cov = d["coverage"]
    ran = ", ".join(f"seed {r['seed']} cases {r['first']}-{r['end'] - 1}" for r in d["runs"])
    lines = [f"regress against KVM {d['kvm']} ({d['commit'][:12]}) on {d['sim']}: {d['cases']:,} "
             f"cases ({ran}), {d['events']:,} events, {d['hardware_cycles']:,} testbench "
             f"cycles; stop at {d['stop']}: stopped at {d['stopped']}"
             + (f" ({result.seconds:.1f} s)" if result.seconds else "")]
    lines.append(f"coverage: {cov['covered']}/{cov['bins']} bins"
                 + (" (closed)" if cov["closed"] else "; holes:"))
    for item, holes in cov["holes"].items():
        shown = ", ".join(holes[:8]) + (f", ... ({len(holes)} in all)" if len(holes) > 8 else "")
        lines.append(f"  {item}: {shown}")
    lines.append(f"  not reachable by a scenario (checked elsewhere): "
                 f"{', '.join(cov['excluded'])}")
    for klass, n in d["classes"].items():
        lines.append(f"  {n:>8,}  {describe_class(klass)}")
    return lines

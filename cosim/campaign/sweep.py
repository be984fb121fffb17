"""The exhaustive decision sweep: every point of a mode (``cosim.scenario.sweep``) on the RTL in
a simulator and through the KVM model at each version, every verdict classified, and every
class checked against the predicate over the input fields that says which points it must hold
(``docs/sweep.md``).

How a run goes: the mode's points (or one shard's contiguous range of them) are cut into
chunks; each chunk runs in a worker process (one simulator session per worker and backend, one
build per backend, made first). In a chunk, points that differ only in the route are one
hardware job (the hardware has no routes); the jobs go through the harness in batches; each
point then runs through the KVM model at every version and the scoreboard judges it
(``cosim.judge.scoreboard.compare``; a point whose two side runs are equal agrees without
further work). A verdict's *class* is its label: ``agree``, ``deviation D..``, ``known bug
KB..`` or ``unexplained divergence``.

The characterizations (:data:`CHARACTERIZATIONS`) are the sweep's claim: for each version, the
exact set of points of each class other than ``agree``, as a predicate over the point's input
fields with the kernel reason. Every point's class is compared with the class its
characterization predicts; a point where they differ is a *mismatch* and fails the run, so a
class can neither grow nor shrink unnoticed.

The result document (``sweep.json``, or ``sweep.shard-K-of-N.json``) holds no timings and no
paths: the same mode, shard, seed and backend give byte-identical documents, whatever the
number of workers, and :func:`merge` turns the shards' documents into the document one run
would have written.
"""

import atexit
import functools
import hashlib
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosim.hardware.testbench import Job
from cosim.judge.findings import by_id
from cosim.judge.scoreboard import Verdict, compare
from cosim.reference.kvm import run_models
from cosim.scenario import sweep as domain
from cosim.scenario.drain import SideRun
from cosim.scenario.format import Scenario
from cosim.scenario.sweep import POSTED_VECTOR, Mode, Point
from software_model import KernelVersion

__all__ = ["AGREE", "CHARACTERIZATIONS", "FORMAT", "Characterization", "MergeError",
           "SweepRun", "chunks", "differences", "expected_class", "fingerprint",
           "hardware_sides", "judged", "label", "merge", "progress_printer", "run", "shard_range",
           "write"]

FORMAT = "pi-cosim-sweep/1"
AGREE = "agree"
UNEXPLAINED = "unexplained divergence"
#: An entry check where the hardware entered L2: the VM-entry checks did not refuse the
#: vmcs12 the domain calls invalid.
ENTRY_NOT_REFUSED = "VM entry not refused"
PRE, POST, NOV = KernelVersion.PRE_PATCH, KernelVersion.POST_PATCH, KernelVersion.NOV_2024


def label(verdict: Verdict) -> str:
    """A verdict's class: unexplained first, then known bugs, then deviations."""
    if verdict.divergent:
        return UNEXPLAINED
    if verdict.known_bugs:
        return "known bug " + "+".join(verdict.known_bugs)
    if verdict.deviations:
        return "deviation " + "+".join(verdict.deviations)
    return AGREE


def judged(scenario: Scenario, version: KernelVersion, sim: str, seed: int, hardware: SideRun,
           software: SideRun) -> Verdict | None:
    """The scoreboard's verdict, or None when both sides ran alike and came to rest (they
    agree: no need to compare field by field; most points of a campaign)."""
    if hardware == software and hardware.drain_settled and software.drain_settled:
        return None
    return compare(scenario, version, sim, seed, hardware, software)


# --- the characterizations --------------------------------------------------------------------


@dataclass(frozen=True)
class Characterization:
    """Class ``label`` holds, at ``versions``, exactly on the points where ``holds`` is true
    (``text`` says the predicate in words, ``why`` the kernel reason)."""

    label: str
    versions: frozenset[KernelVersion]
    text: str
    why: str
    holds: Callable[[Point], bool]

    def to_json(self) -> dict[str, Any]:
        return {"class": self.label, "versions": [v.value for v in KernelVersion
                                                  if v in self.versions],
                "predicate": self.text, "why": self.why}


def _pi(p: Point) -> bool:
    return p.has("process_posted_interrupts")


def _nv_hit(p: Point) -> bool:
    """The interrupt's vector is L2's notification vector (NV[7:0]) with posted interrupts
    on."""
    return _pi(p) and p.vector == p.nv & 0xFF


def _above_ppr(p: Point) -> bool:
    """The vector's priority class is above L1's PPR class: L1's APIC presents it."""
    assert p.vector is not None
    return p.vector >> 4 > p.ppr_class


def _kb1(p: Point) -> bool:
    return _nv_hit(p) and _above_ppr(p) and p.route != "trapped-ipi"


def _kb3(p: Point) -> bool:
    return _nv_hit(p) and not _above_ppr(p) and p.route == "trapped-ipi"


def _kb4(p: Point) -> bool:
    return _nv_hit(p) and _above_ppr(p) and p.pir and not p.on and p.route != "trapped-ipi"


def _kb8(p: Point) -> bool:
    return not p.has("external_interrupt_exiting") and _above_ppr(p)


#: The sweep's claim, per version: every class but ``agree``, as a predicate over the input
#: fields (the first that holds names the class; the versions keep them disjoint).
CHARACTERIZATIONS: tuple[Characterization, ...] = (
    Characterization(
        "known bug KB1", frozenset({PRE}),
        "vector = NV[7:0], posted interrupts on, vector class > PPR class, route not "
        "trapped-ipi",
        "IPIv and VT-d posts put NV into L1's IRR while L2 runs; L1's APIC presents it (class "
        "above PPR) and vmx_check_nested_events() turns it into an external-interrupt VM exit "
        "(the seed). A trapped IPI of NV never reaches L1's IRR: "
        "vmx_deliver_nested_posted_interrupt() diverts it first", _kb1),
    Characterization(
        "known bug KB3", frozenset(KernelVersion),
        "vector = NV[7:0], posted interrupts on, vector class <= PPR class, route trapped-ipi",
        "vmx_deliver_nested_posted_interrupt() checks only guest mode and vector = NV, not "
        "L1's PPR: it processes the notification the hardware keeps waiting in L1's IRR "
        "(whatever PIR and ON hold)", _kb3),
    Characterization(
        "known bug KB4", frozenset({POST, NOV}),
        "vector = NV[7:0], posted interrupts on, vector class > PPR class, PIR non-empty with "
        "ON 0, route not trapped-ipi",
        "vmx_check_nested_events() takes NV from L1's IRR into "
        "vmx_complete_nested_posted_interrupt(), which returns at once when ON is 0; the "
        "hardware merges PIR whatever ON is. A trapped IPI goes to the CPU's own processing on "
        "vmcs02 instead, which merges PIR like the hardware; pre-patch exits (KB1) before", _kb4),
    Characterization(
        "known bug KB8", frozenset({PRE, POST}),
        "external-interrupt exiting off (controls none or AIE), vector class > PPR class",
        "the interrupt goes through L2's IDT (EXT-1): L1's APIC acknowledges it and "
        "vmx_hwapic_isr_update() writes L1's new SVI into the loaded vmcs02; from 04bc93cf49d1 "
        "(nov-2024) the update is deferred to vmcs01", _kb8),
)


def expected_class(version: KernelVersion, point: Point) -> str:
    """The class the characterizations predict for ``point`` at ``version``."""
    for c in CHARACTERIZATIONS:
        if version in c.versions and point.vector is not None and c.holds(point):
            return c.label
    return AGREE


# --- running ----------------------------------------------------------------------------------


@functools.cache
def fingerprint(kind: str) -> str:
    """What the results depend on, hashed: ``design`` (the RTL, the harness and what it
    encodes, through the cocotb build key) or ``model`` (the KVM model, its adapter, the
    judge, the scenario layer and this campaign with its characterizations)."""
    import software_model
    from cosim.hardware.backends import _design_key

    if kind == "design":
        return _design_key()[:16]
    root = Path(__file__).parent.parent  # cosim/
    files = sorted(Path(software_model.__file__).parent.glob("*.py"))
    for package in ("reference", "judge", "scenario", "campaign"):
        files += sorted((root / package).glob("*.py"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class _Task:
    mode: Mode
    lo: int
    hi: int
    sim: str
    seed: int
    versions: tuple[KernelVersion, ...]


@dataclass
class _Tally:
    """What a chunk (or a whole run) found, per version, in point order."""

    points: int = 0
    jobs: int = 0
    cycles: int = 0
    classes: dict[str, Counter] = field(default_factory=dict)  # version -> class -> n
    predicted: dict[str, Counter] = field(default_factory=dict)  # version -> class -> n
    matched: dict[str, Counter] = field(default_factory=dict)  # version -> class -> n
    divergent: list[dict] = field(default_factory=list)
    mismatches: list[dict] = field(default_factory=list)

    def add(self, other: "_Tally") -> None:
        self.points += other.points
        self.jobs += other.jobs
        self.cycles += other.cycles
        for mine, theirs in ((self.classes, other.classes), (self.predicted, other.predicted),
                             (self.matched, other.matched)):
            for version, counts in theirs.items():
                mine.setdefault(version, Counter()).update(counts)
        self.divergent += other.divergent
        self.mismatches += other.mismatches


_SESSIONS: dict[str, Any] = {}


@atexit.register
def _close_sessions() -> None:
    """The native servers this process started end with it (a worker's end with the
    worker's pipes in any case)."""
    for session in _SESSIONS.values():
        session.close()
    _SESSIONS.clear()


def hardware_sides(jobs: list[Job], sim: str) -> list[SideRun]:
    """The jobs' side runs: the native server kept running in this process, or one
    simulation per call (cocotb backends, amaranth.sim)."""
    from cosim.hardware.backends import simulate

    if sim != "verilator-native":
        return [run.side for run in simulate(jobs, sim)]
    from cosim.hardware.native import NativeSession

    session = _SESSIONS.get(sim)
    if session is None or session.process.poll() is not None:
        session = _SESSIONS[sim] = NativeSession()
    return session.run_jobs(jobs)


def differences(verdict: Verdict) -> dict[str, str | None]:
    """Every differing field of the verdict (events, then at rest as ``rest:FIELD``) with its
    finding, or None for an unexplained one."""
    out: dict[str, str | None] = {}
    for event in verdict.events:
        out.update(event.classes)
    if verdict.drain is not None:
        out.update((f"rest:{name}", c) for name, c in verdict.drain.classes)
    return out


def _run_chunk(task: _Task) -> _Tally:
    points = list(task.mode.points(task.lo, task.hi))
    index: dict[tuple, int] = {}
    jobs: list[Job] = []
    job_of: list[int] = []
    scenarios = []
    for p in points:
        scenario = p.scenario()
        scenarios.append(scenario)
        key = p.hardware_key
        if key not in index:
            index[key] = len(jobs)
            jobs.append(Job(scenario, seed=task.seed))
        job_of.append(index[key])
    sides = hardware_sides(jobs, task.sim)
    tally = _Tally(points=len(points), jobs=len(jobs), cycles=sum(s.cycles for s in sides))
    for v in task.versions:
        tally.classes[v.value] = Counter()
        tally.predicted[v.value] = Counter()
        tally.matched[v.value] = Counter()
    for p, scenario, j in zip(points, scenarios, job_of, strict=True):
        hardware = sides[j]
        refused = not p.entry_check or hardware.outcomes[0].vmentry_error is not None
        models = run_models(scenario, task.versions, own_modes=False)
        for version in task.versions:
            software = models[version].side
            verdict = judged(scenario, version, task.sim, task.seed, hardware, software)
            observed = AGREE if verdict is None else label(verdict)
            if not refused:
                observed = ENTRY_NOT_REFUSED
            expected = expected_class(version, p)
            tally.classes[version.value][observed] += 1
            tally.predicted[version.value][expected] += 1
            if observed == expected:
                tally.matched[version.value][observed] += 1
            if observed != AGREE:
                tally.divergent.append({
                    "point": p.to_json(), "kvm": version.value, "class": observed,
                    "differences": {} if verdict is None else differences(verdict)})
            if observed != expected:
                tally.mismatches.append({"point": p.to_json(), "kvm": version.value,
                                         "class": observed, "expected": expected})
    return tally


def shard_range(size: int, shard: tuple[int, int]) -> tuple[int, int]:
    """Shard ``K/N``'s contiguous range of point numbers: ``[(K-1)*size//N, K*size//N)``."""
    k, n = shard
    return (k - 1) * size // n, k * size // n


#: Points per chunk, by backend: enough to amortize a simulator start where each chunk
#: starts one (cocotb, amaranth.sim), small enough for even progress.
_CHUNK = {"verilator-native": 12_000, "verilator": 60_000, "icarus": 60_000,
          "amaranth": 1_500}


@dataclass
class SweepRun:
    """A finished run (or a merge of shards): the result document and, for a run, its
    timings (kept out of the document)."""

    document: dict[str, Any]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No mismatch, and every point of every version agrees (deviations allowed): no
        known bug, no unexplained divergence."""
        return not self.document["mismatches"] and all(
            c == AGREE or c.startswith("deviation ")
            for v in self.document["versions"].values() for c in v["classes"])


def chunks(lo: int, hi: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(lo, hi, size):
        yield start, min(start + size, hi)


def run(mode: Mode, sim: str, versions: Iterable[KernelVersion], *,
        shard: tuple[int, int] = (1, 1), workers: int = 1, seed: int = 0,
        progress: Callable[[int, int, float], None] | None = None) -> SweepRun:
    """Run shard ``shard`` of ``mode`` on backend ``sim`` against ``versions``; ``progress``
    is called with (points done, points in all, seconds so far) after every chunk."""
    versions = tuple(v for v in KernelVersion if v in set(versions))
    # what this run is made of, read before it starts (an edit while it runs is not it)
    made_of = {"design": fingerprint("design"), "model": fingerprint("model")}
    lo, hi = shard_range(mode.size, shard)
    tasks = [_Task(mode, a, b, sim, seed, versions)
             for a, b in chunks(lo, hi, _CHUNK.get(sim, 10_000))]
    from cosim.hardware.backends import prepare

    prepare(sim)  # one clear message for a missing simulator, and one build, before any work
    started = time.monotonic()
    total = _Tally()
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(min(workers, len(tasks))) as pool:
            results: Iterable[_Tally] = pool.map(_run_chunk, tasks)
            for tally in results:
                total.add(tally)
                if progress:
                    progress(total.points, hi - lo, time.monotonic() - started)
    else:
        for task in tasks:
            total.add(_run_chunk(task))
            if progress:
                progress(total.points, hi - lo, time.monotonic() - started)
    seconds = time.monotonic() - started
    document = _document(mode.name, describe(mode), sim, seed, made_of, versions, shard, lo, hi,
                         total)
    return SweepRun(document, seconds)


def describe(mode: Mode) -> dict[str, Any]:
    """The document's ``domain``: the size, what is fixed, each part's axes and sizes."""
    return {"size": mode.size, "fixed": domain.FIXED, "parts": [
        {"name": p.name, "text": p.text, "size": p.size, "first": offset,
         "axes": [{"name": a.name, "size": len(a.values), "text": a.text} for a in p.axes]}
        for offset, p in zip(mode.offsets, mode.parts, strict=True)]}


def _document(mode: str, described: dict[str, Any], sim: str, seed: int,
              made_of: dict[str, str], versions: tuple[KernelVersion, ...],
              shard: tuple[int, int], lo: int, hi: int, total: _Tally) -> dict[str, Any]:
    order = {v.value: i for i, v in enumerate(KernelVersion)}

    def key(item: dict) -> tuple:
        return item["point"]["index"], order[item["kvm"]]

    per_version = {}
    for v in versions:
        classes = total.classes.get(v.value, Counter())
        predicted = total.predicted.get(v.value, Counter())
        matched = total.matched.get(v.value, Counter())
        names = sorted(set(classes) | set(predicted), key=lambda c: (c != AGREE, c))
        per_version[v.value] = {
            "commit": v.commit,
            "classes": {c: classes[c] for c in names if classes[c]},
            "check": {c: {"members": classes[c], "predicted": predicted[c],
                          "both": matched[c]} for c in names},
        }
    return {
        "format": FORMAT,
        "mode": mode,
        "domain": described,
        "shard": {"index": shard[0], "count": shard[1], "first": lo, "end": hi},
        "sim": sim,
        "seed": seed,
        "design": made_of["design"],
        "model": made_of["model"],
        "points": total.points,
        "hardware_jobs": total.jobs,
        "hardware_cycles": total.cycles,
        "versions": per_version,
        "characterizations": [c.to_json() for c in CHARACTERIZATIONS
                              if c.versions & set(versions)],
        "mismatches": sorted(total.mismatches, key=key),
        "divergent": sorted(total.divergent, key=key),
    }


# --- merging shards ---------------------------------------------------------------------------


class MergeError(ValueError):
    """Shards that cannot be merged (the message names the file and what differs)."""


_SAME = ("format", "mode", "sim", "seed", "design", "model", "domain")


def merge(documents: list[tuple[str, dict]]) -> SweepRun:
    """The document one run of the whole mode would have written, from every shard's
    ``(name, document)``: refused for shards of another design, model, mode, backend or seed,
    for a shard given twice, and for missing shards."""
    if not documents:
        raise MergeError("no shard files given")
    first_name, first = documents[0]
    for name, doc in documents:
        if doc.get("format") != FORMAT:
            raise MergeError(f"{name}: not a pi-cosim sweep result ({FORMAT})")
        for key in _SAME:
            if doc[key] != first[key]:
                what = {"design": "another version of the design",
                        "model": "another version of the KVM model or the judge"}.get(
                            key, f"another {key}")
                raise MergeError(f"{name}: {what} than {first_name} ({key} {doc[key]!r} vs "
                                 f"{first[key]!r}); rerun the shard with the same checkout")
        if doc["shard"]["count"] != first["shard"]["count"]:
            raise MergeError(f"{name}: shard of {doc['shard']['count']} vs "
                             f"{first['shard']['count']} in {first_name}")
        if set(doc["versions"]) != set(first["versions"]):
            raise MergeError(f"{name}: KVM versions {sorted(doc['versions'])} vs "
                             f"{sorted(first['versions'])} in {first_name}")
    count = first["shard"]["count"]
    seen: dict[int, str] = {}
    for name, doc in documents:
        k = doc["shard"]["index"]
        if k in seen:
            raise MergeError(f"{name}: shard {k}/{count} is also {seen[k]}")
        seen[k] = name
    missing = [k for k in range(1, count + 1) if k not in seen]
    if missing:
        raise MergeError(f"shards missing: {', '.join(f'{k}/{count}' for k in missing)}")
    total = _Tally()
    for _, doc in sorted(documents, key=lambda d: d[1]["shard"]["index"]):
        total.points += doc["points"]
        total.jobs += doc["hardware_jobs"]
        total.cycles += doc["hardware_cycles"]
        for version, data in doc["versions"].items():
            for c, n in data["check"].items():
                total.classes.setdefault(version, Counter())[c] += n["members"]
                total.predicted.setdefault(version, Counter())[c] += n["predicted"]
                total.matched.setdefault(version, Counter())[c] += n["both"]
        total.divergent += doc["divergent"]
        total.mismatches += doc["mismatches"]
    versions = tuple(v for v in KernelVersion if v.value in first["versions"])
    made_of = {"design": first["design"], "model": first["model"]}  # the shards', not ours
    return SweepRun(_document(first["mode"], first["domain"], first["sim"], first["seed"],
                              made_of, versions, (1, 1), 0, first["domain"]["size"], total))


#: The document's lists that can be long: written one entry per line.
_LISTS = ("mismatches", "divergent")


def write(document: dict[str, Any], path: Path, lists: tuple[str, ...] = _LISTS) -> None:
    """The document as JSON: the header indented, each entry of the long ``lists`` on a line
    of its own (the default sweep's is about 85 MB)."""
    head = {k: v for k, v in document.items() if k not in lists}
    text = json.dumps(head, indent=1)[:-2]
    for name in lists:
        entries = ",\n".join(json.dumps(e, separators=(",", ":")) for e in document[name])
        text += f',\n "{name}": [' + (f"\n{entries}\n ]" if entries else "]")
    path.write_text(text + "\n}\n")


# --- text -------------------------------------------------------------------------------------


def describe_class(name: str) -> str:
    """A class with its finding's title."""
    if name.startswith(("known bug ", "deviation ")):
        ids = name.split(" ", 2)[-1].split("+")
        return f"{name} ({'; '.join(by_id(i).title for i in ids)})"
    return name


def summary(result: SweepRun, rates: bool = True) -> list[str]:
    """The human report: the domain, then per version every class with its count and whether
    its characterization matches its members exactly."""
    d = result.document
    shard = d["shard"]
    lines = [f"sweep {d['mode']}: {d['domain']['size']:,} points per KVM version"
             + (f"; shard {shard['index']}/{shard['count']}: points {shard['first']:,}.."
                f"{shard['end'] - 1:,} ({d['points']:,})" if shard["count"] > 1 else ""),
             f"  hardware: {d['sim']} (memory seed {d['seed']}), {d['hardware_jobs']:,} jobs "
             f"(points that differ only in the route are one job), "
             f"{d['hardware_cycles']:,} testbench cycles",
             f"  fixed: {d['domain']['fixed']}"]
    for part in d["domain"]["parts"]:
        lines.append(f"  {part['name']} ({part['size']:,} = "
                     f"{' x '.join(str(a['size']) for a in part['axes'])}): {part['text']}")
        lines += [f"      {a['name']}: {a['text']}" for a in part["axes"]]
    texts = {(c["class"], v): c["predicate"] for c in d["characterizations"]
             for v in c["versions"]}
    for version, data in d["versions"].items():
        lines.append(f"== KVM {version} ({data['commit']})")
        for name, check in data["check"].items():
            n, exact = check["members"], check["members"] == check["predicted"] == check["both"]
            if name == AGREE:
                claim = "every point no characterization names"
            else:
                claim = texts.get((name, version), "no characterization: not predicted")
            verdict = ("matches exactly" if exact else
                       f"MISMATCH: {check['members'] - check['both']:,} members outside the "
                       f"predicate, {check['predicted'] - check['both']:,} predicted points "
                       "not in the class")
            lines.append(f"   {n:>11,}  {describe_class(name)}")
            lines.append(f"                predicate: {claim}: {verdict}")
    if d["mismatches"]:
        lines.append(f"{len(d['mismatches']):,} points where the class is not the predicted "
                     "one; the first:")
        for m in d["mismatches"][:10]:
            lines.append(f"   KVM {m['kvm']}: {_point_text(m['point'])}: {m['class']} "
                         f"(predicted: {m['expected']})")
    if rates and result.seconds:
        lines.append(f"time: {result.seconds:.1f} s, {d['points'] / result.seconds:,.0f} points/s "
                     f"({d['points'] * len(d['versions']) / result.seconds:,.0f} verdicts/s, "
                     f"{d['hardware_jobs'] / result.seconds:,.0f} hardware jobs/s)")
    return lines


def _point_text(point: dict) -> str:
    if point["vector"] is None:
        return (f"point {point['index']}: VMLAUNCH with {point['controls']}, "
                f"NV {point['nv']:#06x}")
    priority = (f"TPR {point['ppr_class'] << 4:#04x}" if point["ppr_source"] == "tpr"
                else f"ISR {{{point['ppr_class'] << 4:#04x}}}")
    pir = f"{{{POSTED_VECTOR:#04x}}}" if point["pir"] else "{}"
    return (f"point {point['index']}: vector {point['vector']:#04x} by {point['route']}, "
            f"{point['controls']}, NV {point['nv']:#06x}, {priority}, PIR {pir} "
            f"ON {int(point['on'])}")


def progress_printer(stream=sys.stderr, unit: str = "points",
                     extra: Callable[[], str] | None = None) -> Callable[[int, int, float], None]:
    """Progress on a terminal: ``unit`` done, rate, time left (one line, rewritten), and
    what ``extra()`` adds."""

    def show(done: int, total: int, seconds: float) -> None:
        rate = done / seconds if seconds else 0.0
        left = (total - done) / rate if rate else 0.0
        more = f", {extra()}" if extra is not None else ""
        stream.write(f"\r  {done:,} / {total:,} {unit} ({100 * done / max(total, 1):.1f} %), "
                     f"{rate:,.0f} {unit}/s, {left / 60:.0f} min {left % 60:02.0f} s left"
                     f"{more}   ")
        if done >= total:
            stream.write("\n")
        stream.flush()

    return show


"""Functional coverage of ``pi-cosim regress`` (``docs/regress.md``), with ``cocotb-coverage``.

What a case covered is read from its scenario and the hardware's run (the reference for what
happened): for every event, the state before it (the hardware's outcome after the previous
event, or the initial state) and what the event is. :func:`observe` turns a case into
:class:`Observation` samples; :class:`CoverageModel` feeds them to the library's cover points
and crosses (one tree under ``regress``) and reads hits and holes back.

The bins (:data:`CORNER_CASES`, :func:`_points`, :data:`CROSSES`):

- each corner case C1-C24 of the SDM notes that one vCPU's scenario can reach, by the predicate
  in :func:`_corners`; the others are listed in :data:`EXCLUDED` with the reason;
- each combination of the four swept controls (EIE, AIE, PPI, VID): a valid one is covered by a
  case that ran an event in L2 with it, an invalid one by a VM entry both sides refused;
  NV bits 15:8 zero and non-zero at a VM entry with posted interrupts on;
- at each interrupt decision in L2 (an interrupt arriving while L2 runs with external-interrupt
  exiting): the vector's priority class against L1's PPR class (15 x 16 cross), and whether
  the vector is NV and above PPR, crossed with the route;
- each route crossed with the guest it arrives in and with ``in_l0``;
- ON and SN at every posted-interrupt processing; each event kind in each guest it can happen
  in; each race's cycle offset and the window its post landed in;
- each deviation and known KVM bug that applies to the version under test, hit.

The library's database is one per process (a singleton): each version's model is a subtree
(``regress.post_patch``, ...) that :meth:`CoverageModel.reset` clears before a run, and hits
move between processes and documents as plain ``{bin: hits}`` tables
(:meth:`CoverageModel.hits`, :meth:`CoverageModel.load`), so that merging shards and runs is
adding the tables (:func:`merge_hits`); the XML the library exports
(:meth:`CoverageModel.export_xml`) is for other tools.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cocotb_coverage.coverage import (  # type: ignore[import-untyped]
    CoverCross,
    CoverPoint,
    coverage_db,
)

from cosim.campaign.stimulus import RACE_OFFSETS
from cosim.judge.findings import FINDINGS
from cosim.scenario.drain import RACE_WINDOWS, SideRun, race_windows
from cosim.scenario.format import (
    EVENT_KINDS,
    L1,
    L2,
    ROUTES,
    InterruptEvent,
    Scenario,
    VmEntryEvent,
)
from cosim.scenario.outcome import Outcome
from cosim.scenario.sweep import CONTROLS, combo_name
from software_model import KernelVersion

__all__ = ["CORNER_CASES", "EXCLUDED", "CoverageModel", "Observation", "merge_hits", "observe"]

#: The corner cases of the SDM notes that a scenario reaches, by number.
CORNER_CASES = ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9", "C10", "C14", "C15",
                "C16", "C17", "C19", "C21", "C22", "C23")
#: The corner cases no scenario of one vCPU can reach, and why (they are checked elsewhere).
EXCLUDED = {
    "C11": "the IPI-virtualization sender's coalescing (SN or ON set) is the IpiVirtualization "
           "unit's, checked by its RTL tests and proofs; a scenario's ipiv route is the "
           "sender's successful outcome",
    "C12": "a vector below 16 at the IPIv sender is refused by the sender (an APIC-write VM "
           "exit), never reaches the receiver: IpiVirtualization unit tests",
    "C13": "a bad PID-pointer table entry is the sender's check: IpiVirtualization unit tests",
    "C18": "a spurious INTA needs the interrupt masked between INTR and INTA inside one "
           "instruction boundary: no scenario event does that (LocalApic unit tests and proofs)",
    "C20": "ExtINT (8259 through LINT0) is outside the RTL's scope",
    "C24": "the EOI-exit bitmap has no scenario key (VirtualInterrupt unit tests cover VID-7)",
}


@dataclass(frozen=True)
class _State:
    """What the corner cases look at before an event."""

    mode: str
    irr: frozenset[int]
    isr: frozenset[int]
    ppr: int
    pir: frozenset[int]
    on: bool
    sn: bool
    virr: frozenset[int]
    rvi: int


def _initial(s: Scenario) -> _State:
    return _State(s.start, s.l1_apic.irr, s.l1_apic.isr, s.l1_apic.ppr,
                  s.pid.pir, s.pid.on, s.pid.sn, s.l2.virr, s.l2.rvi)


def _after(o: Outcome) -> _State:
    return _State(o.mode, o.l1_apic.irr, o.l1_apic.isr, o.l1_apic.ppr, o.pid.pir, o.pid.on,
                  o.pid.sn, o.l2.virr, o.l2.rvi)


@dataclass
class Observation:
    """What one case covered: a list of values per cover point (crosses as tuples)."""

    samples: dict[str, list] = field(default_factory=dict)

    def add(self, point: str, value: Any) -> None:
        self.samples.setdefault(point, []).append(value)


def _combo(s: Scenario) -> int:
    return sum(1 << i for i, name in enumerate(CONTROLS) if getattr(s.vmcs12, name))


def _corners(s: Scenario, hw: SideRun, i: int, before: _State, previous_processed: bool,
             windows: tuple[str, ...]) -> tuple[set[str], bool]:
    """The corner cases event ``i`` reaches, and whether it started posted-interrupt
    processing (NV acknowledged in non-root operation with posted interrupts on)."""
    c = s.vmcs12
    event = s.events[i]
    out = hw.outcomes[i]
    nv = c.posted_intr_nv & 0xFF
    hits: set[str] = set()
    pi = c.process_posted_interrupts
    ppr_class = before.ppr >> 4
    entering = isinstance(event, VmEntryEvent) or (i == 0 and s.start == L2)
    arriving = isinstance(event, InterruptEvent)
    vector = event.vector if isinstance(event, InterruptEvent) else None
    decision = (before.mode == L2 and arriving) or (entering and out.vmentry_error is None)
    processed = False
    if decision and pi:
        pending = before.irr | ({vector} if vector is not None else set())
        deliverable = {v for v in pending if v >> 4 > ppr_class}
        winner = max(deliverable, default=None)
        if nv in pending:
            if winner is not None and winner >> 4 > nv >> 4:
                hits.add("C1")
            if nv >> 4 <= ppr_class:
                hits.add("C3")
        processed = winner == nv
        if processed:
            if any(v < nv for v in pending):
                hits.add("C2")
            if not before.pir and before.on:
                hits.add("C4")
            if before.pir and not before.on:
                hits.add("C5")
            if nv in before.pir:
                hits.add("C6")
            if any(v < 16 for v in before.pir):
                hits.add("C7")
            if before.pir and before.rvi > max(before.pir):
                hits.add("C8")
            if before.virr and before.rvi < max(before.virr):
                hits.add("C9")
            if before.sn:
                hits.add("C10")
            if c.interrupt_window_exiting:
                hits.add("C15")
            if not s.l2.rflags_if:
                hits.add("C16")
            if nv in out.l1_apic.eoi_messages:
                hits.add("C17")
            if previous_processed:
                hits.add("C23")
    if vector == nv and before.mode == L1 and pi:
        hits.add("C21")
    if before.isr:
        top = max(before.isr)
        if any(v >> 4 == top >> 4 and v > top for v in before.irr):
            hits.add("C19")
    if (out.vmexit is not None and out.vmexit.reason == 1 and not out.vmexit.intr_info >> 31
            and not c.acknowledge_interrupt_on_exit and not pi):
        hits.add("C22")
    for race, window in zip(s.races, windows, strict=True):
        if race.event == i and window == "during":
            hits.add("C14")
    return hits, processed


def observe(scenario: Scenario, hardware: SideRun, findings: Iterable[str]) -> Observation:
    """What the case covered: its scenario, the hardware's run, the findings its verdict
    named."""
    obs = Observation()
    s, c = scenario, scenario.vmcs12
    windows = race_windows(s, hardware)
    combo = combo_name(_combo(s))
    ran_l2 = any(o.mode == L2 for o in hardware.outcomes)
    refused = any(o.vmentry_error is not None for o in hardware.outcomes)
    if ran_l2 or refused:
        obs.add("controls", combo)
    if c.process_posted_interrupts and any(isinstance(e, VmEntryEvent) for e in s.events):
        obs.add("nv_high", "zero" if c.posted_intr_nv >> 8 == 0 else "non-zero")
    before = _initial(s)
    processed = False
    for i, out in enumerate(hardware.outcomes):
        event = s.events[i]
        obs.add("event", (event.kind, before.mode))
        hits, now_processed = _corners(s, hardware, i, before, processed, windows)
        for corner in sorted(hits):
            obs.add("corner", corner)
        if now_processed:
            obs.add("on_sn", (before.on, before.sn))
        processed = now_processed
        if isinstance(event, InterruptEvent):
            obs.add("route", (event.route, before.mode, event.in_l0))
            if before.mode == L2 and c.external_interrupt_exiting:
                vclass, pclass = event.vector >> 4, before.ppr >> 4
                obs.add("class_x_ppr", (vclass, pclass))
                nv_hit = c.process_posted_interrupts and event.vector == c.posted_intr_nv & 0xFF
                relation = ("NV" if nv_hit else "other") + (" above PPR" if vclass > pclass
                                                            else " at or below PPR")
                obs.add("decision", (relation, event.route))
        before = _after(out)
    for race, window in zip(s.races, windows, strict=True):
        if race.event < len(hardware.outcomes):
            obs.add("race_offset", race.cycle)
            obs.add("race_window", window)
    for finding in sorted(set(findings)):
        obs.add("finding", finding)
    return obs


#: The plain cover points: name -> bins.
def _points() -> dict[str, list]:
    modes_of = {kind: cls.modes for kind, cls in EVENT_KINDS.items()}
    return {
        "corner": list(CORNER_CASES),
        "controls": [combo_name(c) for c in range(16)],
        "nv_high": ["zero", "non-zero"],
        "on_sn": [(on, sn) for on in (False, True) for sn in (False, True)],
        "event": [(kind, mode) for kind, modes in modes_of.items() for mode in modes],
        "race_offset": list(RACE_OFFSETS),
        "race_window": list(RACE_WINDOWS),
    }


#: The crosses: name -> (axis name, axis bins) in order; a sample is a tuple, one value per
#: axis.
CROSSES: dict[str, tuple[tuple[str, list], ...]] = {
    "class_x_ppr": (("vector_class", list(range(1, 16))), ("ppr_class", list(range(16)))),
    "decision": (("relation", ["NV above PPR", "NV at or below PPR", "other above PPR",
                               "other at or below PPR"]), ("route", list(ROUTES))),
    "route": (("route", list(ROUTES)), ("guest", [L1, L2]), ("in_l0", [False, True])),
}


class CoverageModel:
    """The cover points and crosses of one regression against one KVM version, in the
    library's database (under ``regress.<version>``)."""

    def __init__(self, version: KernelVersion):
        self.version = version
        # one subtree per version (the database outlives a run; the bins of findings differ)
        self.root = f"regress.{version.value.replace('-', '_')}"
        points = _points()
        points["finding"] = [f.id for f in FINDINGS if f.applies(version)]
        #: every item of the tree with its bins: the points, each cross's axes and the cross
        self.bins: dict[str, list] = {}
        self._samplers: dict[str, Any] = {}
        for point, bins in points.items():
            self._samplers[point] = self._point(point, bins)(_sink)
        for cross, axes in CROSSES.items():
            made = [self._point(f"{cross}.{axis}", bins, k) for k, (axis, bins) in
                    enumerate(axes)]
            names = [f"{self.root}.{cross}.{axis}" for axis, _bins in axes]
            together = CoverCross(f"{self.root}.{cross}.cross", items=names)
            self.bins[f"{cross}.cross"] = list(coverage_db[f"{self.root}.{cross}.cross"]
                                               .detailed_coverage)
            sampler = together(_sink)
            for point in reversed(made):  # the axes sample first, then the cross reads them
                sampler = point(sampler)
            self._samplers[cross] = sampler
        self.reset()

    def _point(self, name: str, bins: list, element: int | None = None) -> CoverPoint:
        full = f"{self.root}.{name}"
        if full in coverage_db and list(coverage_db[full].detailed_coverage) != bins:
            raise RuntimeError(f"coverage point {full} already defined with other bins")
        self.bins[name] = bins
        xf = (lambda value: value) if element is None else (lambda value: value[element])
        return CoverPoint(full, xf=xf, bins=bins)

    def reset(self) -> None:
        """No hits anywhere in this version's subtree."""
        for name, item in coverage_db.items():
            if not name.startswith(self.root):
                continue
            hits = getattr(item, "_hits", None)
            if hits is not None:
                for key in hits:
                    hits[key] = 0
            item._coverage = 0  # the library keeps group totals here

    @staticmethod
    def _recount() -> None:
        """The groups' totals from their items' hits, as sampling would have left them."""
        groups = [item for item in coverage_db.values() if getattr(item, "_hits", None) is None]
        for group in sorted(groups, key=lambda g: -g._name.count(".")):
            group._coverage = sum(child.coverage for child in group._children)

    def sample(self, obs: "Observation") -> None:
        for point, values in obs.samples.items():
            sampler = self._samplers.get(point)
            if sampler is None:
                continue  # e.g. a finding that does not apply to this version
            for value in values:
                sampler(value)

    def hits(self) -> dict[str, dict[str, int]]:
        """``{item: {bin: hits}}``, bins as text (documents are JSON)."""
        return {name: {_text(b): coverage_db[f"{self.root}.{name}"].detailed_coverage[b]
                       for b in bins} for name, bins in self.bins.items()}

    def load(self, hits: dict[str, dict[str, int]]) -> None:
        """Set the database's hits to a :meth:`hits` table (a merged one, say)."""
        self.reset()
        for name, bins in self.bins.items():
            item = coverage_db[f"{self.root}.{name}"]
            for b in bins:
                item._hits[b] = hits.get(name, {}).get(_text(b), 0)
        self._recount()

    def holes(self) -> dict[str, list[str]]:
        """The bins never hit, per item (a cross's holes are its own; its axes' are listed
        only when no cross bin can cover them)."""
        return {name: [b for b, n in table.items() if n == 0]
                for name, table in self.hits().items() if 0 in table.values()}

    def size(self) -> int:
        return sum(len(b) for b in self.bins.values())

    def covered(self) -> int:
        return sum(1 for table in self.hits().values() for n in table.values() if n)

    def closed(self) -> bool:
        return self.covered() == self.size()

    def export_xml(self, path) -> None:
        """The library's XML export of the whole database (what coverage tools read)."""
        self._recount()
        coverage_db.export_to_xml(filename=str(path))


def _sink(value) -> None:
    """The sampled function: the cover points record its argument."""


def _text(b) -> str:
    if isinstance(b, tuple):
        return " / ".join(_text(x) for x in b)
    if isinstance(b, bool):
        return "1" if b else "0"
    return str(b)


def merge_hits(tables: Iterable[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    """The hits of several runs of the same model, added bin by bin."""
    out: dict[str, dict[str, int]] = {}
    for table in tables:
        for point, bins in table.items():
            mine = out.setdefault(point, {})
            for b, n in bins.items():
                mine[b] = mine.get(b, 0) + n
    return out

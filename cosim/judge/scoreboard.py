"""The scoreboard: the hardware's and one KVM version's outcomes, compared after every event
and once more at rest, after the drain.

Every differing field after an event is classified, in this order:

- a field that differed at the previous event as finding X and differs the same way now
  (the same two values; for a set of vectors, the same vectors on one side only, whatever
  both sides gained or lost alike; for the deliveries, the same ones on one side only) stays
  X: X's effect persisting unchanged;
- a field a known KVM bug claims, its predicate holding on this event (``cosim.judge.findings``);
- a field a deviation claims, its predicate holding;
- while the two sides run different guests after a finding (KVM exited to L1 where the
  hardware did not, or the reverse), every difference is that finding's consequence: the two
  runs are no longer comparable event by event, and the drain judges what was lost (a
  deviation's residue predicate still has to accept what is left at rest);
- an EOI on sides whose highest in-service vector differs after a finding: each ends another
  vector's service, so what it changes is that finding's consequence;
- a field a finding hit earlier claims, the difference within that finding's vectors (for a
  set of vectors; for a deviation also a VM exit's vector): its consequence (the same rule as
  at rest);
- L1's PPR, L2's VPPR and SVI, functions of the in-service set (and of TPR values both sides
  share), take the class of the ISR or VISR difference;
- anything else is an unexplained divergence.

A finding's vectors are what it decides: NV, the descriptor's PIR (with the event's own post,
other agents' races during it, an RVI outside VIRR that a merge may pass over) and so on, per
finding. They grow while the finding's difference persists: a known bug that moved the
notification also decides what is posted after it, and a deviation in L1's APIC (D12) the
interrupts that arrive after it. Findings are also looked for in the drain's steps while both
sides take the same ones (an L1 EOI, a VM entry, an L2 EOI).

At rest (:class:`DrainResult`) the lost-interrupt checks come first: a vector delivered to L2
on one side only, a vector delivered to L1 on one side only, a descriptor left with ON = 1 and
PIR bits (vectors 16-255) on one side only. An L1 vector delivered on one side (to L1, or
through L2's IDT) that the other still holds pending in L1's IRR is held back by L1's PPR, not
lost (the drain neither lowers L1's TPR nor lets L2 end L1's vectors); the difference stays
one that a finding must explain.
A lost interrupt is a known bug hit earlier in the scenario whose vectors cover it, or an
unexplained divergence; never a deviation, with one exception: a delivery fewer of a vector
whose two arrivals KVM took as one IRR request (D12), which any APIC does when they overlap.
Any other field still different at rest is a known bug hit earlier (its field, its vectors),
or the declared residue of a deviation hit earlier (checked by the deviation's residue
predicate), or a divergence.

A :class:`Verdict` is the result for one scenario and version; :meth:`Verdict.to_json` is the
``pi-cosim replay --json`` document of ``docs/cli.md``.
"""

import functools
from collections import Counter
from dataclasses import dataclass, replace

from cosim.judge.findings import (
    DEVIATIONS,
    KNOWN_BUGS,
    L1_APIC,
    L1_RUNS,
    L2_VIRTUAL_APIC,
    LOST,
    PID,
    Context,
    Deviation,
    DrainContext,
    by_id,
    delivered_first,
    held_behind,
    held_in_virr,
    held_posts,
    is_known_bug,
    masked_apart,
    owed_posts,
    waiting_for_nv,
)
from cosim.scenario.drain import Impossible, SideRun, race_windows
from cosim.scenario.format import (
    EoiEvent,
    Event,
    InterruptEvent,
    L2EoiEvent,
    Scenario,
    StiEvent,
)
from cosim.scenario.outcome import Outcome, differences, to_json
from software_model import KernelVersion

__all__ = ["DrainResult", "EventResult", "Verdict", "compare"]

INTR_INFO_VALID = 0x80000000


@dataclass(frozen=True)
class _Classified:
    """Differing fields and how each is classified (``classes[field]`` is a finding ID, or
    ``None`` for an unexplained divergence)."""

    differences: tuple[str, ...]
    classes: tuple[tuple[str, str | None], ...]

    @functools.cached_property
    def divergent(self) -> tuple[str, ...]:
        """Fields no finding explains."""
        return tuple(f for f, c in self.classes if c is None)

    @functools.cached_property
    def known_bugs(self) -> tuple[str, ...]:
        return tuple(sorted({c for _, c in self.classes if c is not None and is_known_bug(c)}))

    @functools.cached_property
    def deviations(self) -> tuple[str, ...]:
        return tuple(sorted({c for _, c in self.classes
                             if c is not None and not is_known_bug(c)}))

    def by_kind(self, bugs: bool) -> dict[str, str]:
        return {f: c for f, c in self.classes if c is not None and is_known_bug(c) == bugs}


@dataclass(frozen=True)
class EventResult(_Classified):
    """One event: both outcomes, the differing fields and their classes."""

    event: Event
    hardware: Outcome
    software: Outcome


@dataclass(frozen=True)
class DrainResult(_Classified):
    """Both sides at rest after the drain: each side's drain steps, the final outcomes, the
    lost interrupts (``lost[check]`` is the set of vectors) and the classified differences
    (the lost-interrupt checks, then the fields still different)."""

    hardware_steps: tuple[Event, ...]
    software_steps: tuple[Event, ...]
    hardware: Outcome
    software: Outcome
    lost: tuple[tuple[str, tuple[frozenset[int], frozenset[int]]], ...]
    settled: tuple[bool, bool]


@dataclass(frozen=True)
class Verdict:
    """A scenario's hardware run against one KVM version."""

    scenario: Scenario
    version: KernelVersion
    sim: str
    seed: int
    events: tuple[EventResult, ...]
    drain: DrainResult | None  # None when an impossible event stopped the run
    impossible: Impossible | None
    expect_mismatches: tuple[str, ...] | None  # None without [expect]

    @property
    def _parts(self) -> tuple[_Classified, ...]:
        return self.events + ((self.drain,) if self.drain is not None else ())

    @functools.cached_property
    def divergent(self) -> tuple[str, ...]:
        """Unexplained divergences: every field no finding explains, events and drain."""
        return tuple(sorted({f for p in self._parts for f in p.divergent}))

    @functools.cached_property
    def known_bugs(self) -> tuple[str, ...]:
        return tuple(sorted({b for p in self._parts for b in p.known_bugs}))

    @functools.cached_property
    def deviations(self) -> tuple[str, ...]:
        return tuple(sorted({d for p in self._parts for d in p.deviations}))

    @property
    def agree(self) -> bool:
        """No known bug and no unexplained divergence: every difference, if any, is a
        deviation (and the drain confirmed it)."""
        return not self.divergent and not self.known_bugs

    @property
    def expect_ok(self) -> bool | None:
        return None if self.expect_mismatches is None else not self.expect_mismatches

    @property
    def ok(self) -> bool:
        """Agreement, no impossible event and, with ``[expect]``, the expectation holds
        (exit status 0)."""
        return self.agree and self.impossible is None and self.expect_ok is not False

    def to_json(self) -> dict:
        d = self.drain
        return {
            "scenario": self.scenario.name,
            "file": self.scenario.path,
            "kvm": self.version.value,
            "commit": self.version.commit,
            "sim": self.sim,
            "seed": self.seed,
            "agree": self.agree,
            "expect_ok": self.expect_ok,
            "expect_mismatches": (None if self.expect_mismatches is None
                                  else list(self.expect_mismatches)),
            "deviations": list(self.deviations),
            "known_bugs": list(self.known_bugs),
            "divergences": list(self.divergent),
            "impossible": None if self.impossible is None else {
                "index": self.impossible.index, "event": self.impossible.event.to_dict(),
                "mode": self.impossible.mode, "message": self.impossible.message()},
            "events": [{
                "event": e.event.to_dict(),
                "hardware": to_json(e.hardware),
                "software": to_json(e.software),
                "differences": list(e.differences),
                "divergences": list(e.divergent),
                "deviations": e.by_kind(bugs=False),
                "known_bugs": e.by_kind(bugs=True),
            } for e in self.events],
            "drain": None if d is None else {
                "hardware": {"steps": [s.kind for s in d.hardware_steps],
                             "final": to_json(d.hardware), "settled": d.settled[0]},
                "software": {"steps": [s.kind for s in d.software_steps],
                             "final": to_json(d.software), "settled": d.settled[1]},
                "lost": {check: {"hardware": sorted(h), "software": sorted(s)}
                         for check, (h, s) in d.lost},
                "differences": list(d.differences),
                "divergences": list(d.divergent),
                "deviations": d.by_kind(bugs=False),
                "known_bugs": d.by_kind(bugs=True),
            },
        }


def compare(scenario: Scenario, version: KernelVersion, sim: str, seed: int,
            hardware: SideRun, software: SideRun) -> Verdict:
    """Compare the two runs event by event, then at rest, and classify every difference."""
    results: list[EventResult] = []
    previous: EventResult | None = None
    bug_vectors: dict[str, frozenset[int]] = {}  # known bugs hit so far -> their vectors
    deviation_vectors: dict[str, frozenset[int]] = {}  # deviations hit so far -> theirs
    coalesced: set[tuple[str, int]] = set()  # (deviation, vector): two arrivals taken as one
    harvested: set[tuple[str, int]] = set()  # (deviation, vector): posts KVM harvests later
    last_finding: str | None = None  # the last known bug, or deviation, that showed
    applied = scenario.events[:len(hardware.outcomes)]  # all, unless an event was impossible
    aligned = _aligned(hardware, software)
    windows = race_windows(scenario, hardware)
    for index, (event, hw, sw) in enumerate(zip(applied, aligned, software.outcomes,
                                                strict=True)):
        diffs = differences(hw, sw)
        classes: dict[str, str | None] = {}
        if previous is not None:
            carried = dict(previous.classes)
            for name in diffs:
                field = name.split(".")[0] if name.startswith("vmexit.") else name
                if (carried.get(name) is not None
                        and _delta(hw.get(field), sw.get(field))
                        == _delta(previous.hardware.get(field), previous.software.get(field))):
                    classes[name] = carried[name]
        ctx = Context(scenario, version, event, None if previous is None else previous.software,
                      hw, sw, index, software.early, windows)
        open_fields = {d for d in diffs if d not in classes}
        for bug in KNOWN_BUGS:
            explained = bug.explains(ctx, open_fields)
            if explained:
                _note(bug_vectors, bug.id, bug.vectors(ctx))
                last_finding = bug.id
            for name in explained:
                classes[name] = bug.id
            open_fields -= set(classes)
        for deviation in DEVIATIONS:
            explained = deviation.explains(ctx, open_fields)
            if explained:
                _hit(deviation, ctx, deviation_vectors, coalesced, harvested)
                last_finding = deviation.id
            for name in explained:
                classes[name] = deviation.id
            open_fields -= set(classes)
        masked = masked_apart(ctx, None if previous is None else previous.hardware,
                              deviation_vectors) if open_fields else None
        if masked is not None:  # NV met a different L1 PPR on each side, a deviation's
            masked_id, vectors = masked
            for name in open_fields & (PID | L2_VIRTUAL_APIC | L1_APIC):
                classes[name] = masked_id
            _note(deviation_vectors, masked_id, vectors)
            last_finding = masked_id
            open_fields -= set(classes)
        apart = hw.mode != sw.mode or (previous is not None
                                       and previous.hardware.mode != previous.software.mode)
        if apart and last_finding is not None:  # the event ran on different guests
            for name in open_fields:
                classes[name] = last_finding
            if is_known_bug(last_finding):  # what the event did on one guest only (an L2
                # instruction KVM's L2 never ran): the bug decided those vectors' fate
                _note(bug_vectors, last_finding, _changed_vectors(open_fields, hw, sw))
            open_fields = set()
        ended = _other_eoi(event, previous, open_fields)
        if ended is not None:
            eoi_fields = open_fields & _EOIS[type(event)][1]
            for name in eoi_fields:
                classes[name] = ended
            # the vectors the EOI left in service on one side only: the finding's from now on
            _note(bug_vectors if is_known_bug(ended) else deviation_vectors, ended,
                  _changed_vectors(eoi_fields, hw, sw))
            open_fields -= set(classes)
        _catching_up(ctx, open_fields, classes, deviation_vectors)
        _collapse_delayed(ctx, deviation_vectors, coalesced)
        open_fields -= set(classes)
        for name in sorted(open_fields):  # what a finding hit earlier left behind
            found = (_consequence(name, hw, sw, bug_vectors)
                     or _consequence(name, hw, sw, deviation_vectors))
            if found is not None:
                classes[name] = found
        open_fields -= set(classes)
        for name in sorted(open_fields & set(_DERIVED)):  # PPR and SVI follow the ISR
            if classes.get(_DERIVED[name]) is not None:
                classes[name] = classes[_DERIVED[name]]
        open_fields -= set(classes)
        for name in open_fields:
            classes[name] = None
        _strand_posts(ctx, classes, bug_vectors)
        _queue_arrivals(ctx, classes, bug_vectors, deviation_vectors)
        previous = EventResult(tuple(diffs), tuple((d, classes[d]) for d in diffs),
                               event, hw, sw)
        results.append(previous)
    drain = None
    if hardware.impossible is None:
        _drain_findings(scenario, version, hardware, software,
                        None if previous is None else previous.software, bug_vectors,
                        deviation_vectors, coalesced, harvested)
        hit = {c for r in results for _, c in r.classes if c is not None} | set(deviation_vectors)
        drain = _judge_rest(scenario, hardware, software, bug_vectors,
                            [by_id(i) for i in sorted(hit) if not is_known_bug(i)],
                            deviation_vectors, frozenset(coalesced), frozenset(harvested))
    mismatches = None
    if scenario.expect is not None and hardware.outcomes:
        mismatches = tuple(scenario.expect.mismatches(hardware.outcomes[-1]))
    return Verdict(scenario, version, sim, seed, tuple(results), drain, hardware.impossible,
                   mismatches)


def _drain_findings(scenario: Scenario, version: KernelVersion, hardware: SideRun,
                    software: SideRun, before: Outcome | None,
                    bug_vectors: dict[str, frozenset[int]],
                    deviation_vectors: dict[str, frozenset[int]],
                    coalesced: set[tuple[str, int]],
                    harvested: set[tuple[str, int]]) -> None:
    """Findings that strike in the drain: while both sides take the same drain steps (an L1
    EOI, a VM entry, an L2 EOI), each step is an event like the scenario's, and a known bug
    or a deviation whose predicate holds on it adds its vectors, so that what it leaves at
    rest is named by it (a known bug) or checked by its residue predicate (a deviation); the
    drain's L1 re-enters L2 as a real L1 would. Once the steps go apart (one side's L1 takes
    an interrupt the other's does not hold), KVM's later steps are judged alone, by the
    known bugs' one-sided signatures (steps no CPU can take)."""
    first = len(scenario.events)
    together = True
    for k, (sw_event, sw) in enumerate(software.drain):
        hw_step = hardware.drain[k] if k < len(hardware.drain) else None
        together = together and hw_step is not None and hw_step[0] == sw_event
        if together:
            assert hw_step is not None
            diffs = set(differences(hw_step[1], sw))
            if diffs:
                ctx = Context(scenario, version, sw_event, before, hw_step[1], sw, first + k)
                for bug in KNOWN_BUGS:
                    if bug.explains(ctx, diffs):
                        _note(bug_vectors, bug.id, bug.vectors(ctx))
                for deviation in DEVIATIONS:
                    if deviation.explains(ctx, diffs):
                        _hit(deviation, ctx, deviation_vectors, coalesced, harvested)
        elif before is not None:  # apart: KVM's own steps, by the bugs' one-sided signatures
            for bug in KNOWN_BUGS:
                if bug.signature is not None and bug.applies(version):
                    vectors = bug.signature(scenario, before, sw_event, sw)
                    if vectors:
                        _note(bug_vectors, bug.id, vectors)
        before = sw


#: Fields that are functions of another field and of state both sides share: L1's PPR of its
#: ISR (and TPR), L2's VPPR and SVI of VISR (and VTPR; both sides write the same TPR values,
#: SDM 29.1.1/29.1.2), L2's RVI of VIRR (each delivery leaves RVI at VIRR's highest bit,
#: SDM 29.2.2). Where the source differs because of a finding, so do they.
_DERIVED = {"l1_apic.ppr": "l1_apic.isr", "l2.vppr": "l2.visr", "l2.svi": "l2.visr",
            "l2.rvi": "l2.virr"}

#: Which of L1's interrupts are pending and which in service.
_L1_PENDING = frozenset({"l1_apic.irr", "l1_apic.isr"})

#: Per EOI event: the in-service set it ends the top of, and the fields it changes (L1's APIC
#: for L1's EOI, L2's virtual APIC for L2's).
_EOIS: dict[type, tuple[str, frozenset[str]]] = {
    EoiEvent: ("l1_apic.isr", L1_RUNS),
    L2EoiEvent: ("l2.visr", L2_VIRTUAL_APIC),
}


def _note(hits: dict[str, frozenset[int]], finding_id: str, vectors: frozenset[int]) -> None:
    """Add ``vectors`` to what ``finding_id`` decides."""
    hits[finding_id] = hits.get(finding_id, frozenset()) | vectors


def _other_eoi(event: Event, previous: "EventResult | None",
               open_fields: set[str]) -> str | None:
    """An EOI (L1's, or L2's virtual one) on sides whose highest in-service vector differs
    after a finding: each side ends the service of another vector, so what the EOI changes
    differs because of it. Returns the finding that made the in-service sets differ (a
    deviation's residue is still checked at rest)."""
    if previous is None or type(event) not in _EOIS or not open_fields & _EOIS[type(event)][1]:
        return None
    field = _EOIS[type(event)][0]
    hw, sw = previous.hardware.get(field), previous.software.get(field)
    finding = dict(previous.classes).get(field)
    if finding is None or max(hw, default=-1) == max(sw, default=-1):
        return None
    return finding


def _hit(deviation: Deviation, ctx: Context, deviation_vectors: dict[str, frozenset[int]],
         coalesced: set[tuple[str, int]], harvested: set[tuple[str, int]]) -> None:
    """Record a deviation that showed at an event or a drain step: its vectors, and the
    vectors it took two requests of as one or lets KVM harvest later (its residue's)."""
    _note(deviation_vectors, deviation.id, deviation.vectors(ctx))
    if deviation.coalesces is not None:
        coalesced |= {(deviation.id, v) for v in deviation.coalesces(ctx)}
    if deviation.harvests is not None:
        harvested |= {(deviation.id, v) for v in deviation.harvests(ctx)}


def _catching_up(ctx: Context, open_fields: set[str], classes: dict[str, str | None],
                 deviation_vectors: dict[str, frozenset[int]]) -> None:
    """KVM delivers to L2 at this event a vector that a deviation delayed earlier (D10), and
    the hardware's L2 state is KVM's with more deliveries done: the delay goes on (KVM's
    delivery took the evaluation that the hardware used for the next vector, VID-4). The
    L2 fields are the deviation's, and the vectors it delays grow by those deliveries."""
    l2_open = open_fields & L2_VIRTUAL_APIC
    if not l2_open:
        return
    _new_hw, new_sw = ctx.new_deliveries
    for found, delayed in sorted(deviation_vectors.items()):
        if set(new_sw) & delayed and l2_open <= by_id(found).fields:
            more = delivered_first(ctx)
            if more:
                for name in l2_open:
                    classes[name] = found
                _note(deviation_vectors, found, frozenset(more))
                return


def _collapse_delayed(ctx: Context, deviation_vectors: dict[str, frozenset[int]],
                      coalesced: set[tuple[str, int]]) -> None:
    """A vector a deviation delayed (D10) is still pending in KVM's VIRR when this event's
    processing merges it again from PIR: KVM's two requests collapse into one VIRR bit
    (SDM 29.2.1), where the hardware, which delivered the first, holds the second: one
    delivery fewer on KVM's side, which the deviation accounts for at rest."""
    for found, delayed in deviation_vectors.items():
        dev = by_id(found)
        if not isinstance(dev, Deviation) or dev.coalesces is None:
            continue
        for v in delayed & ctx.virr_before & ctx.pir_before:
            if v in ctx.software.l2.virr | ctx.software.l2.visr | set(ctx.new_deliveries[1]):
                coalesced.add((found, v))


def _changed_vectors(names: set[str], hw: Outcome, sw: Outcome) -> frozenset[int]:
    """The vectors in which the vector-valued fields ``names`` differ (L1's IRR/ISR, the
    descriptor's PIR, L2's VIRR/VISR and deliveries)."""
    out: set[int] = set()
    for name in names:
        if name.startswith("vmexit"):
            continue
        a, b = hw.get(name), sw.get(name)
        if isinstance(a, frozenset | tuple) and isinstance(b, frozenset | tuple):
            out.update(*_one_sided(Counter(a), Counter(b)))
    return frozenset(out)


def _strand_posts(ctx: Context, classes: dict[str, str | None],
                  bug_vectors: dict[str, frozenset[int]]) -> None:
    """A known bug that left the notification in another place (NV among its vectors) and
    whose difference persists at this event also decides the fate of what this event posts
    to the descriptor (the event's post, races landing in it): the hardware's pending
    notification harvests them, KVM's consumed or lost one does not."""
    posted = (ctx.pir_before | ctx.raced_after) - (ctx.before.pid.pir if ctx.before is not None
                                                   else frozenset(ctx.scenario.pid.pir))
    if not posted:
        return
    for bug_id in {c for c in classes.values() if c is not None and is_known_bug(c)}:
        if ctx.nv in bug_vectors.get(bug_id, frozenset()):
            _note(bug_vectors, bug_id, posted)


def _queue_arrivals(ctx: Context, classes: dict[str, str | None],
                    bug_vectors: dict[str, frozenset[int]],
                    deviation_vectors: dict[str, frozenset[int]]) -> None:
    """A finding in L1's APIC (which interrupt is pending and which in service: D12, or a
    bug that ran L1 where the hardware did not) whose difference persists at this event also
    decides the order in which the interrupts arriving now are taken: they queue behind
    another vector on each side."""
    arrived = frozenset(e.vector for e in ctx.arrivals)
    if not arrived:
        return
    for found in {c for f, c in classes.items() if c is not None and f in _L1_PENDING}:
        if _L1_PENDING <= by_id(found).fields:
            _note(bug_vectors if is_known_bug(found) else deviation_vectors, found, arrived)


def _aligned(hardware: SideRun, software: SideRun) -> tuple[Outcome, ...]:
    """The hardware's outcomes as KVM's are to be compared with them. An in-L0 interrupt that
    KVM took in the previous event's exit (``software.early``) is in KVM's outcome of that
    event, while the hardware takes it with its own event: KVM's outcome of the earlier event
    is compared with the hardware's after both (its VM exit or entry failure, the later one of
    the two), and the in-L0 event's with the hardware's state after it, with no exit of its
    own (KVM's event changes nothing more)."""
    out = list(hardware.outcomes)
    for k in software.early:
        if 0 < k < len(out):
            first, both = hardware.outcomes[k - 1], hardware.outcomes[k]
            out[k - 1] = replace(
                both, vmexit=both.vmexit if both.vmexit is not None else first.vmexit,
                vmentry_error=both.vmentry_error if both.vmentry_error is not None
                else first.vmentry_error)
            out[k] = replace(both, vmexit=None, vmentry_error=None)
    return tuple(out)


def _delta(hardware, software) -> tuple:
    """What differs in one field: for a set, the vectors on one side only (an event that
    changes both sides alike leaves it as it was); for a list of deliveries, the deliveries
    on one side only (their order is judged at rest); otherwise the pair of values."""
    if isinstance(hardware, frozenset) and isinstance(software, frozenset):
        return hardware - software, software - hardware
    if isinstance(hardware, tuple) and isinstance(software, tuple):  # deliveries, in order
        hw, sw = Counter(hardware), Counter(software)
        return tuple(sorted((hw - sw).elements())), tuple(sorted((sw - hw).elements()))
    return hardware, software


def _l1_delivered(scenario: Scenario, side: SideRun) -> Counter[int]:
    """Vectors L1 received: the interruption information of every VM exit that had one, and
    the vector each ``sti`` moved into L1's ISR (delivered through L1's IDT)."""
    got = Counter(o.vmexit.intr_info & 0xFF for o in side.steps
                  if o.vmexit is not None and o.vmexit.intr_info & INTR_INFO_VALID)
    events = (*scenario.events[:len(side.outcomes)], *(e for e, _ in side.drain))
    isr = scenario.l1_apic.isr
    for event, o in zip(events, side.steps, strict=True):
        if isinstance(event, StiEvent):
            got.update(o.l1_apic.isr - isr)
        isr = o.l1_apic.isr
    return got


def _stuck(outcome: Outcome) -> frozenset[int]:
    """Interrupts that no notification will ever harvest: PIR bits with ON = 1 at rest, for
    the vectors that can be interrupts at all (16-255: vectors 0-15 are illegal, SDM 10.5.2,
    and class 0 is never delivered; a PIR bit 0 left by D2 is not an interrupt lost)."""
    return frozenset(v for v in outcome.pid.pir if v >= 16) if outcome.pid.on else frozenset()


def _one_sided(hw: Counter[int], sw: Counter[int]) -> tuple[frozenset[int], frozenset[int]]:
    """The vectors counted more often on the hardware, and those counted more often on KVM."""
    return frozenset(hw - sw), frozenset(sw - hw)


def _judge_rest(scenario: Scenario, hardware: SideRun, software: SideRun,
                bug_vectors: dict[str, frozenset[int]],
                deviations: list, deviation_vectors: dict[str, frozenset[int]],
                coalesced: frozenset[tuple[str, int]] = frozenset(),
                harvested: frozenset[tuple[str, int]] = frozenset()) -> DrainResult:
    hw, sw = hardware.final, software.final
    lost: dict[str, tuple[frozenset[int], frozenset[int]]] = {}
    l2 = _held_by_l2(_one_sided(Counter(hw.l2.delivered), Counter(sw.l2.delivered)), hw, sw,
                     scenario.l2.rflags_if)
    if not scenario.vmcs12.external_interrupt_exiting:  # L2 receives L1's vectors (EXT-1)
        l2 = _unheld(l2, hw, sw)
    if any(l2):
        lost[LOST[0]] = l2
    l1 = _unheld(_one_sided(_l1_delivered(scenario, hardware),
                                 _l1_delivered(scenario, software)), hw, sw)
    if any(l1):
        lost[LOST[1]] = l1
    if _stuck(hw) != _stuck(sw):
        lost[LOST[2]] = (_stuck(hw) - _stuck(sw), _stuck(sw) - _stuck(hw))
    classes: dict[str, str | None] = {}
    if not hardware.drain_settled or not software.drain_settled:
        classes["drain.settled"] = None
    ctx = DrainContext(scenario, hw, sw, (), tuple(sorted(deviation_vectors.items())),
                       frozenset(v for _, v in coalesced), frozenset(v for _, v in harvested))
    owed = owed_posts(ctx)
    held = {("D12", v) for v in held_posts(ctx)}  # pending behind L1's PPR, not lost
    # in KVM's PIR for its processing of NV to come (behind L1's PPR), not lost
    waiting = {("D12", v) for v in waiting_for_nv(ctx) or ()}
    kvm_collapsed, collapsed = _later_collapses(scenario, hardware, software,
                                                deviation_vectors)
    for check, (hw_only, sw_only) in lost.items():
        classes[check] = (_bug_covering(hw_only | sw_only, bug_vectors)
                          or _lost_by_deviation(check, hw_only, sw_only,
                                                coalesced | kvm_collapsed, collapsed,
                                                {(d, v) for d, v in harvested if v in owed}
                                                | held, waiting))
    # L2's deliveries with a vector lost are that loss, unless a deviation accounts for it:
    # then its residue must account for the order of the rest too
    lost_l2 = classes.get(LOST[0])
    loss_stands = LOST[0] in lost and (lost_l2 is None or is_known_bug(lost_l2))
    fields = tuple(d for d in differences(hw, sw)
                   if not d.startswith("vmexit") and d != "vmentry_error"
                   and not (d == "l2.delivered" and loss_stands))
    ctx = replace(ctx, differences=fields)
    for name in fields:
        classes[name] = _explain_residue(name, hw, sw, ctx, bug_vectors, deviations)
    return DrainResult(
        differences=tuple(classes), classes=tuple(classes.items()),
        hardware_steps=tuple(e for e, _ in hardware.drain),
        software_steps=tuple(e for e, _ in software.drain),
        hardware=hw, software=sw, lost=tuple(lost.items()),
        settled=(hardware.drain_settled, software.drain_settled))


def _lost_by_deviation(check: str, hw_only: frozenset[int], sw_only: frozenset[int],
                       coalesced: frozenset[tuple[str, int]],
                       collapsed: frozenset[tuple[str, int]],
                       owed: set[tuple[str, int]],
                       waiting: set[tuple[str, int]]) -> str | None:
    """The deviation that accounts for a lost-interrupt difference, or None. A deviation
    loses no interrupt, so there are these ways only: a delivery fewer on KVM's side of a
    vector whose two requests KVM took as one (``coalesced``; a delivery more where the
    hardware did, ``collapsed``), posts that KVM's processing harvested while the hardware
    holds them in PIR with ON = 1 for the notification their sender owes (``owed``:
    delivered, and not stuck, on KVM's side only), and posts that KVM's processing, still to
    come, will harvest (``waiting``: delivered on the hardware's side only, stuck on KVM's)."""
    merged, merged_hw = {v for _, v in coalesced}, {v for _, v in collapsed}
    later, kvm_later = {v for _, v in owed}, {v for _, v in waiting}
    if check == LOST[2]:
        ok = sw_only <= kvm_later and hw_only <= later
    elif check == LOST[0]:
        ok = hw_only <= merged | kvm_later and sw_only <= later
    else:
        ok = hw_only <= merged and sw_only <= merged_hw
    if not ok:
        return None
    return min(d for d, v in coalesced | collapsed | owed | waiting if v in hw_only | sw_only)


def _later_collapses(scenario: Scenario, hardware: SideRun, software: SideRun,
                     deviation_vectors: dict[str, frozenset[int]]
                     ) -> tuple[frozenset[tuple[str, int]], frozenset[tuple[str, int]]]:
    """A vector whose order a coalescing deviation decided (D12) arrives again while one side
    still holds its first request pending in L1's IRR and the other has it in service: that
    side's two requests collapse (SDM 10.8.4), one delivery fewer there. Returns the
    (deviation, vector) pairs that collapsed on KVM's side and on the hardware's."""
    kvm, hw_side = set(), set()
    for found, vectors in deviation_vectors.items():
        dev = by_id(found)
        if not isinstance(dev, Deviation) or dev.coalesces is None:
            continue
        for i, event in enumerate(scenario.events[1:len(hardware.outcomes)], start=1):
            if not isinstance(event, InterruptEvent) or event.vector not in vectors:
                continue
            v, hw, sw = event.vector, hardware.outcomes[i - 1].l1_apic, \
                software.outcomes[i - 1].l1_apic
            if v in hw.irr and v not in sw.irr and v in sw.isr:
                hw_side.add((found, v))
            if v in sw.irr and v not in hw.irr and v in hw.isr:
                kvm.add((found, v))
    return frozenset(kvm), frozenset(hw_side)


def _held_by_l2(one_sided: tuple[frozenset[int], frozenset[int]], hw: Outcome,
                sw: Outcome, rflags_if: bool) -> tuple[frozenset[int], frozenset[int]]:
    """Vectors delivered to L2 on one side only, less those the other side's L2 still holds
    pending in VIRR at rest (behind its VPPR after an L2 TPR write that masked them, or with
    L2's RFLAGS.IF = 0): delivered once L2 can take them, not lost. The difference (VIRR,
    RVI, the deliveries) stays one that a finding must explain."""
    hw_only, sw_only = one_sided
    return hw_only - held_in_virr(sw, rflags_if), sw_only - held_in_virr(hw, rflags_if)


def _unheld(one_sided: tuple[frozenset[int], frozenset[int]], hw: Outcome,
            sw: Outcome) -> tuple[frozenset[int], frozenset[int]]:
    """Vectors of L1 delivered on one side only (to L1 in a VM exit, or through L2's IDT
    without external-interrupt exiting), less those the other side still holds pending in
    L1's IRR at rest: held back by L1's PPR (its TPR, or a vector in service that the drain's
    L2 cannot end), they are delivered once L1's PPR allows; not lost. The difference stays
    a difference at rest (L1's IRR, the deliveries) that a finding must explain."""
    hw_only, sw_only = one_sided
    return hw_only - sw.l1_apic.irr, sw_only - hw.l1_apic.irr


def _bug_covering(vectors: frozenset[int], bug_vectors: dict[str, frozenset[int]]) -> str | None:
    """The first known bug hit earlier whose vectors cover ``vectors`` (alone, or together
    with the other bugs hit: then the first that shares a vector), or None."""
    for bug_id, covered in sorted(bug_vectors.items()):
        if vectors <= covered:
            return bug_id
    if bug_vectors and vectors <= frozenset().union(*bug_vectors.values()):
        return next(b for b, c in sorted(bug_vectors.items()) if c & vectors)
    return None


def _consequence(name: str, hw: Outcome, sw: Outcome,
                 hits: dict[str, frozenset[int]]) -> str | None:
    """A finding hit earlier (``hits``: known bugs, or deviations) that claims the field, with
    its vectors covering the difference: the field differs because of it. For a vector field
    the vectors on one side only (in L1's IRR and L1's EOI messages, less those pending in L1's
    IRR behind one of the finding's vectors in service on either side: a side that ran L1 for
    the finding ended that vector and then took and ended the one behind it, the other still
    holds it pending); for another field, a known bug claims any difference, a deviation only
    a VM exit whose vectors on both sides are its own (its residue is checked at rest)."""
    if name.startswith("vmexit") and (hw.vmexit is None or sw.vmexit is None):
        a = b = None
    else:
        a, b = hw.get(name), sw.get(name)
    for found, covered in sorted(hits.items()):
        if name not in by_id(found).fields:
            continue
        if isinstance(a, frozenset | tuple) and isinstance(b, frozenset | tuple):
            changed = frozenset(a) ^ frozenset(b)
            if name in ("l1_apic.irr", "l1_apic.eoi_messages"):
                changed = changed - held_behind(hw, covered) - held_behind(sw, covered)
            if changed <= covered:
                return found
        elif is_known_bug(found):
            return found
        elif (name == "vmexit.intr_info" and a is not None and b is not None
                and a >> 31 and b >> 31 and {a & 0xFF, b & 0xFF} <= covered):
            return found
    return None


def _explain_residue(name: str, hw: Outcome, sw: Outcome, ctx: DrainContext,
                     bug_vectors: dict[str, frozenset[int]],
                     deviations: list[Deviation]) -> str | None:
    """A field still different at rest: a known bug hit earlier that claims the field (with
    its vectors covering the difference, for a vector field), a deviation's checked
    residue, or None."""
    bug_id = _consequence(name, hw, sw, bug_vectors)
    if bug_id is not None:
        return bug_id
    for deviation in deviations:
        if deviation.explains_residue(ctx, {name}):
            return deviation.id
    return None

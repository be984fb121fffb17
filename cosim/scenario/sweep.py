"""The exhaustive decision sweep's domain (``pi-cosim sweep``, ``docs/sweep.md``).

A point is one interrupt arriving at L1's local APIC while L2 runs, in one initial state: the
four swept VM-execution controls, the vector, the posted-interrupt notification vector (NV, all
16 bits), L1's processor-priority class (made by TPR with an empty ISR, or by an in-service
vector with TPR 0), the nested descriptor's PIR and ON, and the route by which the interrupt
reaches KVM. A control combination that fails the VM-entry checks is not a point of that cross
(a scenario cannot start in L2 on it): it is an *entry check* instead, a point where L1 executes
VMLAUNCH and both sides must fail it with the same VM-instruction error.

A mode is a list of parts; a part is the full cross of its axes (the last axis varies fastest).
Points are numbered across the mode's parts in order, so that ``--shard K/N`` is a contiguous
range of numbers and every run of the same mode numbers every point the same way.

Everything not swept is fixed (:data:`FIXED`): the descriptor at 0x10000 (MAXPHYADDR 46), "use
TPR shadow" on, interrupt-window exiting off, L2 with RFLAGS.IF = 1 and an empty virtual APIC,
L1's IRR and TMR empty (edge-triggered), the non-empty PIR = {:data:`POSTED_VECTOR`}.
"""

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from cosim.scenario.format import (
    ROUTES,
    InterruptEvent,
    L1Apic,
    L2State,
    PidState,
    Scenario,
    Vmcs12Controls,
    VmEntryEvent,
)

__all__ = ["CONTROLS", "FIXED", "MODES", "PI_ON", "POSTED_VECTOR", "Axis", "Mode", "Part",
           "Point", "VALID_COMBOS", "INVALID_COMBOS", "combo_name", "mode"]

#: The swept controls: bit i of a combination is ``CONTROLS[i]`` (the vmcs12 keys).
CONTROLS = ("external_interrupt_exiting", "acknowledge_interrupt_on_exit",
            "process_posted_interrupts", "virtual_interrupt_delivery")
_SHORT = ("EIE", "AIE", "PPI", "VID")
DESC_ADDR = 0x10000
MAXPHYADDR = 46
#: The vector a non-empty PIR holds (the seed's).
POSTED_VECTOR = 0x41
#: What every point has in common, as the text says it.
FIXED = (f"descriptor at {DESC_ADDR:#x} (MAXPHYADDR {MAXPHYADDR}); use TPR shadow = 1; "
         "interrupt-window exiting = 0; L2: RFLAGS.IF = 1, VIRR/VISR empty, VTPR 0, RVI = SVI "
         "= 0; L1: IRR and TMR empty, spurious vector 0xff; a non-empty PIR is "
         f"{{{POSTED_VECTOR:#04x}}}; the descriptor's NV field = NV[7:0]")


def _vmcs12(combo: int, nv: int) -> Vmcs12Controls:
    switches = {name: bool(combo >> i & 1) for i, name in enumerate(CONTROLS)}
    return Vmcs12Controls(**switches, tpr_shadow=True, posted_intr_nv=nv,
                          posted_intr_desc_addr=DESC_ADDR)


def combo_name(combo: int) -> str:
    """``EIE+AIE+PPI+VID``-style name of a control combination (``none`` for 0)."""
    return "+".join(s for i, s in enumerate(_SHORT) if combo >> i & 1) or "none"


#: Every combination of the four controls, split by the VM-entry checks (SDM 26.2.1.1, as
#: ``Vmcs12Controls.entry_check_failure`` states them), with NV bits 15:8 zero.
VALID_COMBOS = tuple(c for c in range(16)
                     if _vmcs12(c, 0).entry_check_failure(MAXPHYADDR) is None)
INVALID_COMBOS = tuple(c for c in range(16) if c not in VALID_COMBOS)
#: The valid combination with posted interrupts on (all four controls).
PI_ON = next(c for c in VALID_COMBOS if c >> CONTROLS.index("process_posted_interrupts") & 1)


@dataclass(frozen=True, slots=True)
class Point:
    """One point of the sweep: an initial state and its event (``index`` numbers it in its
    mode). ``vector`` and ``route`` are None for an entry check (the event is VMLAUNCH)."""

    index: int
    part: str
    controls: int
    vector: int | None
    nv: int
    ppr_class: int
    ppr_source: str  # "tpr": TPR = class << 4, ISR empty; "isr": ISR = {class << 4}, TPR 0
    pir: bool  # PIR = {POSTED_VECTOR} (else empty)
    on: bool
    route: str | None

    def has(self, control: str) -> bool:
        return bool(self.controls >> CONTROLS.index(control) & 1)

    @property
    def entry_check(self) -> bool:
        return self.vector is None

    @property
    def hardware_key(self) -> tuple:
        """Everything the hardware sees: on the hardware every route is the same (the
        interrupt arrives at L1's local APIC), so points that differ only in the route are
        one hardware job."""
        return (self.controls, self.vector, self.nv, self.ppr_class, self.ppr_source, self.pir,
                self.on)

    def scenario(self) -> Scenario:
        c = self.ppr_class << 4
        apic = (L1Apic(tpr=c) if self.ppr_source == "tpr"
                else L1Apic(isr=frozenset((c,))))
        if self.vector is None:
            events: tuple = (VmEntryEvent(),)
        else:
            assert self.route is not None
            events = (InterruptEvent(vector=self.vector, route=self.route),)
        return Scenario(
            name=f"sweep-{self.part}-{self.index}", path=f"<sweep point {self.index}>",
            start="l1" if self.vector is None else "l2", maxphyaddr=MAXPHYADDR, l1_apic=apic,
            vmcs12=_vmcs12(self.controls, self.nv),
            pid=PidState(pir=frozenset((POSTED_VECTOR,)) if self.pir else frozenset(),
                         on=self.on, nv=self.nv & 0xFF),
            l2=L2State(rflags_if=True), events=events)

    def to_json(self) -> dict[str, Any]:
        """The input fields (``controls`` by name, the switches as booleans)."""
        return {"index": self.index, "part": self.part, "controls": combo_name(self.controls),
                **{name: self.has(name) for name in CONTROLS},
                "vector": self.vector, "nv": self.nv, "ppr_class": self.ppr_class,
                "ppr_source": self.ppr_source, "pir": sorted({POSTED_VECTOR} if self.pir else ()),
                "on": self.on, "route": self.route}

    def describe(self) -> str:
        """One line: what this point is."""
        what = ("VMLAUNCH" if self.vector is None
                else f"interrupt {self.vector:#04x} by {self.route}")
        priority = (f"TPR {self.ppr_class << 4:#04x}" if self.ppr_source == "tpr"
                    else f"ISR {{{self.ppr_class << 4:#04x}}}")
        return (f"point {self.index} ({self.part}): {what}; controls {combo_name(self.controls)}"
                f"; NV {self.nv:#06x}; L1 {priority} (PPR class {self.ppr_class}); PIR "
                f"{f'{{{POSTED_VECTOR:#04x}}}' if self.pir else '{}'} ON {int(self.on)}")


@dataclass(frozen=True)
class Axis:
    """One swept input: its name, its values, and how the text states them."""

    name: str
    values: tuple
    text: str


@dataclass(frozen=True)
class Part:
    """The full cross of ``axes`` (the last varies fastest); ``make(values, index)`` builds
    the point from one value per axis."""

    name: str
    text: str
    axes: tuple[Axis, ...]
    make: Callable[..., Point]

    @property
    def size(self) -> int:
        n = 1
        for axis in self.axes:
            n *= len(axis.values)
        return n

    def points(self, first: int, lo: int, hi: int) -> Iterator[Point]:
        """The points numbered ``lo .. hi - 1`` of this part, which starts at number
        ``first`` of its mode."""
        # the first point's digit on each axis (mixed radix, the last axis fastest); the
        # cross then runs on from there
        digits, rest = [], lo - first
        for axis in reversed(self.axes):
            rest, digit = divmod(rest, len(axis.values))
            digits.append(digit)
        digits.reverse()
        for i, combo in zip(range(lo, hi), _from(self.axes, digits), strict=False):
            yield self.make(i, self.name, *combo)


def _from(axes: tuple[Axis, ...], digits: list[int]) -> Iterator[tuple]:
    """The cross of ``axes`` in order (the last fastest), from the combination ``digits``."""
    if not axes:
        yield ()
        return
    first, others, start = axes[0], axes[1:], digits[0]
    for tail in _from(others, digits[1:]):  # the first value: the rest from their digits
        yield (first.values[start], *tail)
    for value in first.values[start + 1:]:
        for tail in itertools.product(*(a.values for a in others)):
            yield (value, *tail)


# --- the axes ---------------------------------------------------------------------------------

_VECTORS = Axis("vector", tuple(range(16, 256)), "every vector 16-255 (240)")
_NV_LOW = Axis("nv_low", tuple(range(256)), "every NV[7:0] 0-255 (256)")
_NV_MATCH = Axis("nv_match", (True, False),
                 "NV[7:0] = the vector, and NV[7:0] = the vector XOR 1 (2)")
_PPR_TPR = Axis("ppr", tuple(("tpr", c) for c in range(16)),
                "every L1 PPR class 0-15, made by TPR = class << 4 with an empty ISR (16)")
_PPR_ALL = Axis("ppr", _PPR_TPR.values + tuple(("isr", c) for c in range(1, 16)),
                "every L1 PPR class 0-15 made by TPR (ISR empty), and 1-15 made by an in-service "
                "vector class << 4 with TPR 0 (31)")
_PID_ALL = (((False, False), (False, True), (True, False), (True, True)))
_PID = Axis("pid", _PID_ALL, f"PIR empty or {{{POSTED_VECTOR:#04x}}}, each with ON 0 and 1 (4)")
_PID_BASE = Axis("pid", ((False, False),), "PIR empty, ON 0 (1)")
_ROUTES = Axis("route", ROUTES, f"the three routes: {', '.join(ROUTES)} (3)")
_OTHER_VALID = tuple(c for c in VALID_COMBOS if c != PI_ON)


def _combos_axis(combos: tuple[int, ...], what: str) -> Axis:
    return Axis("controls", combos, f"{what}: {', '.join(map(combo_name, combos))} "
                                    f"({len(combos)})")


def _interrupt(index, part, controls, vector, nv_low, nv_high, ppr, pid, route) -> Point:
    return Point(index, part, controls, vector, nv_high << 8 | nv_low, ppr[1], ppr[0], pid[0],
                 pid[1], route)


def _matching(index, part, controls, vector, nv_match, nv_high, ppr, pid, route) -> Point:
    nv_low = vector if nv_match else vector ^ 1
    return _interrupt(index, part, controls, vector, nv_low, nv_high, ppr, pid, route)


def _decision(index, part, vector, nv_low, ppr, route) -> Point:
    return _interrupt(index, part, PI_ON, vector, nv_low, 0, ppr, (False, False), route)


def _context(index, part, vector, nv_match, ppr_pid, route) -> Point:
    ppr, pid = ppr_pid
    return _matching(index, part, PI_ON, vector, nv_match, 0, ppr, pid, route)


def _entry(index, part, case) -> Point:
    controls, nv = case
    return Point(index, part, controls, None, nv, 0, "tpr", False, False, None)


_NV_HIGH = Axis("nv_high", (0, 1), "NV[15:8] = 0 and 0x01 (2)")
_ENTRY = Axis("case", tuple((c, 0) for c in INVALID_COMBOS)
              + tuple((PI_ON, high << 8) for high in (0x01, 0x80, 0xFF)),
              f"every control combination that fails the VM-entry checks "
              f"({len(INVALID_COMBOS)}: {', '.join(map(combo_name, INVALID_COMBOS))}), and "
              f"{combo_name(PI_ON)} with NV[15:8] = 0x01, 0x80, 0xff (3); L1 executes VMLAUNCH "
              "and both sides must fail it with the same VM-instruction error")

DECISION = Part("decision", "the decision cross: one interrupt while L2 runs with posted "
                f"interrupts on ({combo_name(PI_ON)}), NV[15:8] = 0, PIR empty, ON 0",
                (_VECTORS, _NV_LOW, _PPR_TPR, _ROUTES), _decision)
CONTEXT = Part("context", f"{combo_name(PI_ON)} in every other L1 priority and descriptor "
               "state: every (PPR, PIR/ON) pair but (TPR, PIR empty ON 0), which 'decision' "
               "covers, NV[15:8] = 0",
               (_VECTORS, _NV_MATCH,
                Axis("ppr_pid", tuple((p, d) for p in _PPR_ALL.values for d in _PID_ALL
                                      if not (p[0] == "tpr" and d == (False, False))),
                     f"{_PPR_ALL.text} x {_PID.text}, without (TPR, PIR empty ON 0) (108)"),
                _ROUTES), _context)
CONTROL_COMBOS = Part("controls", "every other valid control combination, PIR empty, ON 0",
                      (_combos_axis(_OTHER_VALID, "every other valid combination"), _VECTORS,
                       _NV_MATCH, _NV_HIGH, _PPR_TPR, _PID_BASE, _ROUTES), _matching)
ENTRY = Part("entry", "VM-entry checks", (_ENTRY,), _entry)
FULL_PI = Part("full-pi", f"{combo_name(PI_ON)}: the whole product",
               (_combos_axis((PI_ON,), "posted interrupts on"), _VECTORS, _NV_LOW,
                Axis("nv_high", (0,), "NV[15:8] = 0 (non-zero fails entry: 'entry') (1)"),
                _PPR_ALL, _PID, _ROUTES), _interrupt)
FULL_CONTROLS = Part("full-controls", "every other valid combination: the whole product",
                     (_combos_axis(_OTHER_VALID, "every other valid combination"), _VECTORS,
                      _NV_LOW, _NV_HIGH, _PPR_ALL, _PID, _ROUTES), _interrupt)


@dataclass(frozen=True)
class Mode:
    """A named list of parts, numbered across in order. A selection of parts (:func:`mode`
    with ``parts``) keeps the whole mode's numbers, so a point has the same number however it
    was chosen; its positions (``points(lo, hi)``, shards) run over the selected parts only."""

    name: str
    parts: tuple[Part, ...]
    offsets: tuple[int, ...] = ()  # each part's first number in the whole mode

    def __post_init__(self):
        if not self.offsets:
            starts = itertools.accumulate((p.size for p in self.parts[:-1]), initial=0)
            object.__setattr__(self, "offsets", tuple(starts))

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)

    def points(self, lo: int = 0, hi: int | None = None) -> Iterator[Point]:
        """The points at positions ``lo .. hi - 1`` of this mode (or selection), in order."""
        hi = self.size if hi is None else hi
        at = 0  # the position of the part's first point
        for offset, part in zip(self.offsets, self.parts, strict=True):
            end = at + part.size
            if lo < end and hi > at:
                yield from part.points(offset, offset + max(lo, at) - at,
                                       offset + min(hi, end) - at)
            at = end

    def point(self, index: int) -> Point:
        """The point numbered ``index`` (in the whole mode's numbering)."""
        for offset, part in zip(self.offsets, self.parts, strict=True):
            if offset <= index < offset + part.size:
                return next(part.points(offset, index, index + 1))
        raise IndexError(f"no point {index} in {self.name!r}")

    def describe(self) -> list[str]:
        """What the mode covers, part by part, with sizes and the numbers of the points."""
        lines = []
        for offset, part in zip(self.offsets, self.parts, strict=True):
            lines.append(f"{part.name}: {part.text}: {part.size:,} points = "
                         + " x ".join(f"{len(a.values)}" for a in part.axes)
                         + f" (points {offset:,}..{offset + part.size - 1:,})")
            lines += [f"    {a.name}: {a.text}" for a in part.axes]
        return lines


MODES = {
    "default": Mode("default", (DECISION, CONTEXT, CONTROL_COMBOS, ENTRY)),
    "full": Mode("full", (FULL_PI, FULL_CONTROLS, ENTRY)),
}


def mode(name: str, parts: tuple[str, ...] = ()) -> Mode:
    """Mode ``name``, or only its ``parts`` (in the mode's order)."""
    base = MODES[name]
    if not parts:
        return base
    unknown = [p for p in parts if p not in {q.name for q in base.parts}]
    if unknown:
        raise KeyError(unknown[0])
    chosen = [(o, p) for o, p in zip(base.offsets, base.parts, strict=True) if p.name in parts]
    return Mode(f"{name}:{','.join(p.name for _, p in chosen)}", tuple(p for _, p in chosen),
                tuple(o for o, _ in chosen))

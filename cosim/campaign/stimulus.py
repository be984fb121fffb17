"""Constrained-random stimulus for ``pi-cosim regress`` (``docs/regress.md``): scenarios made in
memory from a seed, only sequences that can happen.

Case ``index`` of seed ``seed`` is a function of the two numbers alone (its own
``random.Random``), so a case reproduces without the cases before it, in any worker, shard or
order. The initial state is drawn around the notification vector (NV): vectors are drawn from a
palette that makes the decisions that matter likely (NV itself, its neighbour, vectors in the
classes just above and at L1's PPR class, the descriptor's vectors, vectors 0-15 in PIR). L2's
state is consistent (RVI = the highest VIRR bit, SVI = the highest VISR bit) except in a small
share of cases that exercise C9.

The mode rules of the scenario format (``docs/scenario-format.md``) hold by construction: the
events are drawn one at a time from those that can happen in the guest that runs, and the guest
that runs is predicted by the post-patch KVM model (``cosim.reference.kvm.KvmReference``), the
version that agrees with the hardware on modes. The hardware remains the reference: where it
runs another guest than predicted, its testbench stops the case at the impossible event, and the
regression counts it (the scoreboard judges the events before it).

A *race* (C14, PI-9) is another agent's post during one event, at a cycle offset of that event
(a ``[[races]]`` entry, :class:`~cosim.scenario.format.Race`); its vector is one no other part of
the case holds, so where it ends up says on which side of the processing it landed.
"""

import random
from dataclasses import dataclass, replace

from cosim.reference.kvm import KvmReference
from cosim.scenario.drain import presented_vector
from cosim.scenario.format import (
    L1,
    ROUTES,
    EoiEvent,
    Event,
    InterruptEvent,
    L1Apic,
    L2EoiEvent,
    L2State,
    L2TprEvent,
    PidState,
    PostEvent,
    Race,
    Scenario,
    StiEvent,
    TprEvent,
    Vmcs12Controls,
    VmEntryEvent,
)
from cosim.scenario.outcome import Outcome
from cosim.scenario.sweep import CONTROLS, INVALID_COMBOS, PI_ON, VALID_COMBOS
from software_model import KernelVersion

__all__ = ["DESC_ADDR", "MAX_EVENTS", "RACE_OFFSETS", "RACE_VECTOR", "Case", "generate"]

DESC_ADDR = 0x10000
MAXPHYADDR = 46
#: The most events a random case has (the harness takes more; short cases shrink faster and
#: reach the corner cases as often).
MAX_EVENTS = 6
#: The cycle offsets a race post takes, from the event's first cycle: posted-interrupt
#: processing of one word runs within them at every wait-state seed the regression uses.
RACE_OFFSETS = tuple(range(17))
#: The racing agent's vector: no other part of a case holds it (the palette leaves it out).
RACE_VECTOR = 0x52
_PREDICTOR = KernelVersion.POST_PATCH


@dataclass(frozen=True)
class Case:
    """Case ``index`` of seed ``seed``: a scenario (with at most one race) and the memory's
    wait-state seed (0: no wait states)."""

    seed: int
    index: int
    scenario: Scenario
    memory_seed: int = 0


def _combo_controls(combo: int, rng: random.Random, nv: int) -> Vmcs12Controls:
    switches = {name: bool(combo >> i & 1) for i, name in enumerate(CONTROLS)}
    return Vmcs12Controls(**switches, tpr_shadow=rng.random() < 0.95,
                          interrupt_window_exiting=rng.random() < 0.1, posted_intr_nv=nv,
                          posted_intr_desc_addr=DESC_ADDR)


class _Palette:
    """Vectors drawn around NV and L1's priority."""

    def __init__(self, rng: random.Random, nv: int, ppr_class: int):
        self.rng, self.nv, self.ppr_class = rng, nv, ppr_class

    def vector(self, low: int = 16) -> int:
        rng, nv = self.rng, self.nv
        above = min(self.ppr_class + 1, 15)
        choices = [nv, nv ^ 1, (above << 4) | rng.randrange(16),
                   (max(self.ppr_class, 1) << 4) | rng.randrange(16), rng.randrange(16, 256),
                   rng.randrange(16, 256)]
        while True:
            v = rng.choice(choices) if rng.random() < 0.85 else rng.randrange(low, 256)
            if v >= low and v != RACE_VECTOR:
                return v
            choices = [rng.randrange(16, 256)]

    def vectors(self, most: int, low: int = 16) -> frozenset[int]:
        return frozenset(self.vector(low) for _ in range(self.rng.randrange(most + 1)))


def _initial(rng: random.Random, seed: int, index: int) -> Scenario:
    start = "l2" if rng.random() < 0.7 else "l1"
    roll = rng.random()
    if start == "l1" and roll < 0.08:
        combo = rng.choice(INVALID_COMBOS)  # VMLAUNCH must fail on both sides
    elif roll < 0.6:
        combo = PI_ON
    else:
        combo = rng.choice(VALID_COMBOS)
    nv = 0xFF if rng.random() < 0.2 else rng.randrange(16, 256)
    if start == "l1" and rng.random() < 0.05:
        nv |= rng.choice((0x01, 0x80, 0xFF)) << 8  # NV bits 15:8 non-zero: entry fails
    controls = _combo_controls(combo, rng, nv)
    if start == "l2" and controls.entry_check_failure(MAXPHYADDR) is not None:
        start = "l1"  # cannot start in L2 on it: L1 runs VMLAUNCH instead
    ppr_class = rng.choice((0, 0, 0, rng.randrange(16)))
    palette = _Palette(rng, nv & 0xFF, ppr_class)
    isr = frozenset((ppr_class << 4 | rng.randrange(16),)) if (
        ppr_class and rng.random() < 0.4) else frozenset()
    tpr = (0 if isr else ppr_class << 4) | (rng.randrange(16) if rng.random() < 0.3 else 0)
    irr = palette.vectors(1) if rng.random() < 0.2 else frozenset()
    tmr = frozenset(v for v in irr | isr if rng.random() < 0.3)
    pir = palette.vectors(2)
    if rng.random() < 0.08:
        low = rng.choice((0, rng.randrange(16)))  # C7; PIR = {0} alone is D2
        pir = frozenset({low}) if rng.random() < 0.5 else pir | {low}
    pid = PidState(pir=pir, on=rng.random() < 0.7, sn=rng.random() < 0.1, nv=nv & 0xFF)
    virr = palette.vectors(1) if rng.random() < 0.3 else frozenset()
    visr = frozenset((palette.vector(),)) if rng.random() < 0.2 else frozenset()
    rvi = max(virr, default=0)
    if virr and rng.random() < 0.15:
        rvi = rng.randrange(rvi)  # C9: RVI below VIRR's highest bit (a VMM's inconsistency)
    svi = max(visr, default=0)
    if not controls.virtual_interrupt_delivery:
        rvi = svi = 0  # the guest interrupt status is used only with VID (SDM 26.3.2.5)
    vtpr = rng.randrange(16) << 4 if rng.random() < 0.3 else 0
    l2 = L2State(virr=virr, visr=visr, vtpr=vtpr, rvi=rvi, svi=svi,
                 rflags_if=rng.random() < 0.85)
    return Scenario(name=f"regress-{seed}-{index}", path=f"<regress seed {seed} case {index}>",
                    start=start, maxphyaddr=MAXPHYADDR,
                    l1_apic=L1Apic(irr=irr, isr=isr, tmr=tmr, tpr=tpr), vmcs12=controls,
                    pid=pid, l2=l2)


def _event(rng: random.Random, palette: _Palette, mode: str, now: Outcome | None,
           first: bool) -> Event:
    """One event that can happen while ``mode`` runs (``now``: the predicted state)."""
    weights: list[tuple[float, str]] = [(5, "interrupt"), (1.2, "post")]
    if mode == L1:
        weights += [(3 if now is not None and now.l1_apic.isr else 0.4, "eoi"), (0.8, "tpr"),
                    (2 if now is not None and presented_vector(now) is not None else 0.3, "sti"),
                    (3, "vm_entry")]
    else:
        weights += [(2 if now is not None and now.l2.visr else 0.3, "l2_eoi"), (0.8, "l2_tpr")]
    kind = rng.choices([k for _w, k in weights], [w for w, _k in weights])[0]
    match kind:
        case "interrupt":
            return InterruptEvent(vector=palette.vector(), route=rng.choice(ROUTES),
                                  in_l0=not first and rng.random() < 0.08)
        case "post":
            return PostEvent(vector=palette.vector())
        case "eoi":
            return EoiEvent()
        case "sti":
            return StiEvent()
        case "tpr":
            return TprEvent(value=rng.randrange(16) << 4 | rng.choice((0, 0, rng.randrange(16))))
        case "vm_entry":
            return VmEntryEvent()
        case "l2_eoi":
            return L2EoiEvent()
        case _:
            return L2TprEvent(value=rng.randrange(16) << 4)


def generate(seed: int, index: int) -> Case:
    """Case ``index`` of ``seed`` (deterministic in the two numbers alone)."""
    rng = random.Random(seed << 32 | index)
    base = _initial(rng, seed, index)
    palette = _Palette(rng, base.vmcs12.posted_intr_nv & 0xFF, base.l1_apic.tpr >> 4)
    ref = KvmReference(base, _PREDICTOR)
    events: list[Event] = []
    now: Outcome | None = None
    n = rng.choice((1, 1, 2, 2, 3, 3, 4, 5, MAX_EVENTS))
    if base.start == L1 and base.vmcs12.entry_check_failure(base.maxphyaddr) is not None:
        n = 1
    for i in range(n):
        event = (VmEntryEvent() if i == 0 and base.start == L1 and rng.random() < 0.7
                 else _event(rng, palette, ref.mode(), now, i == 0))
        events.append(event)
        now = ref.apply(event)
        if now.vmentry_error is not None:
            break  # the same vmcs12 fails the same checks again
    races: tuple[Race, ...] = ()
    if rng.random() < 0.25:
        races = (Race(event=rng.randrange(len(events)), cycle=rng.choice(RACE_OFFSETS),
                      vector=RACE_VECTOR),)
    memory_seed = rng.randrange(1, 1 << 32) if rng.random() < 0.5 else 0
    return Case(seed, index, replace(base, events=tuple(events), races=races), memory_seed)

"""The scoreboard: the hardware's and one KVM version's outcomes, compared after every event.

Every differing field is classified:

- a field a deviation (``cosim.deviations``) claims, with its predicate holding on this event,
  is that deviation;
- a field that differed at the previous event as deviation X, with the same two values now
  (the deviation's effect persisting unchanged), stays X;
- anything else is a divergence.

A :class:`Verdict` is the result for one scenario and version; :meth:`Verdict.to_json` is the
``pi-cosim replay --json`` document of ``DESIGN.md`` section 6.
"""

from dataclasses import dataclass

from software_model import KernelVersion

from .deviations import DEVIATIONS, Context
from .outcome import Outcome, differences, to_json
from .scenario import Event, Scenario

__all__ = ["EventResult", "Verdict", "compare"]


@dataclass(frozen=True)
class EventResult:
    """One event: both outcomes, the differing fields and how each is classified
    (``classes[field]`` is a deviation ID, or ``None`` for a divergence)."""

    event: Event
    hardware: Outcome
    software: Outcome
    differences: tuple[str, ...]
    classes: tuple[tuple[str, str | None], ...]

    @property
    def divergent(self) -> tuple[str, ...]:
        return tuple(f for f, c in self.classes if c is None)

    @property
    def deviations(self) -> tuple[str, ...]:
        return tuple(sorted({c for _, c in self.classes if c is not None}))


@dataclass(frozen=True)
class Verdict:
    """A scenario's hardware run against one KVM version."""

    scenario: Scenario
    version: KernelVersion
    sim: str
    seed: int
    events: tuple[EventResult, ...]
    expect_mismatches: tuple[str, ...] | None  # None without [expect]

    @property
    def agree(self) -> bool:
        """No divergence: every difference (if any) is a named deviation."""
        return not any(e.divergent for e in self.events)

    @property
    def expect_ok(self) -> bool | None:
        return None if self.expect_mismatches is None else not self.expect_mismatches

    @property
    def deviations(self) -> tuple[str, ...]:
        return tuple(sorted({d for e in self.events for d in e.deviations}))

    @property
    def ok(self) -> bool:
        """Agreement and, with ``[expect]``, the expectation holds (exit status 0)."""
        return self.agree and self.expect_ok is not False

    def to_json(self) -> dict:
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
            "events": [{
                "event": e.event.to_dict(),
                "hardware": to_json(e.hardware),
                "software": to_json(e.software),
                "differences": list(e.differences),
                "divergences": list(e.divergent),
                "deviations": {f: c for f, c in e.classes if c is not None},
            } for e in self.events],
        }


def compare(scenario: Scenario, version: KernelVersion, sim: str, seed: int,
            hardware: tuple[Outcome, ...], software: tuple[Outcome, ...]) -> Verdict:
    """Compare the outcomes event by event and classify every difference."""
    results: list[EventResult] = []
    previous: EventResult | None = None
    for event, hw, sw in zip(scenario.events, hardware, software, strict=True):
        diffs = differences(hw, sw)
        classes: dict[str, str | None] = {}
        if previous is not None:
            carried = dict(previous.classes)
            for name in diffs:
                field = name.split(".")[0] if name.startswith("vmexit.") else name
                if (carried.get(name) is not None and hw.get(field) == previous.hardware.get(field)
                        and sw.get(field) == previous.software.get(field)):
                    classes[name] = carried[name]
        ctx = Context(scenario, event, None if previous is None else previous.software, hw, sw)
        open_fields = {d for d in diffs if d not in classes}
        for deviation in DEVIATIONS:
            for name in deviation.explains(ctx, open_fields):
                classes[name] = deviation.id
            open_fields -= set(classes)
        for name in open_fields:
            classes[name] = None
        previous = EventResult(event, hw, sw, tuple(diffs),
                               tuple((d, classes[d]) for d in diffs))
        results.append(previous)
    mismatches = None if scenario.expect is None else tuple(
        scenario.expect.mismatches(hardware[-1]))
    return Verdict(scenario, version, sim, seed, tuple(results), mismatches)

"""The outcome record's vector-set helpers and JSON form (the hot paths of every outcome)."""

import random
from dataclasses import replace

from cosim.scenario.outcome import (
    FIELDS,
    L1ApicOutcome,
    L2Outcome,
    Outcome,
    PidOutcome,
    VmExit,
    bitmap,
    differences,
    to_json,
    vectors,
)


def test_vectors_and_bitmap_are_inverse():
    assert vectors(0) == frozenset() and bitmap(()) == 0
    assert vectors(1 | 1 << 255) == {0, 255}
    rng = random.Random(7)
    for _ in range(500):
        chosen = frozenset(rng.sample(range(256), rng.randint(0, 40)))
        assert vectors(bitmap(chosen)) == chosen


def test_to_json_of_every_field_kind():
    """The per-class converter: a VM exit or none, sets sorted, tuples as lists, plain values
    as they are; the inverse is Outcome.from_json."""
    outcome = Outcome(
        vmexit=VmExit(reason=1, intr_info=0x80000041), vmentry_error=None, mode="l1",
        l1_apic=L1ApicOutcome(irr=frozenset({0x61, 0x21}), isr=frozenset(), ppr=0x20,
                              eoi_messages=(0x30,)),
        pid=PidOutcome(pir=frozenset({0xf0, 0x41}), on=True, sn=False),
        l2=L2Outcome(virr=frozenset({0x52}), visr=frozenset({0x33}), rvi=0x52, svi=0x33,
                     vppr=0x30, delivered=(0x33, 0x41)))
    expected = {
        "vmexit": {"reason": 1, "intr_info": 0x80000041, "qualification": 0},
        "vmentry_error": None, "mode": "l1",
        "l1_apic": {"irr": [0x21, 0x61], "isr": [], "ppr": 0x20, "eoi_messages": [0x30]},
        "pid": {"pir": [0x41, 0xf0], "on": True, "sn": False},
        "l2": {"virr": [0x52], "visr": [0x33], "rvi": 0x52, "svi": 0x33, "vppr": 0x30,
               "delivered": [0x33, 0x41]}}
    assert to_json(outcome) == expected
    assert to_json(replace(outcome, vmexit=None))["vmexit"] is None
    assert Outcome.from_json(to_json(outcome)) == outcome
    assert to_json([outcome, None, (1, 2)]) == [expected, None, [1, 2]]


def test_differences_names_every_differing_field_in_order():
    """Against the definition: each dotted field whose values differ (a VM exit on both
    sides by its own fields), in FIELDS order, for random pairs of outcomes."""
    rng = random.Random(3)

    def some() -> frozenset[int]:
        return frozenset(rng.sample(range(16, 24), rng.randint(0, 2)))

    def outcome() -> Outcome:
        return Outcome(
            vmexit=rng.choice([None, VmExit(reason=1, intr_info=rng.choice([0, 0x80000041])),
                               VmExit(reason=rng.choice([1, 2]), intr_info=0)]),
            vmentry_error=rng.choice([None, 7]), mode=rng.choice(["l1", "l2"]),
            l1_apic=L1ApicOutcome(irr=some(), isr=some(), ppr=rng.choice([0, 16]),
                                  eoi_messages=rng.choice([(), (17,)])),
            pid=PidOutcome(pir=some(), on=rng.random() < 0.5, sn=rng.random() < 0.5),
            l2=L2Outcome(virr=some(), visr=some(), rvi=rng.choice([0, 17]),
                         svi=rng.choice([0, 18]), vppr=0, delivered=rng.choice([(), (17,)])))

    def defined(a: Outcome, b: Outcome) -> list[str]:
        names = []
        for name in FIELDS:
            x, y = a.get(name), b.get(name)
            if x != y and name == "vmexit" and x is not None and y is not None:
                names += [f"vmexit.{f}" for f in ("reason", "intr_info", "qualification")
                          if getattr(x, f) != getattr(y, f)]
            elif x != y:
                names.append(name)
        return names

    pairs = [(outcome(), outcome()) for _ in range(3000)]
    assert all(differences(a, b) == defined(a, b) for a, b in pairs)
    assert differences(pairs[0][0], pairs[0][0]) == []
    a = pairs[0][0]
    assert differences(a, replace(a, pid=replace(a.pid, on=not a.pid.on))) == ["pid.on"]

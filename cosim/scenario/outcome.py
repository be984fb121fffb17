"""The outcome record compared after every event (``docs/scenario-format.md`` and ``docs/cli.md``).

Both models report one :class:`Outcome` per event; :func:`differences` names the fields that
differ with the dotted names of the JSON contract (``l2.virr``, ``vmexit.intr_info``).
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

__all__ = ["FIELDS", "L1ApicOutcome", "L2Outcome", "Outcome", "PidOutcome", "VmExit",
           "bitmap", "differences", "to_json", "vectors"]


def bitmap(vectors) -> int:
    """A 256-bit register value from a set of vectors (bit v = vector v)."""
    value = 0
    for v in vectors:
        value |= 1 << v
    return value


@functools.lru_cache(maxsize=1 << 16)
def vectors(value: int) -> frozenset[int]:
    """The set of vectors whose bits are set in a 256-bit register value (one step per set
    bit, not per vector; cached, since the same few registers recur in every outcome record
    of a sweep: the sets are immutable, so sharing them is safe)."""
    found = []
    while value:
        lowest = value & -value
        found.append(lowest.bit_length() - 1)
        value ^= lowest
    return frozenset(found)


@dataclass(frozen=True, kw_only=True)
class VmExit:
    """A VM exit to L1: basic exit reason, interruption information, exit qualification."""

    reason: int
    intr_info: int
    qualification: int = 0


@dataclass(frozen=True, kw_only=True)
class L1ApicOutcome:
    irr: frozenset[int]
    isr: frozenset[int]
    ppr: int
    #: EOI messages to the I/O APICs so far, in order: the vectors of level-triggered
    #: interrupts (TMR bit set) whose in-service bit an EOI cleared (SDM 10.8.5)
    eoi_messages: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class PidOutcome:
    """The nested posted-interrupt descriptor (at ``vmcs12.posted_intr_desc_addr``)."""

    pir: frozenset[int]
    on: bool
    sn: bool


@dataclass(frozen=True, kw_only=True)
class L2Outcome:
    virr: frozenset[int]
    visr: frozenset[int]
    rvi: int
    svi: int
    vppr: int
    delivered: tuple[int, ...]  # vectors delivered through L2's IDT so far, in order


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """The state after one event. ``vmexit`` is the VM exit to L1 that the event caused (the
    last one if several); ``vmentry_error`` the VM-instruction error of a failed VM entry;
    ``mode`` the guest that runs afterwards (``"l1"`` or ``"l2"``)."""

    vmexit: VmExit | None
    vmentry_error: int | None
    mode: str
    l1_apic: L1ApicOutcome
    pid: PidOutcome
    l2: L2Outcome

    @classmethod
    def from_json(cls, data: dict) -> "Outcome":
        """The inverse of :func:`to_json` (outcomes cross the cocotb process boundary so)."""
        exit_ = data["vmexit"]
        a, p, l2 = data["l1_apic"], data["pid"], data["l2"]
        return cls(
            vmexit=None if exit_ is None else VmExit(**exit_),
            vmentry_error=data["vmentry_error"],
            mode=data["mode"],
            l1_apic=L1ApicOutcome(irr=frozenset(a["irr"]), isr=frozenset(a["isr"]),
                                  ppr=a["ppr"], eoi_messages=tuple(a["eoi_messages"])),
            pid=PidOutcome(pir=frozenset(p["pir"]), on=p["on"], sn=p["sn"]),
            l2=L2Outcome(virr=frozenset(l2["virr"]), visr=frozenset(l2["visr"]), rvi=l2["rvi"],
                         svi=l2["svi"], vppr=l2["vppr"], delivered=tuple(l2["delivered"])),
        )

    def get(self, dotted: str) -> Any:
        """The value of a field by its dotted name (``"l2.rvi"``)."""
        value: Any = self
        for part in dotted.split("."):
            value = getattr(value, part)
        return value


#: The outcome's top-level fields in order, each with its record's field names (``l1_apic``:
#: ``irr``, ``isr``, ...) or None where the field is one value (a VM exit is one field).
_RECORDS = tuple((f.name, tuple(g.name for g in fields(f.type))
                  if isinstance(f.type, type) and is_dataclass(f.type) else None)
                 for f in fields(Outcome))

#: The dotted names of the outcome's fields, in order (``l2.virr``): a record's fields are
#: expanded, a VM exit is one field (compared field by field by :func:`differences`).
FIELDS = tuple(name for top, sub in _RECORDS
               for name in ([f"{top}.{g}" for g in sub] if sub is not None else [top]))


def differences(a: Outcome, b: Outcome) -> list[str]:
    """Dotted names of the fields that differ, in :data:`FIELDS` order; a VM exit present on
    both sides is compared field by field (``vmexit.intr_info``). Records that are equal as a
    whole are skipped at the cost of one comparison (the judge asks this of every outcome
    pair that differs somewhere)."""
    diffs: list[str] = []
    if a == b:  # the common case, at the cost of one dataclass comparison
        return diffs
    for top, sub in _RECORDS:
        x, y = getattr(a, top), getattr(b, top)
        if x == y:
            continue
        if sub is not None:
            diffs.extend(f"{top}.{g}" for g in sub if getattr(x, g) != getattr(y, g))
        elif top == "vmexit" and x is not None and y is not None:
            diffs.extend(f"vmexit.{f.name}" for f in fields(VmExit)
                         if getattr(x, f.name) != getattr(y, f.name))
        else:
            diffs.append(top)
    return diffs


def to_json(value: Any) -> Any:
    """JSON-ready form: dataclasses become objects, vector sets sorted lists, tuples lists.

    A dataclass is converted by a function made once per class from its fields' declared
    types (:func:`_converter`): ``to_json`` runs for every outcome of every verdict, and
    dispatching on each value's type at run time was most of a large replay's output time."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    if not hasattr(value, "__dataclass_fields__"):
        raise TypeError(f"cannot convert {type(value).__name__} to JSON")
    return _converter(type(value))(value)


def _converter(cls: Any) -> Callable[[Any], dict]:
    """The JSON converter of dataclass ``cls``, made once from its fields' declared types the
    way :mod:`dataclasses` makes ``__init__`` (the source of one dict display, compiled): per
    field the value as it is (``int``, ``bool``, ``str``, optionally ``None``), sorted (a
    ``frozenset``), a list (a ``tuple`` of plain values), the converter of the field's own
    dataclass (optionally ``None``), or :func:`to_json` where the type says nothing more."""
    made = _CONVERTERS.get(cls)
    if made is not None:
        return made
    hints = get_type_hints(cls)
    plain = (int, bool, str, type(None))
    scope: dict[str, Any] = {"to_json": to_json}
    items = []
    for f in fields(cls):
        tp, get = hints[f.name], f"v.{f.name}"
        args, origin = get_args(tp), get_origin(tp)
        inner = [a for a in args if a is not type(None)]
        if tp in plain or (origin in (Union, UnionType) and all(a in plain for a in args)):
            item = get
        elif origin is frozenset:
            item = f"sorted({get})"
        elif origin is tuple and all(a in plain or a is Ellipsis for a in args):
            item = f"list({get})"
        elif is_dataclass(tp):
            scope[f"c_{f.name}"] = _converter(tp)
            item = f"c_{f.name}({get})"
        elif origin in (Union, UnionType) and len(inner) == 1 and is_dataclass(inner[0]):
            scope[f"c_{f.name}"] = _converter(inner[0])
            item = f"None if {get} is None else c_{f.name}({get})"
        else:
            item = f"to_json({get})"
        items.append(f"{f.name!r}: {item}")
    exec(f"def convert(v):\n    return {{{', '.join(items)}}}\n", scope)  # noqa: S102
    made = _CONVERTERS[cls] = scope["convert"]
    return made


_CONVERTERS: dict[type, Callable[[Any], dict]] = {}

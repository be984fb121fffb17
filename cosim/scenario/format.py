"""Scenario files: the user's input (``docs/scenario-format.md``).

A scenario is a TOML file with the initial architectural state and a list of events. This
module loads and validates it into frozen dataclasses; each model's adapter translates those into
its own state. Every key is checked: unknown keys, types, ranges, event kinds and routes. A bad
file raises :class:`ScenarioError`, whose one-line message names the file, the key path
(``events[2].vector``) and what is allowed. Omitted keys take their reset values (empty vector
sets, 0, false; ``spurious_vector`` 0xff).
"""

import json
import tomllib
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, NoReturn, get_origin

from cosim.scenario.outcome import FIELDS, Outcome, VmExit, to_json
from software_model.constants import (
    CPU_BASED_ACTIVATE_SECONDARY_CONTROLS,
    CPU_BASED_INTR_WINDOW_EXITING,
    CPU_BASED_TPR_SHADOW,
    PIN_BASED_EXT_INTR_MASK,
    PIN_BASED_POSTED_INTR,
    SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY,
    VM_EXIT_ACK_INTR_ON_EXIT,
)

__all__ = [
    "EVENT_KINDS",
    "BaseEvent",
    "L1",
    "L2",
    "MODES",
    "ROUTES",
    "EoiEvent",
    "Event",
    "Expect",
    "InterruptEvent",
    "L1Apic",
    "L2EoiEvent",
    "MAX_RACES",
    "RACE_CYCLES",
    "Race",
    "to_toml",
    "L2State",
    "L2TprEvent",
    "PidState",
    "PostEvent",
    "Scenario",
    "ScenarioError",
    "TprEvent",
    "StiEvent",
    "VmEntryEvent",
    "Vmcs12Controls",
    "load_scenario",
    "parse_scenario",
]

ROUTES = ("ipiv", "trapped-ipi", "device-post")
STARTS = ("l2", "l1")
DEFAULT_MAXPHYADDR = 46
#: The most other agents' posts (``[[races]]``) one scenario holds, and the latest cycle of an
#: event one may land at (an event settles well within it: ``cosim.hardware.harness``).
MAX_RACES = 4
RACE_CYCLES = 2000


class ScenarioError(ValueError):
    """A scenario file is unusable. ``str()`` is one line: ``FILE: KEY: problem; allowed``."""

    def __init__(self, path: str, key: str | None, problem: str):
        self.path = path
        self.key = key
        self.problem = problem
        super().__init__(f"{path}: {key}: {problem}" if key else f"{path}: {problem}")


# --- the schema: each key is declared once, on its dataclass field ------------------------------


@dataclass(frozen=True)
class Key:
    """How a scenario key is read: ``kind`` is ``vectors`` (a set of vectors), ``vector``,
    ``int`` (from ``low`` to ``high``, ``note`` says what it is), ``bool``, or ``choice`` (one
    of ``choices``, a ``what``). Omitted, it takes its field's default; a field without a
    default is required."""

    kind: str
    low: int = 0
    high: int = 255
    note: str = ""
    choices: tuple[str, ...] = ()
    what: str = ""


def key(default: Any = MISSING, **spec: Any) -> Any:
    """A dataclass field that is a scenario key (``spec`` as for :class:`Key`)."""
    metadata = {"key": Key(**spec)}
    if default is MISSING:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


def _keys(cls: type) -> tuple[Field, ...]:
    """The fields of ``cls`` that are scenario keys, in order."""
    return tuple(f for f in fields(cls) if "key" in f.metadata)


# --- the state tables ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class L1Apic:
    """``[l1_apic]``: L1's local APIC (what L1 believes is its physical APIC)."""

    irr: frozenset[int] = key(frozenset(), kind="vectors")
    isr: frozenset[int] = key(frozenset(), kind="vectors")
    tmr: frozenset[int] = key(frozenset(), kind="vectors")
    tpr: int = key(0, kind="int")
    spurious_vector: int = key(0xFF, kind="vector")

    @property
    def ppr(self) -> int:
        """The PPR of this state (SDM 10.8.3.1, APIC-7): TPR if its class is at least the
        highest in-service vector's, else that vector's class."""
        isrv = max(self.isr, default=0)
        return self.tpr if self.tpr >> 4 >= isrv >> 4 else isrv & 0xF0


@dataclass(frozen=True, kw_only=True)
class Vmcs12Controls:
    """``[vmcs12]``: the controls and fields L1 programmed for L2."""

    external_interrupt_exiting: bool = key(False, kind="bool")
    process_posted_interrupts: bool = key(False, kind="bool")
    acknowledge_interrupt_on_exit: bool = key(False, kind="bool")
    virtual_interrupt_delivery: bool = key(False, kind="bool")
    tpr_shadow: bool = key(False, kind="bool")
    interrupt_window_exiting: bool = key(False, kind="bool")
    posted_intr_nv: int = key(0, kind="int", high=0xFFFF, note=" (a 16-bit field)")
    posted_intr_desc_addr: int = key(0, kind="int", high=(1 << 64) - 1,
                                     note=" (a 64-bit address)")

    def control_words(self) -> dict[str, int]:
        """The VMCS control fields these switches set, as the SDM lays them out (the same
        bits for the KVM model's vmcs12 and the RTL's control ports): ``pin_based``,
        ``proc_based``, ``secondary``, ``exit_controls``. VID implies "activate secondary
        controls"."""
        return {
            "pin_based": (PIN_BASED_EXT_INTR_MASK * self.external_interrupt_exiting
                          | PIN_BASED_POSTED_INTR * self.process_posted_interrupts),
            "proc_based": (CPU_BASED_TPR_SHADOW * self.tpr_shadow
                           | CPU_BASED_INTR_WINDOW_EXITING * self.interrupt_window_exiting
                           | CPU_BASED_ACTIVATE_SECONDARY_CONTROLS
                           * self.virtual_interrupt_delivery),
            "secondary": SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY * self.virtual_interrupt_delivery,
            "exit_controls": VM_EXIT_ACK_INTR_ON_EXIT * self.acknowledge_interrupt_on_exit,
        }

    def entry_check_failure(self, maxphyaddr: int) -> tuple[str, str] | None:
        """The first VM-entry check (SDM 26.2.1.1; EXT-5, EXT-6) this vmcs12 fails, as
        ``(key, reason)``, or None. KVM's ``nested_vmx_check_apicv_controls`` checks the same
        conditions for these fields."""
        if self.virtual_interrupt_delivery and not self.external_interrupt_exiting:
            return ("virtual_interrupt_delivery",
                    "virtual_interrupt_delivery = true requires external_interrupt_exiting = true")
        if self.process_posted_interrupts:
            if not self.virtual_interrupt_delivery:
                return ("process_posted_interrupts", "process_posted_interrupts = true requires "
                        "virtual_interrupt_delivery = true")
            if not self.acknowledge_interrupt_on_exit:
                return ("process_posted_interrupts", "process_posted_interrupts = true requires "
                        "acknowledge_interrupt_on_exit = true")
            if self.posted_intr_nv & 0xFF00:
                return ("posted_intr_nv",
                        f"bits 15:8 of posted_intr_nv ({self.posted_intr_nv:#06x}) must be 0")
            addr = self.posted_intr_desc_addr
            if addr & 0x3F:
                return ("posted_intr_desc_addr",
                        f"posted_intr_desc_addr {addr:#x} is not 64-byte aligned")
            if addr >> maxphyaddr:
                return ("posted_intr_desc_addr", f"posted_intr_desc_addr {addr:#x} is beyond "
                        f"the physical-address width (maxphyaddr = {maxphyaddr})")
        if ((self.virtual_interrupt_delivery or self.process_posted_interrupts)
                and not self.tpr_shadow):
            return ("tpr_shadow",
                    "virtual_interrupt_delivery = true requires tpr_shadow = true")
        return None


@dataclass(frozen=True, kw_only=True)
class PidState:
    """``[pid]``: the posted-interrupt descriptor at ``vmcs12.posted_intr_desc_addr``."""

    pir: frozenset[int] = key(frozenset(), kind="vectors")
    on: bool = key(False, kind="bool")
    sn: bool = key(False, kind="bool")
    nv: int = key(0, kind="vector")
    ndst: int = key(0, kind="int", high=0xFFFFFFFF, note=" (a 32-bit field)")


@dataclass(frozen=True, kw_only=True)
class L2State:
    """``[l2]``: L2's virtual-APIC page and guest interrupt status."""

    virr: frozenset[int] = key(frozenset(), kind="vectors")
    visr: frozenset[int] = key(frozenset(), kind="vectors")
    vtpr: int = key(0, kind="int")
    rvi: int = key(0, kind="vector")
    svi: int = key(0, kind="vector")
    rflags_if: bool = key(False, kind="bool")


# --- events -----------------------------------------------------------------------------------


#: The guest that runs (``docs/scenario-format.md``): L1 in VMX root operation of its virtual CPU,
#: or L2 in non-root operation.
L1, L2 = "l1", "l2"
MODES = (L1, L2)


@dataclass(frozen=True, kw_only=True)
class BaseEvent:
    """One ``[[events]]`` entry (the kinds below; :data:`Event` is their union).
    ``to_dict()`` gives it back as written in the file.

    ``modes`` are the guests during whose execution the event can happen on a real machine:
    L1's APIC writes and VMLAUNCH only while L1 runs, L2's only while L2 runs, interrupts and
    other agents' posts at any time.
    """

    kind: ClassVar[str]
    modes: ClassVar[tuple[str, ...]] = MODES

    def to_dict(self) -> dict[str, Any]:
        """The event as written in a file: optional keys only when they are not the
        default."""
        return {"kind": self.kind, **{f.name: getattr(self, f.name) for f in _keys(type(self))
                                      if f.default is MISSING or getattr(self, f.name)
                                      != f.default}}


@dataclass(frozen=True, kw_only=True)
class InterruptEvent(BaseEvent):
    """A fixed interrupt for L1's APIC, arriving by ``route``.

    ``in_l0`` (KVM side only): the interrupt reaches the target vCPU while it is in L0, in
    the exit to L0 that the previous event caused, before KVM re-enters the guest (or, if
    there was none, in an exit for a host reason). The hardware has no L0: there the
    interrupt simply arrives after the previous event.
    """

    kind: ClassVar[str] = "interrupt"
    vector: int = key(kind="vector", low=16)
    route: str = key(kind="choice", choices=ROUTES, what="route")
    in_l0: bool = key(False, kind="bool")


@dataclass(frozen=True, kw_only=True)
class PostEvent(BaseEvent):
    """Another agent posts into the nested descriptor: PIR[vector] := 1, then ON := 1; no IPI."""

    kind: ClassVar[str] = "post"
    vector: int = key(kind="vector")


@dataclass(frozen=True, kw_only=True)
class EoiEvent(BaseEvent):
    """L1 writes its EOI register."""

    kind: ClassVar[str] = "eoi"
    modes: ClassVar[tuple[str, ...]] = (L1,)


@dataclass(frozen=True, kw_only=True)
class TprEvent(BaseEvent):
    """L1 writes its TPR."""

    kind: ClassVar[str] = "tpr"
    modes: ClassVar[tuple[str, ...]] = (L1,)
    value: int = key(kind="int")


@dataclass(frozen=True, kw_only=True)
class StiEvent(BaseEvent):
    """L1 opens an interrupt window (STI, an instruction, CLI): the highest-priority interrupt
    its local APIC presents (class above PPR), if any, is acknowledged and vectored through
    L1's IDT (IRR to ISR); its handler runs with interrupts disabled again (an interrupt
    gate). Between these events L1 runs with RFLAGS.IF = 0."""

    kind: ClassVar[str] = "sti"
    modes: ClassVar[tuple[str, ...]] = (L1,)


@dataclass(frozen=True, kw_only=True)
class VmEntryEvent(BaseEvent):
    """L1 enters L2 with the current vmcs12 (the VM-entry checks run here)."""

    kind: ClassVar[str] = "vm_entry"
    modes: ClassVar[tuple[str, ...]] = (L1,)


@dataclass(frozen=True, kw_only=True)
class L2EoiEvent(BaseEvent):
    """L2 writes its virtual EOI (EOI virtualization)."""

    kind: ClassVar[str] = "l2_eoi"
    modes: ClassVar[tuple[str, ...]] = (L2,)


@dataclass(frozen=True, kw_only=True)
class L2TprEvent(BaseEvent):
    """L2 writes its TPR (TPR virtualization)."""

    kind: ClassVar[str] = "l2_tpr"
    modes: ClassVar[tuple[str, ...]] = (L2,)
    value: int = key(kind="int")


#: Every event kind. A new kind goes here; code that dispatches on events uses ``match`` with
#: ``assert_never`` in the last case, so mypy flags every place that forgets it.
Event = (InterruptEvent | PostEvent | EoiEvent | TprEvent | StiEvent | VmEntryEvent
         | L2EoiEvent | L2TprEvent)
EVENT_KINDS: dict[str, type[Event]] = {cls.kind: cls for cls in (
    InterruptEvent, PostEvent, EoiEvent, TprEvent, StiEvent, VmEntryEvent, L2EoiEvent,
    L2TprEvent)}


@dataclass(frozen=True, kw_only=True)
class Race:
    """``[[races]]``: another agent's post into the nested descriptor during one event.

    PIR[``vector``] := 1 at ``cycle`` testbench cycles into event ``event`` (its index, from
    0), ON := 1 one cycle later, no IPI (C14, PI-9). The hardware runs it at that cycle. The
    KVM model's events are instructions, not cycles: beside the hardware it places the post on
    the side of the processing where the hardware's post landed (``cosim.reference.kvm``)."""

    event: int = key(kind="int")
    cycle: int = key(kind="int", high=RACE_CYCLES)
    vector: int = key(kind="vector")


# --- expectations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """``[expect]``: the hardware outcome after the last event, as the author expects it.

    ``checks`` pairs an outcome field (dotted, as in ``Outcome.FIELDS``) with its expected
    value; fields the file does not mention are not checked.
    """

    checks: tuple[tuple[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        """The ``[expect]`` table as written in a file."""
        table: dict[str, Any] = {}
        for name, value in self.checks:
            if name == "vmexit":
                table[name] = "none" if value is None else to_json(value)
            elif name == "vmentry_error":
                table[name] = "none" if value is None else value
            elif "." in name:
                group, key = name.split(".")
                table.setdefault(group, {})[key] = to_json(value)
            else:
                table[name] = value
        return table

    def mismatches(self, outcome: Outcome) -> list[str]:
        """The checked fields whose value in ``outcome`` differs from the expectation."""
        return [name for name, want in self.checks if outcome.get(name) != want]


# --- the scenario -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    path: str
    description: str = ""
    start: str = "l2"
    maxphyaddr: int = DEFAULT_MAXPHYADDR
    l1_apic: L1Apic = field(default_factory=L1Apic)
    vmcs12: Vmcs12Controls = field(default_factory=Vmcs12Controls)
    pid: PidState = field(default_factory=PidState)
    l2: L2State = field(default_factory=L2State)
    events: tuple[Event, ...] = ()
    races: tuple[Race, ...] = ()
    expect: Expect | None = None

    def to_dict(self) -> dict[str, Any]:
        """The scenario as a TOML document would hold it: ``parse_scenario(s.to_dict(),
        s.path) == s``. Scenarios made in memory cross process boundaries so."""
        data: dict[str, Any] = {"name": self.name, "description": self.description,
                                "start": self.start, "maxphyaddr": self.maxphyaddr}
        for table in ("l1_apic", "vmcs12", "pid", "l2"):
            data[table] = to_json(getattr(self, table))
        data["events"] = [e.to_dict() for e in self.events]
        if self.races:
            data["races"] = [{f.name: getattr(r, f.name) for f in _keys(Race)}
                             for r in self.races]
        if self.expect is not None:
            data["expect"] = self.expect.to_dict()
        return data


# --- validation -------------------------------------------------------------------------------


class _Checker:
    """Typed accessors that raise :class:`ScenarioError` with the key path."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, key: str | None, problem: str) -> NoReturn:
        raise ScenarioError(self.path, key, problem)

    def table(self, data: dict, key: str, allowed: tuple[str, ...]) -> dict:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.fail(key, f"expected a table ([{key}]), got {_describe(value)}")
        self.known_keys(value, key, allowed)
        return value

    def known_keys(self, table: dict, prefix: str | None, allowed) -> None:
        for key in table:
            if key not in allowed:
                where = f"{prefix}.{key}" if prefix else key
                self.fail(where, f"unknown key; allowed keys: {', '.join(allowed)}")

    def integer(self, value: Any, key: str, low: int, high: int, what: str = "") -> int:
        span = f"{_fmt_bound(low)}-{_fmt_bound(high)}"
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"expected an integer {span} (decimal or 0x..){what}, "
                           f"got {_describe(value)}")
        if not low <= value <= high:
            self.fail(key, f"{_fmt_value(value)} is out of range; allowed: {span}{what}")
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            self.fail(key, f"expected true or false, got {_describe(value)}")
        return value

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str):
            self.fail(key, f"expected a string, got {_describe(value)}")
        return value

    def choice(self, value: Any, key: str, allowed: tuple[str, ...], what: str) -> str:
        if not isinstance(value, str) or value not in allowed:
            shown = f"{value!r}" if isinstance(value, str) else _describe(value)
            quoted = ", ".join(f'"{a}"' for a in allowed)
            self.fail(key, f"unknown {what} {shown}; allowed: {quoted}")
        return value

    def vector(self, value: Any, key: str) -> int:
        return self.integer(value, key, 0, 255)

    def vector_list(self, value: Any, key: str, unique: bool = True) -> list[int]:
        if not isinstance(value, list):
            self.fail(key, f"expected a list of vectors 0-255 (e.g. [0x41, 0xff]), "
                           f"got {_describe(value)}")
        seen: list[int] = []
        for i, item in enumerate(value):
            vector = self.vector(item, f"{key}[{i}]")
            if unique and vector in seen:
                self.fail(f"{key}[{i}]", f"vector {vector:#04x} is listed twice")
            seen.append(vector)
        return seen

    def vector_set(self, value: Any, key: str) -> frozenset[int]:
        return frozenset(self.vector_list(value, key))


def _fmt_bound(n: int) -> str:
    return str(n) if n < 256 else hex(n)


def _fmt_value(n: int) -> str:
    return str(n) if -256 < n < 256 else f"{n} ({n:#x})" if n >= 0 else str(n)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file."""
    shown = str(path)
    file = Path(path)
    if file.is_dir():
        raise ScenarioError(shown, None, "is a directory; give a .toml scenario file")
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ScenarioError(shown, None, "no such file") from None
    except OSError as exc:
        raise ScenarioError(shown, None, f"cannot read: {exc.strerror}") from None
    if not raw.strip():
        raise ScenarioError(shown, None, "the file is empty; a scenario needs at least one "
                                         "[[events]] table")
    if b"\x00" in raw:
        raise ScenarioError(shown, None, "not a text file (it contains NUL bytes); scenarios "
                                         "are UTF-8 TOML")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(shown, None, "not a UTF-8 text file; scenarios are UTF-8 TOML") \
            from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(shown, None, f"TOML syntax error: {exc}") from None
    return parse_scenario(data, shown, default_name=file.stem)


def _read(c: _Checker, value: Any, where: str, spec: Key) -> Any:
    """One key's value, checked against its :class:`Key`."""
    if spec.kind == "vectors":
        return c.vector_set(value, where)
    if spec.kind == "vector":
        vector = c.vector(value, where)
        if vector < spec.low:
            c.fail(where, f"vector {vector} is illegal for an interrupt (0-{spec.low - 1} are "
                          f"never delivered, SDM 10.5.2); allowed: {spec.low}-255")
        return vector
    if spec.kind == "int":
        return c.integer(value, where, spec.low, spec.high, spec.note)
    if spec.kind == "bool":
        return c.boolean(value, where)
    if spec.kind == "choice":
        return c.choice(value, where, spec.choices, spec.what)
    raise AssertionError(f"no reader for key kind {spec.kind!r}")


def _read_table(c: _Checker, data: dict, name: str, cls: type) -> Any:
    """The state table ``[name]`` as an instance of ``cls``, keys as its fields declare."""
    specs = _keys(cls)
    t = c.table(data, name, tuple(f.name for f in specs))
    return cls(**{f.name: _read(c, t[f.name], f"{name}.{f.name}", f.metadata["key"])
                  for f in specs if f.name in t})


#: The top-level keys: the scenario's fields but its path.
_TOP_KEYS = tuple(f.name for f in fields(Scenario) if f.name != "path")


def parse_scenario(data: dict, path: str, default_name: str = "scenario") -> Scenario:
    """Validate a parsed TOML document (``path`` names it in messages)."""
    c = _Checker(path)
    c.known_keys(data, None, _TOP_KEYS)
    name = c.string(data.get("name", default_name), "name")
    if not name.strip():
        c.fail("name", "must not be empty")
    description = c.string(data.get("description", ""), "description")
    start = c.choice(data.get("start", "l2"), "start", STARTS, "start state")
    maxphyaddr = c.integer(data.get("maxphyaddr", DEFAULT_MAXPHYADDR), "maxphyaddr", 32, 52)
    l1_apic = _read_table(c, data, "l1_apic", L1Apic)
    vmcs12 = _read_table(c, data, "vmcs12", Vmcs12Controls)
    pid = _read_table(c, data, "pid", PidState)
    l2 = _read_table(c, data, "l2", L2State)
    events = _parse_events(c, data)
    if start == "l2":
        failure = vmcs12.entry_check_failure(maxphyaddr)
        if failure is not None:
            key, reason = failure
            c.fail(f"vmcs12.{key}", f"{reason} (SDM 26.2.1.1); a scenario that starts in L2 "
                                    "needs a vmcs12 that passed the VM-entry checks: fix it, or "
                                    "set start = \"l1\" and add a vm_entry event")
    _check_modes(c, None if start == L2 and l1_apic.irr else start, events)
    races = _parse_races(c, data, len(events))
    expect = _parse_expect(c, data) if "expect" in data else None
    return Scenario(name=name, path=path, description=description, start=start,
                    maxphyaddr=maxphyaddr, l1_apic=l1_apic, vmcs12=vmcs12, pid=pid, l2=l2,
                    events=events, races=races, expect=expect)


def _parse_races(c: _Checker, data: dict, n_events: int) -> tuple[Race, ...]:
    raw = data.get("races", [])
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        c.fail("races", f"expected an array of tables ([[races]]), got {_describe(raw)}")
    if len(raw) > MAX_RACES:
        c.fail("races", f"at most {MAX_RACES} races, not {len(raw)}")
    races = []
    for i, entry in enumerate(raw):
        where = f"races[{i}]"
        specs = _keys(Race)
        c.known_keys(entry, where, tuple(f.name for f in specs))
        for f in specs:
            if f.name not in entry:
                c.fail(where, f"missing required key '{f.name}'")
        race = Race(**{f.name: _read(c, entry[f.name], f"{where}.{f.name}", f.metadata["key"])
                       for f in specs})
        if race.event >= n_events:
            c.fail(f"{where}.event", f"event {race.event} does not exist: the scenario has "
                                     f"{n_events} events (0-{n_events - 1})")
        races.append(race)
    return tuple(races)


def _parse_events(c: _Checker, data: dict) -> tuple[Event, ...]:
    raw = data.get("events")
    if raw is None:
        c.fail("events", "no events; add at least one [[events]] table")
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        c.fail("events", f"expected an array of tables ([[events]]), got {_describe(raw)}")
    if not raw:
        c.fail("events", "no events; add at least one [[events]] table")
    kinds = tuple(EVENT_KINDS)
    events = []
    for i, entry in enumerate(raw):
        where = f"events[{i}]"
        if "kind" not in entry:
            c.fail(where, f"missing required key 'kind'; allowed kinds: {', '.join(kinds)}")
        kind = c.choice(entry["kind"], f"{where}.kind", kinds, "event kind")
        cls = EVENT_KINDS[kind]
        specs = _keys(cls)
        c.known_keys(entry, where, ("kind", *(f.name for f in specs)))
        for f in specs:
            if f.name not in entry and f.default is MISSING:
                c.fail(where, f"missing required key '{f.name}' for kind '{kind}'")
        events.append(cls(**{f.name: _read(c, entry[f.name], f"{where}.{f.name}",
                                           f.metadata["key"])
                             for f in specs if f.name in entry}))
    return tuple(events)


_MODE_NAMES = {L1: "L1", L2: "L2"}
_MODE_HINTS = {
    L1: "L1's APIC writes, interrupt windows and VMLAUNCH happen only after a VM exit to L1 "
        "(or with start = \"l1\")",
    L2: "L2's own writes happen only after a successful vm_entry (or with start = \"l2\")",
}


def _check_modes(c: _Checker, start: str | None, events: tuple[Event, ...]) -> None:
    """Reject an event that cannot happen in the mode the scenario is certainly in.

    The mode is known from ``start`` (``None`` when an interrupt pending in L1's IRR may
    already exit at the start) until the first event that may change it (an interrupt
    while L2 runs may exit to L1; a ``vm_entry`` may enter L2 or fail); after that it depends
    on the hardware, and the testbench stops the run at an impossible event instead.
    """
    mode: str | None = start
    for i, event in enumerate(events):
        if mode is None:
            return
        if mode not in event.modes:
            need = _MODE_NAMES[event.modes[0]]
            c.fail(f"events[{i}].kind", f"'{event.kind}' can happen only while {need} runs, "
                                        f"but {_MODE_NAMES[mode]} runs at this point; "
                                        f"{_MODE_HINTS[event.modes[0]]}")
        if (mode == L2 and isinstance(event, InterruptEvent)) or isinstance(event, VmEntryEvent):
            mode = None


def _parse_expect(c: _Checker, data: dict) -> Expect:
    """``[expect]``: any field of the outcome record (``cosim.scenario.outcome.Outcome``), by
    the same dotted names as the JSON; a new outcome field is accepted without a change here."""
    t = c.table(data, "expect", tuple(f.name for f in fields(Outcome)))
    checks: list[tuple[str, Any]] = []
    for f in fields(Outcome):
        if f.name not in t:
            continue
        value, where = t[f.name], f"expect.{f.name}"
        if f.name == "vmexit":
            checks.append((f.name, _parse_expected_vmexit(c, value)))
        elif f.name == "vmentry_error":
            if value == "none":
                checks.append((f.name, None))
            elif isinstance(value, int) and not isinstance(value, bool):
                checks.append((f.name, c.integer(value, where, 0, 0xFFFFFFFF)))
            else:
                c.fail(where, "expected \"none\" or a VM-instruction error number, got "
                              f"{_describe(value)}")
        elif f.name == "mode":
            checks.append((f.name, c.choice(value, where, MODES, "mode")))
        else:  # a record of the outcome: one check per key it names
            if not isinstance(value, dict):
                c.fail(where, f"expected a table ([{where}]), got {_describe(value)}")
            assert isinstance(f.type, type)  # a record class (the module has no PEP 563)
            record = fields(f.type)
            c.known_keys(value, where, tuple(g.name for g in record))
            for g in record:
                if g.name in value:
                    checks.append((f"{f.name}.{g.name}",
                                   _read_expected(c, value[g.name], f"{where}.{g.name}",
                                                  g.type)))
    if not checks:
        c.fail("expect", "the table is empty; name at least one field to check, e.g. "
                         "vmexit = \"none\"")
    return Expect(tuple(checks))


def _read_expected(c: _Checker, value: Any, where: str, kind: Any) -> Any:
    """An expected outcome value, read by the outcome field's type."""
    if get_origin(kind) is frozenset:
        return c.vector_set(value, where)
    if get_origin(kind) is tuple:
        return tuple(c.vector_list(value, where, unique=False))
    if kind is bool:
        return c.boolean(value, where)
    if kind is int:
        return c.integer(value, where, 0, 255)
    raise AssertionError(f"no reader for outcome type {kind!r}")


def _parse_expected_vmexit(c: _Checker, value: Any) -> VmExit | None:
    key = "expect.vmexit"
    if value == "none":
        return None
    if not isinstance(value, dict):
        c.fail(key, f"expected \"none\" or {{ reason = N, intr_info = N }}, got "
                    f"{_describe(value)}")
    c.known_keys(value, key, ("reason", "intr_info", "qualification"))
    for required in ("reason", "intr_info"):
        if required not in value:
            c.fail(key, f"missing required key '{required}'")
    return VmExit(
        reason=c.integer(value["reason"], f"{key}.reason", 0, 0xFFFF),
        intr_info=c.integer(value["intr_info"], f"{key}.intr_info", 0, 0xFFFFFFFF),
        qualification=c.integer(value.get("qualification", 0), f"{key}.qualification", 0,
                                (1 << 64) - 1),
    )


# --- the reference (docs/scenario-format.md embeds it; a test keeps the two equal) -------------


def _describe_key(spec: Key) -> str:
    if spec.kind == "vectors":
        return "set of vectors 0-255"
    if spec.kind == "vector":
        return f"vector {spec.low}-255"
    if spec.kind == "int":
        return f"integer {_fmt_bound(spec.low)}-{_fmt_bound(spec.high)}{spec.note}"
    if spec.kind == "choice":
        return "one of " + ", ".join(f'"{c}"' for c in spec.choices)
    return "true or false"


def _default(f: Field) -> str:
    if f.default is MISSING:
        return "required"
    value = f.default
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, frozenset):
        return "[]"
    return hex(value) if isinstance(value, int) and value > 9 else str(value)


def reference() -> str:
    """The key tables of the format, as Markdown, from the dataclass fields."""
    lines: list[str] = []
    for table, cls in (("l1_apic", L1Apic), ("vmcs12", Vmcs12Controls), ("pid", PidState),
                       ("l2", L2State)):
        lines += [f"#### `[{table}]`", "", (cls.__doc__ or "").strip().split("\n")[0], "",
                  "| key | value | default |", "|---|---|---|"]
        lines += [f"| `{f.name}` | {_describe_key(f.metadata['key'])} | {_default(f)} |"
                  for f in _keys(cls)]
        lines.append("")
    lines += ["#### `[[events]]`", "", "| kind | keys | while |", "|---|---|---|"]
    for kind, event_cls in EVENT_KINDS.items():
        keys = "; ".join(f"`{f.name}` ({_describe_key(f.metadata['key'])}, {_default(f)})"
                         for f in _keys(event_cls)) or "-"
        modes = " or ".join(m.upper() for m in event_cls.modes)
        lines.append(f"| `{kind}` | {keys} | {modes} runs |")
    lines += ["", "#### `[[races]]`", "", (Race.__doc__ or "").strip().split("\n")[0], "",
              "| key | value |", "|---|---|"]
    lines += [f"| `{f.name}` | {_describe_key(f.metadata['key'])} |" for f in _keys(Race)]
    lines += ["", "#### `[expect]`", "", "| key | value |", "|---|---|"]
    for name in FIELDS:
        lines.append(f"| `{name}` | {_expect_value(name)} |")
    return "\n".join(lines) + "\n"


def _toml_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(name, v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(k, v)}" for k, v in value.items()) + " }"
    return str(value) if name in _DECIMAL else f"{value:#x}"


_DECIMAL = frozenset({"maxphyaddr", "event", "cycle", "reason", "vmentry_error"})


def to_toml(scenario: Scenario) -> str:
    """The scenario as a TOML file that :func:`load_scenario` reads back equal (but for its
    path): tables in the format's order, vectors in hex."""
    data = scenario.to_dict()
    lines = [f"{k} = {_toml_value(k, data[k])}" for k in ("name", "description", "start",
                                                          "maxphyaddr")]
    for table in ("l1_apic", "vmcs12", "pid", "l2"):
        lines += ["", f"[{table}]"] + [f"{k} = {_toml_value(k, v)}"
                                       for k, v in data[table].items()]
    for array in ("events", "races"):
        for entry in data.get(array, []):
            lines += ["", f"[[{array}]]"] + [f"{k} = {_toml_value(k, v)}"
                                             for k, v in entry.items()]
    if "expect" in data:
        plain = {k: v for k, v in data["expect"].items() if not isinstance(v, dict)
                 or k == "vmexit"}
        lines += ["", "[expect]"] + [f"{k} = {_toml_value(k, v)}" for k, v in plain.items()]
        for k, v in data["expect"].items():
            if isinstance(v, dict) and k != "vmexit":
                lines += ["", f"[expect.{k}]"] + [f"{kk} = {_toml_value(kk, vv)}"
                                                  for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


def _expect_value(name: str) -> str:
    special = {"vmexit": '"none" or { reason = N, intr_info = N, qualification = N }',
               "vmentry_error": '"none" or a VM-instruction error number',
               "mode": '"l1" or "l2"'}
    if name in special:
        return special[name]
    group, key_name = name.split(".")
    record = next(f.type for f in fields(Outcome) if f.name == group)
    assert isinstance(record, type)
    kind = next(g.type for g in fields(record) if g.name == key_name)
    if get_origin(kind) is frozenset:
        return "set of vectors"
    if get_origin(kind) is tuple:
        return "list of vectors, in order"
    return "true or false" if kind is bool else "integer 0-255"


if __name__ == "__main__":
    print(reference(), end="")

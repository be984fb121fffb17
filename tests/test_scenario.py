"""cosim/scenario.py: loading, defaults and every kind of bad file, with the exact message."""

import textwrap
from pathlib import Path

import pytest

from cosim.scenario.format import (
    InterruptEvent,
    L1Apic,
    ScenarioError,
    TprEvent,
    Vmcs12Controls,
    load_scenario,
)
from cosim.scenario.outcome import VmExit

PI = """
[vmcs12]
external_interrupt_exiting = true
process_posted_interrupts = true
acknowledge_interrupt_on_exit = true
virtual_interrupt_delivery = true
tpr_shadow = true
posted_intr_nv = 0xff
posted_intr_desc_addr = 0x10000
"""
EVENT = '\n[[events]]\nkind = "interrupt"\nvector = 0xff\nroute = "ipiv"\n'


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    return message[len(f"{path}: "):]


def test_load_full_scenario(tmp_path):
    s = load_scenario(write(tmp_path, 'name = "x"\ndescription = "d"\n[l1_apic]\n'
                                      'irr = [0x41, 66]\ntpr = 0x20\n' + PI + EVENT
                            + '[[events]]\nkind = "tpr"\nvalue = 0x10\n'
                            '[expect]\nvmexit = { reason = 1, intr_info = 0x800000ff }\n'
                            '[expect.l2]\ndelivered = [0x41, 0x41]\n'))
    assert s.name == "x" and s.description == "d" and s.start == "l2" and s.maxphyaddr == 46
    assert s.l1_apic == L1Apic(irr=frozenset({0x41, 0x42}), tpr=0x20)
    assert s.vmcs12.posted_intr_nv == 0xFF and s.vmcs12.process_posted_interrupts
    assert s.events == (InterruptEvent(vector=0xFF, route="ipiv"), TprEvent(value=0x10))
    assert s.events[0].to_dict() == {"kind": "interrupt", "vector": 255, "route": "ipiv"}
    assert s.expect.checks == (("vmexit", VmExit(reason=1, intr_info=0x800000FF)),
                               ("l2.delivered", (0x41, 0x41)))


def test_omitted_keys_take_reset_values(tmp_path):
    s = load_scenario(write(tmp_path, '[[events]]\nkind = "l2_eoi"\n', name="reset.toml"))
    assert s.name == "reset"
    assert s.l1_apic == L1Apic(irr=frozenset(), isr=frozenset(), tmr=frozenset(), tpr=0,
                               spurious_vector=0xFF)
    assert s.vmcs12 == Vmcs12Controls()
    assert s.pid.pir == frozenset() and s.pid.on is False and s.l2.rflags_if is False
    assert s.expect is None


def test_every_shipped_scenario_loads():
    files = sorted(Path(__file__).parent.parent.joinpath("scenarios").glob("*.toml"))
    assert len(files) >= 12
    for file in files:
        assert load_scenario(file).name == file.stem


BAD = [
    ("toml syntax", "name = \n",
     "TOML syntax error: Invalid value (at line 1, column 8)"),
    ("unknown top key", "colour = 1\n" + EVENT,
     "colour: unknown key; allowed keys: name, description, start, maxphyaddr, l1_apic, "
     "vmcs12, pid, l2, events, races, expect"),
    ("race of a missing event", EVENT + "[[races]]\nevent = 1\ncycle = 3\nvector = 0x52\n",
     "races[0].event: event 1 does not exist: the scenario has 1 events (0-0)"),
    ("race without a cycle", EVENT + "[[races]]\nevent = 0\nvector = 0x52\n",
     "races[0]: missing required key 'cycle'"),
    ("race cycle out of range", EVENT + "[[races]]\nevent = 0\ncycle = 2001\nvector = 0x52\n",
     "races[0].cycle: 2001 (0x7d1) is out of range; allowed: 0-0x7d0"),
    ("unknown table key", "[l1_apic]\nirq = []\n" + EVENT,
     "l1_apic.irq: unknown key; allowed keys: irr, isr, tmr, tpr, spurious_vector"),
    ("table is not a table", "l2 = 5\n" + EVENT,
     "l2: expected a table ([l2]), got integer 5"),
    ("vector out of range", "[l1_apic]\nirr = [0x41, 256]\n" + EVENT,
     "l1_apic.irr[1]: 256 (0x100) is out of range; allowed: 0-255"),
    ("vector set not a list", "[pid]\npir = 0x41\n" + EVENT,
     "pid.pir: expected a list of vectors 0-255 (e.g. [0x41, 0xff]), got integer 65"),
    ("duplicate vector", "[l2]\nvirr = [0x41, 0x41]\n" + EVENT,
     "l2.virr[1]: vector 0x41 is listed twice"),
    ("string for integer", '[l1_apic]\ntpr = "0x20"\n' + EVENT,
     "l1_apic.tpr: expected an integer 0-255 (decimal or 0x..), got string '0x20'"),
    ("boolean for integer", "[l2]\nrvi = true\n" + EVENT,
     "l2.rvi: expected an integer 0-255 (decimal or 0x..), got boolean true"),
    ("integer for boolean", "[pid]\non = 1\n" + EVENT,
     "pid.on: expected true or false, got integer 1"),
    ("negative", "[l1_apic]\ntpr = -1\n" + EVENT,
     "l1_apic.tpr: -1 is out of range; allowed: 0-255"),
    ("nv beyond 16 bits", "[vmcs12]\nposted_intr_nv = 0x10000\n" + EVENT,
     "vmcs12.posted_intr_nv: 65536 (0x10000) is out of range; allowed: 0-0xffff "
     "(a 16-bit field)"),
    ("address beyond 64 bits", "[vmcs12]\nposted_intr_desc_addr = -1\n" + EVENT,
     "vmcs12.posted_intr_desc_addr: -1 is out of range; allowed: 0-0xffffffffffffffff "
     "(a 64-bit address)"),
    ("ndst beyond 32 bits", "[pid]\nndst = 0x100000000\n" + EVENT,
     "pid.ndst: 4294967296 (0x100000000) is out of range; allowed: 0-0xffffffff "
     "(a 32-bit field)"),
    ("no events", "[l1_apic]\ntpr = 0\n",
     "events: no events; add at least one [[events]] table"),
    ("events not tables", "events = [1, 2]\n",
     "events: expected an array of tables ([[events]]), got an array"),
    ("missing kind", "[[events]]\nvector = 0x41\n",
     "events[0]: missing required key 'kind'; allowed kinds: interrupt, post, eoi, tpr, "
     "sti, vm_entry, l2_eoi, l2_tpr"),
    ("unknown kind", EVENT + '[[events]]\nkind = "irq"\n',
     'events[1].kind: unknown event kind \'irq\'; allowed: "interrupt", "post", "eoi", "tpr", '
     '"sti", "vm_entry", "l2_eoi", "l2_tpr"'),
    ("unknown route", '[[events]]\nkind = "interrupt"\nvector = 0x50\nroute = "ipi"\n',
     'events[0].route: unknown route \'ipi\'; allowed: "ipiv", "trapped-ipi", "device-post"'),
    ("missing vector", EVENT * 2 + '[[events]]\nkind = "interrupt"\nroute = "ipiv"\n',
     "events[2]: missing required key 'vector' for kind 'interrupt'"),
    ("missing value", '[[events]]\nkind = "l2_tpr"\n',
     "events[0]: missing required key 'value' for kind 'l2_tpr'"),
    ("event vector type", EVENT + EVENT + '[[events]]\nkind = "post"\nvector = "0x42"\n',
     "events[2].vector: expected an integer 0-255 (decimal or 0x..), got string '0x42'"),
    ("unknown event key", '[[events]]\nkind = "eoi"\nvector = 3\n',
     "events[0].vector: unknown key; allowed keys: kind"),
    ("illegal interrupt vector", '[[events]]\nkind = "interrupt"\nvector = 15\nroute = "ipiv"\n',
     "events[0].vector: vector 15 is illegal for an interrupt (0-15 are never delivered, "
     "SDM 10.5.2); allowed: 16-255"),
    ("unknown start", 'start = "l3"\n' + EVENT,
     'start: unknown start state \'l3\'; allowed: "l2", "l1"'),
    ("maxphyaddr range", "maxphyaddr = 64\n" + EVENT,
     "maxphyaddr: 64 is out of range; allowed: 32-52"),
    ("name type", "name = 3\n" + EVENT, "name: expected a string, got integer 3"),
    ("start l2 with failing controls", PI.replace("virtual_interrupt_delivery = true",
                                                  "virtual_interrupt_delivery = false") + EVENT,
     "vmcs12.process_posted_interrupts: process_posted_interrupts = true requires "
     "virtual_interrupt_delivery = true (SDM 26.2.1.1); a scenario that starts in L2 needs a "
     'vmcs12 that passed the VM-entry checks: fix it, or set start = "l1" and add a vm_entry '
     "event"),
    ("start l2 with misaligned descriptor", PI.replace("0x10000", "0x10008") + EVENT,
     "vmcs12.posted_intr_desc_addr: posted_intr_desc_addr 0x10008 is not 64-byte aligned "
     '(SDM 26.2.1.1); a scenario that starts in L2 needs a vmcs12 that passed the VM-entry '
     'checks: fix it, or set start = "l1" and add a vm_entry event'),
    ("vm_entry while L2 runs", '[[events]]\nkind = "vm_entry"\n',
     "events[0].kind: 'vm_entry' can happen only while L1 runs, but L2 runs at this point; "
     "L1's APIC writes, interrupt windows and VMLAUNCH happen only after a VM exit to L1 "
     '(or with start = "l1")'),
    ("L1 EOI while L2 runs", '[[events]]\nkind = "l2_eoi"\n[[events]]\nkind = "eoi"\n',
     "events[1].kind: 'eoi' can happen only while L1 runs, but L2 runs at this point; "
     "L1's APIC writes, interrupt windows and VMLAUNCH happen only after a VM exit to L1 "
     '(or with start = "l1")'),
    ("L2 TPR while L1 runs", 'start = "l1"\n[[events]]\nkind = "tpr"\nvalue = 0\n'
     '[[events]]\nkind = "l2_tpr"\nvalue = 0\n',
     "events[1].kind: 'l2_tpr' can happen only while L2 runs, but L1 runs at this point; "
     "L2's own writes happen only after a successful vm_entry (or with start = \"l2\")"),
    ("expect vmexit shape", EVENT + "[expect]\nvmexit = 1\n",
     'expect.vmexit: expected "none" or { reason = N, intr_info = N }, got integer 1'),
    ("expect vmexit missing key", EVENT + "[expect]\nvmexit = { reason = 1 }\n",
     "expect.vmexit: missing required key 'intr_info'"),
    ("expect unknown field", EVENT + "[expect.l2]\nrvii = 3\n",
     "expect.l2.rvii: unknown key; allowed keys: virr, visr, rvi, svi, vppr, delivered"),
    ("expect empty", EVENT + "[expect]\n",
     'expect: the table is empty; name at least one field to check, e.g. vmexit = "none"'),
    ("expect vmentry_error type", EVENT + '[expect]\nvmentry_error = "seven"\n',
     "expect.vmentry_error: expected \"none\" or a VM-instruction error number, got string "
     "'seven'"),
]


@pytest.mark.parametrize("text,message", [(t, m) for _, t, m in BAD],
                         ids=[name for name, _, _ in BAD])
def test_bad_scenario_message(tmp_path, text, message):
    assert error_of(tmp_path, text) == message


def test_empty_file(tmp_path):
    assert error_of(tmp_path, "\n  \n") == \
        "the file is empty; a scenario needs at least one [[events]] table"


def test_binary_file(tmp_path):
    path = tmp_path / "b.toml"
    path.write_bytes(b"name = \"x\"\x00\x01\x02")
    with pytest.raises(ScenarioError, match=r"b\.toml: not a text file \(it contains NUL "
                                            r"bytes\); scenarios are UTF-8 TOML$"):
        load_scenario(path)


def test_non_utf8_file(tmp_path):
    path = tmp_path / "l.toml"
    path.write_bytes("name = \"caf\xe9\"".encode("latin-1"))
    with pytest.raises(ScenarioError, match=r"l\.toml: not a UTF-8 text file; scenarios are "
                                            r"UTF-8 TOML$"):
        load_scenario(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ScenarioError, match=r"nope\.toml: no such file$"):
        load_scenario(tmp_path / "nope.toml")
    with pytest.raises(ScenarioError, match=r": is a directory; give a \.toml scenario file$"):
        load_scenario(tmp_path)


def test_error_carries_file_and_key(tmp_path):
    path = write(tmp_path, "[l1_apic]\ntpr = 300\n" + EVENT)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert (info.value.path, info.value.key) == (str(path), "l1_apic.tpr")


def test_in_l0_is_optional_and_round_trips(tmp_path):
    s = load_scenario(write(tmp_path, EVENT + '[[events]]\nkind = "interrupt"\nvector = 0x30\n'
                                             'route = "ipiv"\nin_l0 = true\n'))
    first, second = s.events
    assert first.in_l0 is False and second.in_l0 is True
    assert first.to_dict() == {"kind": "interrupt", "vector": 0xFF, "route": "ipiv"}
    assert second.to_dict() == {"kind": "interrupt", "vector": 0x30, "route": "ipiv",
                                "in_l0": True}


def test_in_l0_must_be_a_boolean(tmp_path):
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, EVENT.replace('"ipiv"\n', '"ipiv"\nin_l0 = 1\n')))
    assert info.value.key == "events[0].in_l0"
    assert info.value.problem == "expected true or false, got integer 1"


def test_entry_check_failure_agrees_with_the_kvm_model_on_every_combination():
    """Vmcs12Controls.entry_check_failure (the load-time check of a start = "l2" scenario)
    and KVM's nested_vmx_check_apicv_controls() decide the same on every combination of the
    six switches, NV bits 15:8 zero or not, and an aligned, misaligned or too-wide descriptor
    address (SDM 26.2.1.1; EXT-5, EXT-6)."""
    import itertools

    from software_model import KernelVersion, environment, nested
    from software_model.state import Vmcs12

    names = ("external_interrupt_exiting", "process_posted_interrupts",
             "acknowledge_interrupt_on_exit", "virtual_interrupt_delivery", "tpr_shadow",
             "interrupt_window_exiting")
    checked = 0
    for bits in itertools.product((False, True), repeat=len(names)):
        for nv, addr in itertools.product((0xFF, 0x1FF), (0x10000, 0x10008, 1 << 46)):
            c = Vmcs12Controls(**dict(zip(names, bits, strict=True)), posted_intr_nv=nv,
                               posted_intr_desc_addr=addr)
            words = c.control_words()
            vmcs12 = Vmcs12(pin_based_vm_exec_control=words["pin_based"],
                            cpu_based_vm_exec_control=words["proc_based"],
                            secondary_vm_exec_control=words["secondary"],
                            vm_exit_controls=words["exit_controls"], posted_intr_nv=nv,
                            posted_intr_desc_addr=addr)
            vcpu = environment.new_vcpu(KernelVersion.POST_PATCH, maxphyaddr=46)
            vcpu.nested.current_vmcs12 = vmcs12
            kvm_ok = nested.nested_vmx_check_apicv_controls(vcpu, vmcs12) == 0
            assert (c.entry_check_failure(46) is None) == kvm_ok, c
            checked += 1
    assert checked == 64 * 6


def test_every_shipped_scenario_round_trips_through_to_dict():
    """Scenario.to_dict() is the TOML document again: the hardware's jobs carry scenarios made
    in memory across the cocotb process boundary so."""
    from cosim.scenario.format import parse_scenario

    for file in sorted(Path(__file__).parent.parent.joinpath("scenarios").glob("*.toml")):
        scenario = load_scenario(file)
        assert parse_scenario(scenario.to_dict(), scenario.path) == scenario, file.name


def test_expect_accepts_every_outcome_field(tmp_path):
    """[expect] is derived from the outcome record: every field of the JSON outcome can be
    checked (mode and l1_apic.eoi_messages included)."""
    from dataclasses import fields

    from cosim.scenario.outcome import FIELDS, Outcome

    text = EVENT + """
[expect]
vmexit = "none"
vmentry_error = "none"
mode = "l2"
[expect.l1_apic]
irr = []
isr = []
ppr = 0
eoi_messages = []
[expect.pid]
pir = []
on = false
sn = false
[expect.l2]
virr = []
visr = [0x41]
rvi = 0
svi = 0x41
vppr = 0x40
delivered = [0x41]
"""
    expect = load_scenario(write(tmp_path, PI + text)).expect
    assert [name for name, _ in expect.checks] == list(FIELDS)
    assert len(FIELDS) == sum(len(fields(f.type)) if f.name not in ("vmexit", "vmentry_error",
                                                                     "mode") else 1
                              for f in fields(Outcome))

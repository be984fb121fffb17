"""kvm-unit-tests replays (``docs/kernel.md``): scenario files generated from the tests.

- :func:`posted_interrupts` -- ``vmx_posted_interrupts_test`` (x86/vmx_tests.c @ 1da1819e,
  line 11946): for every TPR class 0..15 and vector 33..255, L2 runs with vTPR = class << 4 and
  ``GUEST_INT_STATUS`` = 0; the worker vCPU sets PIR[vector] and ON, then sends the
  notification vector 255 to vCPU0 as an IPI, which IPI virtualization posts into L1's
  descriptor (the route that found the bug, bugzilla #219210). ``vector >> 4 <= class``
  (``VID_OP_SPIN_IRR``): the vector waits in VIRR, RVI = vector, no delivery. Otherwise
  (``VID_OP_SPIN``/``VID_OP_HLT``): L2's handler runs once and EOIs; ``GUEST_INT_STATUS`` = 0.
  16 x 223 = 3568 scenarios.
- :func:`posted_intr_entry_checks` -- ``test_posted_intr()`` (line 4313) and
  ``test_virtual_intr_ctls()`` (line 4249): VM entries with each control combination,
  notification vector and descriptor address the test tries; valid or VM-instruction error 7.

``pi-cosim kut DIR`` writes them as TOML files; replay them with ``pi-cosim replay DIR/*.toml``.
"""

from collections.abc import Iterator
from pathlib import Path

__all__ = ["KUT_COMMIT", "posted_interrupts", "posted_intr_entry_checks", "write_all"]

KUT_COMMIT = "1da1819e"
DESC_ADDR = 0x10000
MAXPHYADDR = 46
PAGE_SIZE = 4096

_PI_VMCS12 = """[vmcs12]
external_interrupt_exiting = true
process_posted_interrupts = true
acknowledge_interrupt_on_exit = true
virtual_interrupt_delivery = true
tpr_shadow = true
posted_intr_nv = 0xff
posted_intr_desc_addr = 0x10000
"""


def posted_interrupts() -> Iterator[tuple[str, str]]:
    """(file name, TOML text) for every case of ``vmx_posted_interrupts_test``."""
    for tpr_class in range(16):
        for vector in range(33, 256):
            name = f"kut-posted-intr-c{tpr_class:02d}-v{vector:#04x}"
            delivered = vector >> 4 > tpr_class
            events = [f'[[events]]\nkind = "post"\nvector = {vector:#04x}\n',
                      '[[events]]\nkind = "interrupt"\nvector = 0xff\nroute = "ipiv"\n']
            if delivered:
                events.append('[[events]]\nkind = "l2_eoi"\n')
                expect = ("[expect.l2]\nvirr = []\nvisr = []\nrvi = 0x00\nsvi = 0x00\n"
                          f"delivered = [{vector:#04x}]\n")
                op = "VID_OP_SPIN/VID_OP_HLT: L2's handler runs once and EOIs"
            else:
                expect = (f"[expect.l2]\nvirr = [{vector:#04x}]\nrvi = {vector:#04x}\n"
                          "svi = 0x00\ndelivered = []\n")
                op = "VID_OP_SPIN_IRR: the vector waits in VIRR with RVI = vector"
            yield f"{name}.toml", (
                f'name = "{name}"\n'
                f'description = """kvm-unit-tests {KUT_COMMIT} vmx_posted_interrupts_test, '
                f"TPR class {tpr_class}, vector {vector:#04x}: {op}.\"\"\"\n\n"
                + _PI_VMCS12
                + "\n[pid]\nnv = 0xff\n\n"
                + f"[l2]\nvtpr = {tpr_class << 4:#04x}\nrvi = 0x00\nrflags_if = true\n\n"
                + "\n".join(events)
                + '\n[expect]\nvmexit = "none"\n[expect.pid]\npir = []\non = false\n'
                + expect)


def _entry(name: str, what: str, valid: bool, *, ppi=True, vid=True, ack=True, ext=True,
           nv=0xFF, addr=DESC_ADDR) -> tuple[str, str]:
    error = '"none"' if valid else "7"
    return f"{name}.toml", (
        f'name = "{name}"\n'
        f'description = """kvm-unit-tests {KUT_COMMIT} {what}: '
        f'{"valid" if valid else "invalid (VMfailValid, error 7)"}."""\n'
        'start = "l1"\n'
        f"maxphyaddr = {MAXPHYADDR}\n\n"
        "[vmcs12]\n"
        f"external_interrupt_exiting = {str(ext).lower()}\n"
        f"process_posted_interrupts = {str(ppi).lower()}\n"
        f"acknowledge_interrupt_on_exit = {str(ack).lower()}\n"
        f"virtual_interrupt_delivery = {str(vid).lower()}\n"
        "tpr_shadow = true\n"
        f"posted_intr_nv = {nv:#x}\n"
        f"posted_intr_desc_addr = {addr:#x}\n\n"
        '[[events]]\nkind = "vm_entry"\n\n'
        f'[expect]\nvmexit = "none"\nvmentry_error = {error}\n')


def posted_intr_entry_checks() -> Iterator[tuple[str, str]]:
    """(file name, TOML text) for the VM-entry checks of ``test_posted_intr()``."""
    t = "test_posted_intr"
    yield _entry("kut-entry-01-pi-no-vid", f"{t} 1: PI=1, VID=0", False, vid=False)
    yield _entry("kut-entry-02-pi-vid-no-ack", f"{t} 2: PI=1, VID=1, INTA=0", False, ack=False)
    yield _entry("kut-entry-04-pi-vid-ack", f"{t} 4: INTA=1", True)
    yield _entry("kut-entry-05-pi-ack-no-vid", f"{t} 5: VID=0 (INTA=1)", False, vid=False)
    for i in range(16):
        yield _entry(f"kut-entry-07-nv-bit{i:02d}", f"{t} 7: PINV = 1<<{i}", i < 8, nv=1 << i)
    yield _entry("kut-entry-07-nv-zero", f"{t} 7: PINV = 0", True, nv=0)
    for i in range(6):
        yield _entry(f"kut-entry-08-desc-bit{i}", f"{t} 8: descriptor address 1<<{i}", False,
                     addr=1 << i)
    for addr, valid in ((0xF0, False), (0xFF, False), (0x0F, False), (0x8000, True),
                        (0x0, True), (0xC000, True)):
        yield _entry(f"kut-entry-08-desc-{addr:#06x}", f"{t} 8: descriptor address {addr:#x}",
                     valid, addr=addr)
    for i in range(64):
        yield _entry(f"kut-entry-09-desc-bit{i:02d}",
                     f"{t} 9 (test_vmcs_addr_values): descriptor address 1<<{i}",
                     i >= 6 and (1 << i) < 1 << MAXPHYADDR, addr=1 << i)
    for addr, valid in ((PAGE_SIZE - 1, False), (PAGE_SIZE, True),
                        ((1 << MAXPHYADDR) - PAGE_SIZE, True), ((1 << 64) - 1, False)):
        yield _entry(f"kut-entry-09-desc-{addr:#x}",
                     f"{t} 9 (test_vmcs_addr_values): descriptor address {addr:#x}", valid,
                     addr=addr)
    v = "test_virtual_intr_ctls"
    yield _entry("kut-entry-vid-no-extint", f"{v}: VID=1, PIN_EXTINT=0", False, ppi=False,
                 ack=False, ext=False)
    yield _entry("kut-entry-vid-extint", f"{v}: VID=1, PIN_EXTINT=1", True, ppi=False,
                 ack=False)


SUITES = {"posted-interrupts": posted_interrupts, "entry-checks": posted_intr_entry_checks}


def write_all(directory: Path, suites=tuple(SUITES)) -> list[Path]:
    """Write the scenario files of ``suites`` under ``directory``; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for suite in suites:
        for name, text in SUITES[suite]():
            path = directory / name
            path.write_text(text)
            paths.append(path)
    return paths

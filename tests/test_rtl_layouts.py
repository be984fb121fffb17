"""rtl/layouts.py: sizes and offsets pinned against the SDM tables (VMCS fields, descriptor)
and against the software model's constants. Also guards the `from __future__` trap."""

from amaranth.lib import data

from rtl.layouts import (
    EXIT_CONTROLS,
    NOTIFY_INFO_OFFSET,
    PIN_BASED_CONTROLS,
    PIR_WORDS,
    PROC_BASED_CONTROLS,
    SECONDARY_CONTROLS,
    WORD_BITS,
    ExitIntrInfo,
    ExitReason,
    GuestIntrStatus,
    InterruptionType,
    NotifyInfo,
    PIDescriptor,
)
from software_model import constants as kvm


def offsets(layout):
    return {name: (field.offset, field.width) for name, field in data.Layout.cast(layout)}


def test_pi_descriptor_matches_pi_1():
    assert data.Layout.cast(PIDescriptor).size == 512
    o = offsets(PIDescriptor)
    assert o["pir"] == (0, 256)
    assert o["notify"] == (256, 64)
    n = offsets(NotifyInfo)
    assert (n["on"], n["sn"], n["nv"], n["ndst"]) == ((0, 1), (1, 1), (16, 8), (32, 32))
    assert (NOTIFY_INFO_OFFSET, WORD_BITS, PIR_WORDS) == (32, 64, 4)


def test_pi_descriptor_const_round_trip():
    c = PIDescriptor.const({"pir": 1 << 0x41, "notify": {"on": 1, "nv": 0xF2, "ndst": 3}})
    bits = c.as_bits()
    assert bits == 1 << 0x41 | 1 << 256 | 0xF2 << 272 | 3 << 288
    assert PIDescriptor.from_bits(bits) == c


def test_guest_interrupt_status_is_rvi_low_svi_high():
    assert offsets(GuestIntrStatus) == {"rvi": (0, 8), "svi": (8, 8)}


def test_exit_interruption_information_layout():
    assert data.Layout.cast(ExitIntrInfo).size == 32
    o = offsets(ExitIntrInfo)
    assert (o["vector"], o["type"], o["error_code_valid"], o["nmi_unblocking"], o["valid"]) == \
        ((0, 8), (8, 3), (11, 1), (12, 1), (31, 1))
    info = ExitIntrInfo.const({"vector": 0xFF, "type": InterruptionType.EXTERNAL_INTERRUPT,
                               "valid": 1})
    assert info.as_bits() == 0x800000FF == kvm.INTR_INFO_VALID_MASK | kvm.INTR_TYPE_EXT_INTR | 0xFF


def test_control_bits_match_the_kernel_encodings():
    def bit(layout, name):
        return data.Layout.cast(layout).const({name: 1}).as_bits()

    assert bit(PIN_BASED_CONTROLS, "ext_intr_exiting") == kvm.PIN_BASED_EXT_INTR_MASK
    assert bit(PIN_BASED_CONTROLS, "nmi_exiting") == kvm.PIN_BASED_NMI_EXITING
    assert bit(PIN_BASED_CONTROLS, "virtual_nmis") == kvm.PIN_BASED_VIRTUAL_NMIS
    assert bit(PIN_BASED_CONTROLS, "preemption_timer") == kvm.PIN_BASED_VMX_PREEMPTION_TIMER
    assert bit(PIN_BASED_CONTROLS, "posted_intr") == kvm.PIN_BASED_POSTED_INTR
    assert bit(PROC_BASED_CONTROLS, "intr_window_exiting") == kvm.CPU_BASED_INTR_WINDOW_EXITING
    assert bit(PROC_BASED_CONTROLS, "use_tpr_shadow") == kvm.CPU_BASED_TPR_SHADOW
    assert bit(PROC_BASED_CONTROLS, "nmi_window_exiting") == kvm.CPU_BASED_NMI_WINDOW_EXITING
    assert bit(PROC_BASED_CONTROLS, "secondary_ctls") == \
        kvm.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS
    assert bit(PROC_BASED_CONTROLS, "tertiary_ctls") == 1 << 17
    assert bit(SECONDARY_CONTROLS, "virt_intr_delivery") == \
        kvm.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY
    assert bit(SECONDARY_CONTROLS, "virt_x2apic_mode") == \
        kvm.SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE
    assert bit(SECONDARY_CONTROLS, "apic_reg_virt") == kvm.SECONDARY_EXEC_APIC_REGISTER_VIRT
    assert bit(SECONDARY_CONTROLS, "virt_apic_accesses") == \
        kvm.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES
    assert bit(EXIT_CONTROLS, "ack_intr_on_exit") == kvm.VM_EXIT_ACK_INTR_ON_EXIT


def test_vm_instruction_error_matches_the_kernel():
    from rtl.top import VMXERR_ENTRY_INVALID_CONTROL_FIELD

    assert VMXERR_ENTRY_INVALID_CONTROL_FIELD == kvm.VMXERR_ENTRY_INVALID_CONTROL_FIELD == 7


def test_exit_reasons():
    assert ExitReason.EXTERNAL_INTERRUPT.value == kvm.EXIT_REASON_EXTERNAL_INTERRUPT == 1
    assert (ExitReason.VIRTUALIZED_EOI.value, ExitReason.APIC_WRITE.value) == (45, 56)

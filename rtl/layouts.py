"""Architectural data layouts, named with SDM and KVM mnemonics.

Ref: Intel SDM Vol. 3 (2016 numbering, as in ``docs/clauses.toml``): 24.4.2 guest interrupt
status, 24.6.1 pin-based controls, 24.6.2 processor-based controls, 24.7.1 VM-exit controls,
24.9.2 VM-exit interruption information, 29.6 posted-interrupt descriptor; Linux
``arch/x86/include/asm/posted_intr.h`` (``struct pi_desc``) for SN, NV and NDST.

Never enable postponed evaluation of annotations (PEP 563) here: it empties ``data.Struct`` layouts.
"""

from amaranth.hdl import unsigned
from amaranth.lib import data, enum

__all__ = [
    "EXIT_CONTROLS",
    "PIN_BASED_CONTROLS",
    "PROC_BASED_CONTROLS",
    "SECONDARY_CONTROLS",
    "ExitIntrInfo",
    "ExitReason",
    "GuestIntrStatus",
    "InterruptionType",
    "LapicPreload",
    "NOTIFY_INFO_OFFSET",
    "NotifyInfo",
    "PIDescriptor",
    "PIR_WORDS",
    "Preload",
    "VapicPreload",
    "WORD_BITS",
]


class NotifyInfo(data.Struct):
    """Bytes 32-39 of the posted-interrupt descriptor, the word the IPI-virtualization
    pseudocode calls NotifyInfo (SDM 30.1.6) and step 3 of posted-interrupt processing clears
    ON in (SDM 29.6): one 64-bit memory word."""

    on: 1  # 0      outstanding notification
    sn: 1  # 1      suppress notification
    _rsvd0: 14  # 15:2
    nv: 8  # 23:16  notification vector
    _rsvd1: 8  # 31:24
    ndst: 32  # 63:32  notification destination


class PIDescriptor(data.Struct):
    """Posted-interrupt descriptor, 64 bytes (SDM 29.6; PI-1): PIR in bits 255:0 (memory
    words 0-3), NotifyInfo in bits 319:256 (word 4)."""

    pir: 256  # 255:0   posted-interrupt requests, bit v = vector v
    notify: NotifyInfo  # 319:256
    _rsvd: 192  # 511:320


#: Byte offset of NotifyInfo in the descriptor, and the memory word width (the memory port
#: moves 64-bit words: PIR is words 0-3).
NOTIFY_INFO_OFFSET = data.Layout.cast(PIDescriptor)["notify"].offset // 8
WORD_BITS = data.Layout.cast(NotifyInfo).size
PIR_WORDS = data.Layout.cast(PIDescriptor)["pir"].width // WORD_BITS


class GuestIntrStatus(data.Struct):
    """Guest interrupt status, VMCS 0810H (SDM 24.4.2; VID-1)."""

    rvi: 8  # requesting virtual interrupt
    svi: 8  # servicing virtual interrupt


class LapicPreload(data.Struct):
    """The local APIC state a test bench loads (a scenario's initial ``[l1_apic]``)."""

    irr: 256
    isr: 256
    tmr: 256
    tpr: 8


class VapicPreload(data.Struct):
    """The virtual-APIC state a test bench loads (a scenario's initial ``[l2]``): the page's
    VIRR, VISR and VTPR, and the guest interrupt status."""

    virr: 256
    visr: 256
    vtpr: 8
    status: GuestIntrStatus


class Preload(data.Struct):
    """Everything the top level loads at once: both APICs, and whether L2 runs."""

    lapic: LapicPreload
    vapic: VapicPreload
    non_root: 1


class InterruptionType(enum.Enum, shape=3):
    """VM-exit interruption-information type field (SDM Table 24-15)."""

    EXTERNAL_INTERRUPT = 0
    NMI = 2
    HARDWARE_EXCEPTION = 3
    SOFTWARE_EXCEPTION = 6


class ExitIntrInfo(data.Struct):
    """VM-exit interruption information (SDM 24.9.2, Table 24-15)."""

    vector: 8
    type: InterruptionType
    error_code_valid: 1
    nmi_unblocking: 1
    _rsvd: 18
    valid: 1


class ExitReason(enum.Enum, shape=16):
    """Basic VM-exit reasons used by this path (SDM Appendix C)."""

    NONE = 0xFFFF  # no VM exit (not an SDM value: the idle state of the port)
    EXCEPTION_NMI = 0
    EXTERNAL_INTERRUPT = 1
    TPR_BELOW_THRESHOLD = 43
    VIRTUALIZED_EOI = 45
    APIC_WRITE = 56


#: Pin-based VM-execution controls (SDM 24.6.1, Table 24-5).
PIN_BASED_CONTROLS = data.FlexibleLayout(32, {
    "ext_intr_exiting": data.Field(unsigned(1), 0),
    "nmi_exiting": data.Field(unsigned(1), 3),
    "virtual_nmis": data.Field(unsigned(1), 5),
    "preemption_timer": data.Field(unsigned(1), 6),
    "posted_intr": data.Field(unsigned(1), 7),
})

#: Primary processor-based VM-execution controls (SDM 24.6.2, Table 24-6).
PROC_BASED_CONTROLS = data.FlexibleLayout(32, {
    "intr_window_exiting": data.Field(unsigned(1), 2),
    "tertiary_ctls": data.Field(unsigned(1), 17),
    "use_tpr_shadow": data.Field(unsigned(1), 21),
    "nmi_window_exiting": data.Field(unsigned(1), 22),
    "secondary_ctls": data.Field(unsigned(1), 31),
})

#: Secondary processor-based VM-execution controls (SDM 24.6.2, Table 24-7).
SECONDARY_CONTROLS = data.FlexibleLayout(32, {
    "virt_apic_accesses": data.Field(unsigned(1), 0),
    "virt_x2apic_mode": data.Field(unsigned(1), 4),
    "apic_reg_virt": data.Field(unsigned(1), 8),
    "virt_intr_delivery": data.Field(unsigned(1), 9),
})

#: VM-exit controls (SDM 24.7.1, Table 24-10).
EXIT_CONTROLS = data.FlexibleLayout(32, {
    "ack_intr_on_exit": data.Field(unsigned(1), 15),
})

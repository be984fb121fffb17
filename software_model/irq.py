"""``arch/x86/kvm/irq.c`` at 363010e1dd0e (v2 2/7) with v2 5/7's ``kvm_cpu_get_interrupt``.

The ExtINT source (8259 PIC output, split-irqchip ``pending_external_vector`` or Xen upcall) is
``vcpu.extint_vector``; LVT0 is assumed to accept PIC interrupts whenever one is pending.
"""

from . import lapic, vmx
from .state import Vcpu

__all__ = [
    "kvm_cpu_get_extint",
    "kvm_cpu_get_interrupt",
    "kvm_cpu_has_extint",
    "kvm_cpu_has_injectable_intr",
    "kvm_cpu_has_interrupt",
]


def kvm_cpu_has_extint(v: Vcpu) -> bool:
    return v.extint_vector != -1


def kvm_cpu_get_extint(v: Vcpu) -> int:
    """Return the ExtINT vector and acknowledge it at its source (PIC INTA); -1 if none."""
    vector = v.extint_vector
    v.extint_vector = -1
    return vector


def kvm_cpu_has_interrupt(v: Vcpu) -> bool:
    return kvm_cpu_has_extint(v) or lapic.kvm_apic_has_interrupt(v) != -1


def kvm_cpu_has_injectable_intr(v: Vcpu) -> bool:
    if kvm_cpu_has_extint(v):
        return True
    # with APICv, L1's interrupts are delivered by virtual-interrupt delivery, not injected
    if not vmx.is_guest_mode(v) and v.apic.apicv_active:
        return False
    return lapic.kvm_apic_has_interrupt(v) != -1


def kvm_cpu_get_interrupt(v: Vcpu) -> int:
    vector = kvm_cpu_get_extint(v)
    if vector != -1:
        return vector  # PIC
    vector = lapic.kvm_apic_has_interrupt(v)
    if vector != -1:
        lapic.kvm_apic_ack_interrupt(v, vector)
    return vector

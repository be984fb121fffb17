"""L1's local APIC as KVM keeps it: ``arch/x86/kvm/lapic.c``.

Pinned to torvalds/linux aa9477966aab (v2 5/7, identical for the functions here at 8c23670f2b00
and 6e0b456547f4; ``kvm_apic_ack_interrupt`` exists since a194a3a13ce0, v2 1/7). Each function
mirrors the kernel function of the same name, statement by statement (``docs/kernel.md``).
The ``kvm_x86_ops`` hooks called from here (``sync_pir_to_irr``, ``hwapic_irr_update``,
``hwapic_isr_update``) are VMX's, in :mod:`software_model.vmx`.
"""

from . import vmx
from .state import Lapic, Request, Vcpu

__all__ = [
    "__apic_update_ppr",
    "__kvm_apic_update_irr",
    "apic_clear_irr",
    "apic_clear_isr",
    "apic_find_highest_irr",
    "apic_find_highest_isr",
    "apic_has_interrupt_for_ppr",
    "apic_set_eoi",
    "apic_set_isr",
    "apic_update_ppr",
    "find_highest_vector",
    "kvm_apic_accept_fixed_irq",
    "kvm_apic_ack_interrupt",
    "kvm_apic_clear_irr",
    "kvm_apic_has_interrupt",
    "kvm_apic_present",
    "kvm_apic_update_hwapic_isr",
    "kvm_apic_update_irr",
    "kvm_ioapic_send_eoi",
    "kvm_lapic_find_highest_irr",
    "kvm_lapic_set_irr",
    "kvm_lapic_set_tpr",
]


def find_highest_vector(bitmap: int) -> int:
    """Highest set bit of a 256-bit APIC bitmap, or -1 (scans 224, 192, ..., 0)."""
    return bitmap.bit_length() - 1


def apic_find_highest_irr(apic: Lapic) -> int:
    """``apic_find_highest_irr()``: -1 when ``irr_pending`` is clear (never with APICv)."""
    if not apic.irr_pending:
        return -1
    return find_highest_vector(apic.regs.irr)


def kvm_lapic_find_highest_irr(vcpu: Vcpu) -> int:
    return apic_find_highest_irr(vcpu.apic)


def apic_find_highest_isr(apic: Lapic) -> int:
    """``apic_find_highest_isr()``: uses the ISR cache only without APICv."""
    if not apic.isr_count:
        return -1
    if apic.highest_isr_cache != -1:
        return apic.highest_isr_cache
    return find_highest_vector(apic.regs.isr)


def __apic_update_ppr(apic: Lapic) -> tuple[bool, int]:
    """``__apic_update_ppr(apic, &new_ppr)``: returns ``(ppr < old_ppr, new_ppr)``.

    ``PPR = TPR`` if ``TPR[7:4] >= ISRV[7:4]`` else ``ISRV & 0xf0`` (SDM 10.8.3.1, APIC-7).
    """
    old_ppr = apic.regs.ppr
    tpr = apic.regs.tpr
    isr = apic_find_highest_isr(apic)
    isrv = isr if isr != -1 else 0
    if (tpr & 0xF0) >= (isrv & 0xF0):
        ppr = tpr & 0xFF
    else:
        ppr = isrv & 0xF0
    if old_ppr != ppr:
        apic.regs.ppr = ppr
    return ppr < old_ppr, ppr


def apic_update_ppr(apic: Lapic) -> None:
    decreased, ppr = __apic_update_ppr(apic)
    if decreased and apic_has_interrupt_for_ppr(apic, ppr) != -1:
        apic.vcpu.requests.add(Request.EVENT)


def apic_has_interrupt_for_ppr(apic: Lapic, ppr: int) -> int:
    """Highest IRR vector whose class is above ``ppr``'s, or -1.

    Side effect: VMX's ``sync_pir_to_irr`` moves L1's posted interrupts (KVM's own PID) into
    IRR first.
    """
    # kvm_x86_ops.sync_pir_to_irr is non-NULL on VMX with enable_apicv
    highest_irr = vmx.vmx_sync_pir_to_irr(apic.vcpu)
    if highest_irr == -1 or (highest_irr & 0xF0) <= ppr:
        return -1
    return highest_irr


def kvm_apic_present(vcpu: Vcpu) -> bool:
    return vcpu.apic.hw_enabled


def kvm_apic_has_interrupt(vcpu: Vcpu) -> int:
    """The vector L1's APIC would deliver next, without acknowledging it; -1 if none.

    Side effects: PPR is refreshed and L1's PIR is synced into IRR.
    """
    apic = vcpu.apic
    if not kvm_apic_present(vcpu):
        return -1
    _, ppr = __apic_update_ppr(apic)
    return apic_has_interrupt_for_ppr(apic, ppr)


def apic_clear_irr(vec: int, apic: Lapic) -> None:
    if apic.apicv_active:
        apic.regs.irr &= ~(1 << vec)
        vmx.vmx_hwapic_irr_update(apic.vcpu, apic_find_highest_irr(apic))
    else:
        apic.irr_pending = False
        apic.regs.irr &= ~(1 << vec)
        if find_highest_vector(apic.regs.irr) != -1:
            apic.irr_pending = True


def kvm_apic_clear_irr(vcpu: Vcpu, vec: int) -> None:
    """Exported wrapper used by nested VMX: IRR bit cleared; ISR and PPR untouched."""
    apic_clear_irr(vec, vcpu.apic)


def kvm_apic_update_hwapic_isr(vcpu: Vcpu) -> None:
    """Bring the loaded VMCS's SVI up to date with ISR (called at nested VM-Exit when an SVI
    update was deferred, 04bc93cf49d1)."""
    apic = vcpu.apic
    if not apic.apicv_active:
        return
    vmx.vmx_hwapic_isr_update(vcpu, apic_find_highest_isr(apic))


def apic_set_isr(vec: int, apic: Lapic) -> None:
    if apic.regs.isr >> vec & 1:
        return
    apic.regs.isr |= 1 << vec
    if apic.apicv_active:
        vmx.vmx_hwapic_isr_update(apic.vcpu, vec)
    else:
        apic.isr_count += 1
        apic.highest_isr_cache = vec


def apic_clear_isr(vec: int, apic: Lapic) -> None:
    if not apic.regs.isr >> vec & 1:
        return
    apic.regs.isr &= ~(1 << vec)
    if apic.apicv_active:
        vmx.vmx_hwapic_isr_update(apic.vcpu, apic_find_highest_isr(apic))
    else:
        apic.isr_count -= 1
        apic.highest_isr_cache = -1


def kvm_apic_ack_interrupt(vcpu: Vcpu, vector: int) -> None:
    """The "ack" half of the old ``kvm_get_apic_interrupt()`` (a194a3a13ce0): IRR -> ISR.

    Hyper-V SynIC auto-EOI vectors are not modelled (no SynIC), so the ISR branch is taken.
    """
    apic = vcpu.apic
    if vector < 0:  # WARN_ON_ONCE(vector < 0 || !apic)
        vcpu.trace(f"WARN: kvm_apic_ack_interrupt({vector})")
        return
    apic_clear_irr(vector, apic)
    # kvm_hv_synic_auto_eoi_set() is false without SynIC
    apic_set_isr(vector, apic)
    __apic_update_ppr(apic)


def kvm_lapic_set_irr(vec: int, apic: Lapic) -> None:
    """``kvm_lapic_set_irr()``: set IRR[vec]; with APICv ``irr_pending`` is always true."""
    apic.regs.irr |= 1 << vec
    apic.irr_pending = True


def __kvm_apic_update_irr(pir_desc, regs) -> tuple[bool, int]:
    """Merge PIR into ``regs``' IRR 32 bits at a time; PIR chunks are cleared with ``xchg``.

    Returns ``(irr_updated_and_is_max, max_irr)`` where ``max_irr`` is the highest bit of the
    whole merged IRR (not only of PIR), -1 if IRR is empty.
    """
    max_updated_irr = -1
    max_irr = -1
    for i in range(8):
        vec = 32 * i
        irr_val = (regs.irr >> vec) & 0xFFFFFFFF
        pir_val = pir_desc.pir_chunk(i)  # READ_ONCE(pir[i])
        if pir_val:
            pir_val = pir_desc.xchg_pir_chunk(i, 0)
            prev_irr_val = irr_val
            irr_val = prev_irr_val | pir_val  # the try_cmpxchg loop succeeds first time here
            regs.irr |= irr_val << vec
            if prev_irr_val != irr_val:
                max_updated_irr = (irr_val ^ prev_irr_val).bit_length() - 1 + vec
        if irr_val:
            max_irr = irr_val.bit_length() - 1 + vec
    return (max_updated_irr != -1 and max_updated_irr == max_irr), max_irr


def kvm_apic_update_irr(vcpu: Vcpu, pir_desc) -> tuple[bool, int]:
    apic = vcpu.apic
    irr_updated, max_irr = __kvm_apic_update_irr(pir_desc, apic.regs)
    if not apic.apicv_active and irr_updated:
        apic.irr_pending = True
    return irr_updated, max_irr


def kvm_ioapic_send_eoi(apic: Lapic, vector: int) -> None:
    """Forward an EOI to the in-kernel I/O APIC with the vector's trigger mode (from TMR).

    The model assumes the I/O APIC handles every vector (``kvm_ioapic_handles_vector``); only
    level-triggered EOIs have an effect there, and those are what the hardware's EOI message is.
    """
    level = bool(apic.regs.tmr >> vector & 1)
    apic.ioapic_eois.append((vector, level))


def apic_set_eoi(apic: Lapic) -> int:
    """An EOI write to L1's APIC as KVM emulates it: clear the highest ISR bit (APIC-11)."""
    vector = apic_find_highest_isr(apic)
    # "Not every write EOI will has corresponding ISR"
    if vector == -1:
        return vector
    apic_clear_isr(vector, apic)
    apic_update_ppr(apic)
    kvm_ioapic_send_eoi(apic, vector)
    apic.vcpu.requests.add(Request.EVENT)
    return vector


def kvm_lapic_set_tpr(vcpu: Vcpu, tpr: int) -> None:
    """``kvm_lapic_set_tpr()`` -> ``apic_set_tpr()``: write TPR, then ``apic_update_ppr``."""
    apic = vcpu.apic
    apic.regs.tpr = tpr & 0xFF
    apic_update_ppr(apic)


def kvm_apic_accept_fixed_irq(vcpu: Vcpu, vector: int, trig_mode: bool) -> int:
    """``__apic_accept_irq()``, ``APIC_DM_FIXED`` case, for an enabled APIC.

    TMR is updated to the trigger mode, then ``kvm_x86_ops.deliver_interrupt`` (VMX:
    ``vmx_deliver_interrupt``) takes over. Returns 1 (delivered), as the kernel does.
    """
    apic = vcpu.apic
    if bool(apic.regs.tmr >> vector & 1) != trig_mode:
        if trig_mode:
            apic.regs.tmr |= 1 << vector
        else:
            apic.regs.tmr &= ~(1 << vector)
    vmx.vmx_deliver_interrupt(apic, vector)
    return 1

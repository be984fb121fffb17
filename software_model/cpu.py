"""What the physical CPU does with the VMCS that KVM loaded (not KVM code).

KVM leaves part of the work to the processor: after KVM resumes L2 on vmcs02, the CPU evaluates
and delivers L2's pending virtual interrupts (SDM 29.2, virtual-interrupt delivery); a physical
interrupt whose vector is the loaded VMCS's notification vector is posted-interrupt processing
(SDM 29.6); L2's EOI and TPR writes are virtualized (SDM 29.1.2, 29.1.4). This module applies
those rules to the VMCS objects KVM programs, so that each modelled KVM version's outcome
includes what L2 would observe. Clause IDs are those of ``docs/clauses.toml``.

Assumptions shared with the hardware model: a delivered virtual interrupt runs L2's handler to
its IRET without an EOI (EOIs are explicit ``l2_eoi`` events). Recognition ceases after a
delivery and is re-armed only by the next evaluation (SDM 29.2.1), so each evaluation delivers
at most one virtual interrupt. L1 runs with RFLAGS.IF = 0 between its VM entries, so vmcs01
delivers to L1 only when L1 opens an interrupt window (``environment.sti``).
KVM's "immediate exit" uses a zero VMX-preemption timer, whose VM exit has
priority over virtual-interrupt delivery.
"""

from . import x86
from .constants import (
    CPU_BASED_INTR_WINDOW_EXITING,
    CPU_BASED_TPR_SHADOW,
    INTR_INFO_VALID_MASK,
    PIN_BASED_POSTED_INTR,
    SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY,
)
from .state import ApicPage, Vcpu, VcpuMode, Vmcs

__all__ = [
    "deliver_pending_virtual_interrupts",
    "eoi_virtualization",
    "evaluate_pending_virtual_interrupts",
    "physical_interrupt",
    "posted_interrupt_processing",
    "ppr_virtualization",
    "tpr_virtualization",
    "vm_entry",
]


def _has_vid(vmcs: Vmcs) -> bool:
    return bool(vmcs.secondary & SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY)


def _hsb(bitmap: int) -> int:
    return bitmap.bit_length() - 1


def _page(vmcs: Vmcs) -> ApicPage:
    """The virtual-APIC page of a VMCS that uses one (the callers check the controls)."""
    assert vmcs.virtual_apic is not None, f"{vmcs.name} has no virtual-APIC page"
    return vmcs.virtual_apic


def ppr_virtualization(vmcs: Vmcs) -> None:
    """VID-3: VPPR := VTPR if VTPR[7:4] >= SVI[7:4], else SVI & F0H."""
    page = _page(vmcs)
    vtpr = page.tpr
    svi = vmcs.svi
    page.ppr = (vtpr & 0xFF) if (vtpr >> 4) >= (svi >> 4) else (svi & 0xF0)


def evaluate_pending_virtual_interrupts(vmcs: Vmcs) -> bool:
    """VID-4: recognized iff interrupt-window exiting = 0 and RVI[7:4] > VPPR[7:4]."""
    if vmcs.cpu_based & CPU_BASED_INTR_WINDOW_EXITING:
        return False
    return (vmcs.rvi >> 4) > (_page(vmcs).ppr >> 4)


def _delivery_unblocked(vcpu: Vcpu, vmcs: Vmcs) -> bool:
    """VID-6: RFLAGS.IF = 1, no STI or MOV-SS blocking (window exiting is in VID-4)."""
    if vmcs is vcpu.vmcs01:
        return vcpu.l1_rflags_if
    return vcpu.l2_rflags_if and not vcpu.l2_sti_blocking and not vcpu.l2_mov_ss_blocking


def deliver_pending_virtual_interrupts(vcpu: Vcpu, vmcs: Vmcs) -> None:
    """Evaluate (VID-4), then deliver the recognized virtual interrupt through the guest IDT
    if delivery is unblocked (VID-6, VID-7). "The logical processor ceases recognition of a
    pending virtual interrupt following the delivery of a virtual interrupt" (SDM 29.2.2)."""
    if not _has_vid(vmcs):
        return
    page = _page(vmcs)
    if _delivery_unblocked(vcpu, vmcs) and evaluate_pending_virtual_interrupts(vmcs):
        vector = vmcs.rvi
        page.isr |= 1 << vector
        page.ppr = vector & 0xF0
        page.irr &= ~(1 << vector)
        rvi = max(_hsb(page.irr), 0)
        vmcs.guest_intr_status = (vector << 8) | rvi
        if vmcs is vcpu.vmcs02:
            vcpu.l2_delivered.append(vector)
            vcpu.trace(f"cpu: virtual interrupt {vector:#04x} delivered to L2")
        else:
            vcpu.trace(f"cpu: virtual interrupt {vector:#04x} delivered to L1")


def posted_interrupt_processing(vcpu: Vcpu, vmcs: Vmcs) -> None:
    """SDM 29.6 steps 3, 5, 6, 7 on the loaded VMCS's descriptor and virtual-APIC page.

    Steps 1, 2 and 4 (acknowledge, compare, EOI) happen on the host's physical local APIC,
    which is not part of this model.
    """
    desc = vmcs.posted_intr_desc
    assert desc is not None, f"{vmcs.name} has no posted-interrupt descriptor"
    page = _page(vmcs)
    desc.on = False  # step 3
    harvested = desc.pir  # step 5: read-and-clear, OR into VIRR
    desc.pir = 0
    page.irr |= harvested
    if harvested:  # step 6: RVI := max(RVI, hsb(PIR))
        rvi = max(vmcs.rvi, _hsb(harvested))
        vmcs.guest_intr_status = (vmcs.guest_intr_status & 0xFF00) | rvi
    vcpu.trace(f"cpu: posted-interrupt processing on {vmcs.name}: PIR {harvested:#x} -> VIRR, "
               f"RVI = {vmcs.rvi:#04x}")
    deliver_pending_virtual_interrupts(vcpu, vmcs)  # step 7


def physical_interrupt(vcpu: Vcpu, vector: int) -> None:
    """The pCPU running ``vcpu`` in VMX non-root operation receives a physical interrupt.

    A match with the loaded VMCS's notification vector is posted-interrupt processing (no VM
    exit); any other vector is an external-interrupt VM exit to L0 (KVM always sets
    external-interrupt exiting in vmcs01 and vmcs02), after which KVM runs the vCPU again
    (unless the scenario holds it in L0 for an interrupt that arrives meanwhile). While the
    vCPU is in L0 the host takes the interrupt.
    """
    vmcs = vcpu.loaded_vmcs
    if vcpu.mode is not VcpuMode.IN_GUEST_MODE:
        # the pCPU runs the host (KVM handles an earlier exit): the host's handler for KVM's
        # notification vectors does nothing; KVM syncs the PIR before its next VM entry
        vcpu.trace(f"cpu: interrupt {vector:#04x} taken by the host (the vCPU is in L0)")
        return
    if vmcs.pin_based & PIN_BASED_POSTED_INTR and vector == vmcs.posted_intr_nv:
        posted_interrupt_processing(vcpu, vmcs)
        return
    vcpu.trace(f"cpu: external-interrupt VM exit to L0 ({vector:#04x}) from {vmcs.name}")
    vcpu.mode = VcpuMode.OUTSIDE_GUEST_MODE
    if vcpu.hold_in_l0:  # the scenario's next interrupt arrives before KVM re-enters
        vcpu.held_in_l0 = True
        vcpu.trace("the vCPU stays in L0: the next interrupt arrives before KVM runs it again")
        return
    x86.vcpu_run(vcpu)


def vm_entry(vcpu: Vcpu, immediate_exit: bool) -> None:
    """VM entry to the loaded VMCS (VID-11), event injection, then L2 runs until quiescent.

    With ``immediate_exit`` the zero VMX-preemption timer exits before any virtual interrupt
    is delivered (it has higher priority, SDM 6.9 / 25.2).
    """
    vmcs = vcpu.loaded_vmcs
    entry_ppr_virtualization(vmcs)
    if vmcs.vm_entry_intr_info & INTR_INFO_VALID_MASK:
        vector = vmcs.vm_entry_intr_info & 0xFF
        vmcs.vm_entry_intr_info = 0
        vcpu.interrupt_injected = False  # delivered: vmx_complete_interrupts() clears it
        if vmcs is vcpu.vmcs02:
            vcpu.l2_delivered.append(vector)
            vcpu.trace(f"cpu: injected interrupt {vector:#04x} delivered to L2")
    if immediate_exit:
        return
    deliver_pending_virtual_interrupts(vcpu, vmcs)


def entry_ppr_virtualization(vmcs: Vmcs) -> None:
    """What VM entry does to VPPR (VID-11, SDM 26.3.2.5): PPR virtualization, with
    virtual-interrupt delivery (and the TPR shadow it needs) only."""
    if _has_vid(vmcs) and vmcs.cpu_based & CPU_BASED_TPR_SHADOW:
        ppr_virtualization(vmcs)


def eoi_virtualization(vcpu: Vcpu, vmcs: Vmcs) -> None:
    """VID-8 with all EOI-exit bitmap bits 0: clear VISR[SVI], recompute SVI, PPR, evaluate."""
    page = _page(vmcs)
    vector = vmcs.svi
    page.isr &= ~(1 << vector)
    svi = max(_hsb(page.isr), 0)
    vmcs.guest_intr_status = (svi << 8) | vmcs.rvi
    ppr_virtualization(vmcs)
    deliver_pending_virtual_interrupts(vcpu, vmcs)


def tpr_virtualization(vcpu: Vcpu, vmcs: Vmcs, value: int) -> None:
    """VID-9 with VID = 1: write VTPR, PPR virtualization, evaluate."""
    page = _page(vmcs)
    page.tpr = value & 0xFF
    if _has_vid(vmcs):
        ppr_virtualization(vmcs)
        deliver_pending_virtual_interrupts(vcpu, vmcs)

"""VMX-specific KVM code: ``arch/x86/kvm/vmx/vmx.c`` at 1ed0f119c5ff (v2 6/7).

The functions used at the pinned commits are identical in 8c23670f2b00, 6e0b456547f4 and
ce5cdfb49813 except for the comment 6/7 adds to ``vmx_deliver_nested_posted_interrupt``
(``docs/kernel.md``).
"""

from . import cpu, lapic, nested
from .constants import EBUSY, POSTED_INTR_NESTED_VECTOR, POSTED_INTR_VECTOR
from .posted_intr import pi_clear_on, pi_test_and_set_on, pi_test_and_set_pir, pi_test_on
from .state import Lapic, Request, Vcpu, VcpuMode
from .version import Change, KernelVersion

__all__ = [
    "__vmx_interrupt_blocked",
    "is_guest_mode",
    "kvm_vcpu_trigger_posted_interrupt",
    "vmx_deliver_interrupt",
    "vmx_deliver_nested_posted_interrupt",
    "vmx_deliver_posted_interrupt",
    "vmx_hwapic_irr_update",
    "vmx_hwapic_isr_update",
    "vmx_interrupt_allowed",
    "vmx_interrupt_blocked",
    "vmx_nmi_blocked",
    "vmx_set_rvi",
    "vmx_sync_pir_to_irr",
]


def is_guest_mode(vcpu: Vcpu) -> bool:
    return vcpu.guest_mode


#: vmx_hwapic_isr_update(): in guest mode, defer the SVI update to vmcs01 (applied at the next
#: nested VM-Exit) instead of writing the loaded vmcs02 (kvm-x86 b682d2fbf17c)
DEFER_SVI_IN_GUEST_MODE = Change("04bc93cf49d1", "KVM: nVMX: Defer SVI update to vmcs01 on EOI "
                                 "when L2 is active w/o VID", KernelVersion.NOV_2024)


def vmx_hwapic_isr_update(vcpu: Vcpu, max_isr: int) -> None:
    """Write SVI in the *current* VMCS (vmcs01 or vmcs02: see invariant I-7); from
    04bc93cf49d1 on, in guest mode only note that vmcs01's SVI is stale."""
    if DEFER_SVI_IN_GUEST_MODE(vcpu.version) and is_guest_mode(vcpu):
        # "If L2 is active, defer the SVI update until vmcs01 is loaded, as SVI is only
        # relevant for if and only if Virtual Interrupt Delivery is enabled in vmcs12 ..."
        if nested.nested_cpu_has_vid(nested.get_vmcs12(vcpu)):
            vcpu.trace("WARN: vmx_hwapic_isr_update in guest mode with VID in vmcs12")
        vcpu.nested.update_vmcs01_hwapic_isr = True
        return
    if max_isr == -1:
        max_isr = 0
    vmcs = vcpu.loaded_vmcs
    status = vmcs.guest_intr_status
    old = status >> 8
    if max_isr != old:
        status &= 0xFF
        status |= max_isr << 8
        vmcs.guest_intr_status = status


def vmx_set_rvi(vcpu: Vcpu, vector: int) -> None:
    """Write RVI in the current VMCS."""
    if vector == -1:
        vector = 0
    vmcs = vcpu.loaded_vmcs
    status = vmcs.guest_intr_status
    old = status & 0xFF
    if vector != old:
        status &= ~0xFF
        status |= vector
        vmcs.guest_intr_status = status


def vmx_hwapic_irr_update(vcpu: Vcpu, max_irr: int) -> None:
    """RVI follows L1's IRR only while L1 runs: vmcs02's RVI is never written from here."""
    if not is_guest_mode(vcpu):
        vmx_set_rvi(vcpu, max_irr)


def vmx_sync_pir_to_irr(vcpu: Vcpu) -> int:
    """Move L1's posted interrupts (KVM's own PID, ``vmx->pi_desc``) into L1's IRR.

    With L2 running, a newly posted interrupt raises ``KVM_REQ_EVENT`` so that
    ``vmx_check_nested_events()`` sees it (step 4 of ``docs/kernel.md``).
    """
    if pi_test_on(vcpu.pi_desc):
        pi_clear_on(vcpu.pi_desc)
        got_posted_interrupt, max_irr = lapic.kvm_apic_update_irr(vcpu, vcpu.pi_desc)
    else:
        max_irr = lapic.kvm_lapic_find_highest_irr(vcpu)
        got_posted_interrupt = False
    if not is_guest_mode(vcpu) and vcpu.apic.apicv_active:
        vmx_set_rvi(vcpu, max_irr)
    elif got_posted_interrupt:
        vcpu.requests.add(Request.EVENT)
    return max_irr


def kvm_vcpu_trigger_posted_interrupt(vcpu: Vcpu, pi_vec: int) -> None:
    """Send the notification IPI to the pCPU running ``vcpu``, or wake it.

    The sender is another vCPU, never the target itself, so ``vcpu != kvm_get_running_vcpu()``.
    The physical interrupt is handed to :func:`software_model.cpu.physical_interrupt`.
    """
    if vcpu.mode is VcpuMode.IN_GUEST_MODE:
        vcpu.trace(f"kvm_vcpu_trigger_posted_interrupt: IPI {pi_vec:#04x} to the target pCPU")
        cpu.physical_interrupt(vcpu, pi_vec)
        return
    # kvm_vcpu_wake_up(): the vCPU is outside the guest and will see the request itself


def vmx_deliver_nested_posted_interrupt(vcpu: Vcpu, vector: int) -> int:
    """Sender-side nested PI check: an IPI of L2's NV to a vCPU in guest mode.

    "DO NOT query the vCPU's vmcs12, as vmcs12 is dynamically allocated and could be freed
    ... The vCPU's cached PI NV is valid if and only if posted interrupts enabled in its
    vmcs12" (comment added by 1ed0f119c5ff).
    """
    if is_guest_mode(vcpu) and vector == vcpu.nested.posted_intr_nv:
        vcpu.trace(f"vmx_deliver_nested_posted_interrupt: vector {vector:#04x} == nested NV: "
                   "pi_pending = true")
        vcpu.nested.pi_pending = True
        vcpu.requests.add(Request.EVENT)
        # the PIR and ON have been set by L1
        kvm_vcpu_trigger_posted_interrupt(vcpu, POSTED_INTR_NESTED_VECTOR)
        return 0
    return -1


def vmx_deliver_posted_interrupt(vcpu: Vcpu, vector: int) -> int:
    if vmx_deliver_nested_posted_interrupt(vcpu, vector) == 0:
        return 0
    if not vcpu.apic.apicv_active:
        return -1
    if pi_test_and_set_pir(vector, vcpu.pi_desc):
        return 0
    if pi_test_and_set_on(vcpu.pi_desc):
        return 0
    kvm_vcpu_trigger_posted_interrupt(vcpu, POSTED_INTR_VECTOR)
    return 0


def vmx_deliver_interrupt(apic: Lapic, vector: int) -> None:
    """``kvm_x86_ops.deliver_interrupt`` for fixed interrupts (from ``__apic_accept_irq``)."""
    vcpu = apic.vcpu
    if vmx_deliver_posted_interrupt(vcpu, vector):
        lapic.kvm_lapic_set_irr(vector, apic)
        vcpu.requests.add(Request.EVENT)
        # kvm_vcpu_kick(): the vCPU re-evaluates before its next entry


def __vmx_interrupt_blocked(vcpu: Vcpu) -> bool:
    """RFLAGS.IF or STI/MOV-SS blocking of the running guest."""
    if is_guest_mode(vcpu):
        return (not vcpu.l2_rflags_if) or vcpu.l2_sti_blocking or vcpu.l2_mov_ss_blocking
    return not vcpu.l1_rflags_if


def vmx_interrupt_blocked(vcpu: Vcpu) -> bool:
    if is_guest_mode(vcpu) and nested.nested_exit_on_intr(vcpu):
        return False
    return __vmx_interrupt_blocked(vcpu)


def vmx_interrupt_allowed(vcpu: Vcpu, for_injection: bool) -> int:
    if vcpu.nested.nested_run_pending:
        return -EBUSY
    # "An IRQ must not be injected into L2 if it's supposed to VM-Exit, e.g. if the IRQ arrived
    # asynchronously after checking nested events."
    if for_injection and is_guest_mode(vcpu) and nested.nested_exit_on_intr(vcpu):
        return -EBUSY
    return int(not vmx_interrupt_blocked(vcpu))


def vmx_nmi_blocked(vcpu: Vcpu) -> bool:
    if is_guest_mode(vcpu) and nested.nested_exit_on_nmi(vcpu):
        return False
    blocking = vcpu.l2_sti_blocking or vcpu.l2_mov_ss_blocking if is_guest_mode(vcpu) else False
    return vcpu.nmi_masked or blocking

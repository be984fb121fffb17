"""The vCPU run loop: ``arch/x86/kvm/x86.c`` (``vcpu_run``, ``vcpu_enter_guest``,
``kvm_check_and_inject_events``, ``kvm_check_nested_events``).

The text read is kvm-x86/linux 042007c262e5 (2025); its control flow for these functions is the
2024 one (``docs/kernel.md``open point 1). Only the parts on the interrupt path are
modelled: requests other than ``KVM_REQ_EVENT`` / ``KVM_REQ_TRIPLE_FAULT``, SMM, exception and
NMI injection into L1, and userspace exits other than the nested-PI ``-ENXIO`` are not.
"""

from . import cpu, irq, nested, vmx
from .constants import EBUSY, INTR_INFO_VALID_MASK, INTR_TYPE_EXT_INTR
from .state import Request, Vcpu, VcpuMode

__all__ = [
    "MAX_ENTRIES_PER_EVENT",
    "VcpuLivelock",
    "kvm_check_and_inject_events",
    "kvm_check_nested_events",
    "vcpu_enter_guest",
    "vcpu_run",
]

#: A KVM version that cancels or immediately exits more often than this per stimulus is stuck.
MAX_ENTRIES_PER_EVENT = 32


class VcpuLivelock(RuntimeError):
    """``vcpu_run`` kept cancelling entries or exiting immediately."""


def kvm_check_nested_events(vcpu: Vcpu) -> int:
    if Request.TRIPLE_FAULT in vcpu.requests:
        nested.nested_vmx_triple_fault(vcpu)
        return 1
    return nested.vmx_check_nested_events(vcpu)


def kvm_check_and_inject_events(vcpu: Vcpu) -> tuple[int, bool]:
    """Returns ``(r, req_immediate_exit)``; ``r < 0`` makes ``vcpu_enter_guest`` exit to
    userspace. ``-EBUSY`` from the nested check becomes an immediate exit."""
    req_immediate_exit = False
    r = 0
    if vmx.is_guest_mode(vcpu):
        r = kvm_check_nested_events(vcpu)
    # Re-injection of an injected-but-undelivered IRQ: it is still in VM_ENTRY_INTR_INFO.
    if vcpu.interrupt_injected:
        vcpu.loaded_vmcs.vm_entry_intr_info = (INTR_INFO_VALID_MASK | INTR_TYPE_EXT_INTR
                                               | vcpu.interrupt_nr)
    if r < 0:
        return _out(r, req_immediate_exit)
    can_inject = not nested.kvm_event_needs_reinjection(vcpu)
    if irq.kvm_cpu_has_injectable_intr(vcpu):
        r = vmx.vmx_interrupt_allowed(vcpu, True) if can_inject else -EBUSY
        if r < 0:
            return _out(r, req_immediate_exit)
        if r:
            vector = irq.kvm_cpu_get_interrupt(vcpu)
            if vector != -1:
                # kvm_queue_interrupt() + vmx_inject_irq()
                vcpu.interrupt_injected = True
                vcpu.interrupt_nr = vector
                vcpu.loaded_vmcs.vm_entry_intr_info = (INTR_INFO_VALID_MASK
                                                       | INTR_TYPE_EXT_INTR | vector)
                vcpu.trace(f"kvm_check_and_inject_events: inject IRQ {vector:#04x}")
        # if kvm_cpu_has_injectable_intr(): enable_irq_window(): an exit once IF=1, which the
        # model reaches through the next stimulus that runs the vCPU
    if vmx.is_guest_mode(vcpu) and nested.vmx_has_nested_events(vcpu, True):
        req_immediate_exit = True
    return 0, req_immediate_exit


def _out(r: int, req_immediate_exit: bool) -> tuple[int, bool]:
    """The ``out:`` label: ``-EBUSY`` means "enter, force an immediate exit, re-check"."""
    if r == -EBUSY:
        return 0, True
    return r, req_immediate_exit


def kvm_vcpu_exit_request(vcpu: Vcpu) -> bool:
    return bool(vcpu.requests)


def vcpu_enter_guest(vcpu: Vcpu) -> tuple[int, bool]:
    """One pass: handle ``KVM_REQ_EVENT``, sync L1's PIR, then enter the guest unless a new
    request cancels the entry. Returns ``(r, guest_ran)``; ``guest_ran`` is false when the
    entry was cancelled or the guest exited immediately."""
    req_immediate_exit = False
    if Request.EVENT in vcpu.requests or Request.TRIPLE_FAULT in vcpu.requests:
        vcpu.requests.discard(Request.EVENT)  # kvm_check_request(KVM_REQ_EVENT)
        r, req_immediate_exit = kvm_check_and_inject_events(vcpu)
        if r < 0:
            return 0, False
    vcpu.mode = VcpuMode.IN_GUEST_MODE
    # "Process pending posted interrupts to handle the case where the notification IRQ
    # arrived in the host, or was never sent"
    if vcpu.apic.hw_enabled:
        vmx.vmx_sync_pir_to_irr(vcpu)
    if kvm_vcpu_exit_request(vcpu):
        vcpu.mode = VcpuMode.OUTSIDE_GUEST_MODE
        return 1, False  # cancel_injection: an injected IRQ stays queued for the next pass
    if req_immediate_exit:
        vcpu.requests.add(Request.EVENT)
    cpu.vm_entry(vcpu, immediate_exit=req_immediate_exit)
    # vmx_vcpu_run(): "Track VMLAUNCH/VMRESUME that have made past guest state checking."
    if vmx.is_guest_mode(vcpu):
        vcpu.nested.nested_run_pending = False
    if req_immediate_exit:
        vcpu.mode = VcpuMode.OUTSIDE_GUEST_MODE
        return 1, False
    return 1, True


def vcpu_run(vcpu: Vcpu) -> int:
    """Run the vCPU until the guest executes without a pending request, or KVM exits to
    userspace (returns 0). The vCPU is then ``IN_GUEST_MODE`` (the guest is running)."""
    for _ in range(MAX_ENTRIES_PER_EVENT):
        r, guest_ran = vcpu_enter_guest(vcpu)
        if r <= 0:
            vcpu.mode = VcpuMode.OUTSIDE_GUEST_MODE
            return r
        if guest_ran:
            return 1
    raise VcpuLivelock(f"vcpu_run did not settle after {MAX_ENTRIES_PER_EVENT} entries "
                       f"({vcpu.version.value})")

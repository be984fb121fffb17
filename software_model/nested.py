"""Nested VMX: ``arch/x86/kvm/vmx/nested.c`` and ``nested.h``.

Pinned to 8c23670f2b00 (``KernelVersion.PRE_PATCH``), 6e0b456547f4 (``POST_PATCH``) and
ce5cdfb49813 (``NOV_2024``); the version is read where the source differs, and only there
(``docs/kernel.md``). Functions follow the C control flow statement by statement;
``goto no_vmexit`` is written as a call of the code at the label.
"""

from . import irq, lapic, vmx
from .constants import (
    CPU_BASED_ACTIVATE_SECONDARY_CONTROLS,
    CPU_BASED_INTR_WINDOW_EXITING,
    CPU_BASED_NMI_WINDOW_EXITING,
    CPU_BASED_TPR_SHADOW,
    EBUSY,
    ENXIO,
    EXIT_REASON_EXCEPTION_NMI,
    EXIT_REASON_EXTERNAL_INTERRUPT,
    EXIT_REASON_INIT_SIGNAL,
    EXIT_REASON_MONITOR_TRAP_FLAG,
    EXIT_REASON_PREEMPTION_TIMER,
    EXIT_REASON_SIPI_SIGNAL,
    EXIT_REASON_TRIPLE_FAULT,
    INTR_INFO_VALID_MASK,
    INTR_TYPE_EXT_INTR,
    INTR_TYPE_HARD_EXCEPTION,
    INTR_TYPE_NMI_INTR,
    NMI_VECTOR,
    PIN_BASED_EXT_INTR_MASK,
    PIN_BASED_NMI_EXITING,
    PIN_BASED_POSTED_INTR,
    PIN_BASED_VMX_PREEMPTION_TIMER,
    POSTED_INTR_NESTED_VECTOR,
    SECONDARY_EXEC_APIC_REGISTER_VIRT,
    SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY,
    SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES,
    SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE,
    VM_EXIT_ACK_INTR_ON_EXIT,
    VMXERR_ENTRY_INVALID_CONTROL_FIELD,
)
from .posted_intr import pi_find_highest_vector, pi_test_and_clear_on, pi_test_on
from .state import NestedExit, Request, Vcpu, Vmcs12
from .version import Change, KernelVersion

# --- the version switches of this file, each with its commit ------------------------------------

#: vmx_check_nested_events(): an IRQ equal to posted_intr_nv pends a nested posted interrupt
NV_AT_INJECTION = Change("6e0b456547f4", "KVM: nVMX: Detect nested posted interrupt NV at "
                         "nested VM-Exit injection", KernelVersion.POST_PATCH)
#: nested_vmx_run(): no VM-Enter notification-vector check; vmx_check_nested_events(): the NV
#: branch blocked only by re-injection (block_non_injected_events)
EVENT_PRIORITY_AT_VMENTER = Change("ce5cdfb49813", "KVM: nVMX: Honor event priority when "
                                   "emulating PI delivery during VM-Enter",
                                   KernelVersion.NOV_2024)
#: prepare_vmcs02_early(): posted_intr_nv = -1 when vmcs12 disables posted interrupts
INVALIDATE_NV = Change("1ed0f119c5ff", "KVM: nVMX: Explicitly invalidate posted_intr_nv if PI "
                       "is disabled at VM-Enter", KernelVersion.NOV_2024)
#: nested_vmx_enter_non_root_mode(): KVM_REQ_EVENT when "window exiting in vmcs01 || INIT/SIPI
#: || kvm_apic_has_interrupt(vcpu)" (637df11290b3 adds the last term, 2732f6a7ccee drops the
#: vmcs01 RVI check, 3d0e20e45378 moves INIT/SIPI, 1a265986bff6 reads vmcs01's controls)
VPPR_AT_VMENTER = Change("637df11290b3", "KVM: nVMX: Explicitly update vPPR on successful "
                         "nested VM-Enter", KernelVersion.NOV_2024)

__all__ = [
    "get_vmcs12",
    "kvm_vcpu_is_legal_aligned_gpa",
    "nested_cpu_has",
    "nested_cpu_has2",
    "nested_cpu_has_posted_intr",
    "nested_cpu_has_vid",
    "nested_exit_intr_ack_set",
    "nested_exit_on_intr",
    "nested_exit_on_nmi",
    "nested_get_vmcs12_pages",
    "nested_vmx_check_apicv_controls",
    "nested_vmx_enter_non_root_mode",
    "nested_vmx_run",
    "nested_vmx_vmexit",
    "prepare_vmcs02_early",
    "vmx_check_nested_events",
    "vmx_complete_nested_posted_interrupt",
    "vmx_has_apicv_interrupt",
    "vmx_has_nested_events",
]

# nested_vmx_enter_non_root_mode() results
NVMX_VMENTRY_SUCCESS = 0
NVMX_VMENTRY_VMFAIL = 1
NVMX_VMENTRY_VMEXIT = 2
NVMX_VMENTRY_KVM_INTERNAL_ERROR = 3


# --- nested.h predicates (3dde46a21aa7) --------------------------------------------------------


def get_vmcs12(vcpu: Vcpu) -> Vmcs12:
    vmcs12 = vcpu.nested.current_vmcs12
    assert vmcs12 is not None, "no current vmcs12: L1 has not executed VMPTRLD"
    return vmcs12


def nested_cpu_has(vmcs12: Vmcs12, bit: int) -> bool:
    return bool(vmcs12.cpu_based_vm_exec_control & bit)


def nested_cpu_has2(vmcs12: Vmcs12, bit: int) -> bool:
    return bool(vmcs12.cpu_based_vm_exec_control & CPU_BASED_ACTIVATE_SECONDARY_CONTROLS
                and vmcs12.secondary_vm_exec_control & bit)


def nested_cpu_has_virt_x2apic_mode(vmcs12: Vmcs12) -> bool:
    return nested_cpu_has2(vmcs12, SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE)


def nested_cpu_has_apic_reg_virt(vmcs12: Vmcs12) -> bool:
    return nested_cpu_has2(vmcs12, SECONDARY_EXEC_APIC_REGISTER_VIRT)


def nested_cpu_has_vid(vmcs12: Vmcs12) -> bool:
    return nested_cpu_has2(vmcs12, SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY)


def nested_cpu_has_posted_intr(vmcs12: Vmcs12) -> bool:
    return bool(vmcs12.pin_based_vm_exec_control & PIN_BASED_POSTED_INTR)


def nested_cpu_has_preemption_timer(vmcs12: Vmcs12) -> bool:
    return bool(vmcs12.pin_based_vm_exec_control & PIN_BASED_VMX_PREEMPTION_TIMER)


def nested_exit_on_nmi(vcpu: Vcpu) -> bool:
    return bool(get_vmcs12(vcpu).pin_based_vm_exec_control & PIN_BASED_NMI_EXITING)


def nested_exit_on_intr(vcpu: Vcpu) -> bool:
    return bool(get_vmcs12(vcpu).pin_based_vm_exec_control & PIN_BASED_EXT_INTR_MASK)


def nested_exit_intr_ack_set(vcpu: Vcpu) -> bool:
    return bool(get_vmcs12(vcpu).vm_exit_controls & VM_EXIT_ACK_INTR_ON_EXIT)


def nested_vmx_preemption_timer_pending(vcpu: Vcpu) -> bool:
    return (nested_cpu_has_preemption_timer(get_vmcs12(vcpu))
            and vcpu.nested.preemption_timer_expired)


def kvm_event_needs_reinjection(vcpu: Vcpu) -> bool:
    """x86.h: an event KVM injected has not been delivered yet (VM-Exit during delivery)."""
    return vcpu.exception.injected or vcpu.interrupt_injected or vcpu.nmi_injected


def kvm_vcpu_is_legal_aligned_gpa(vcpu: Vcpu, gpa: int, alignment: int) -> bool:
    """cpuid.h: aligned, and no bit at or above the guest's MAXPHYADDR."""
    reserved_gpa_bits = ~((1 << vcpu.memory.maxphyaddr) - 1) & 0xFFFFFFFFFFFFFFFF
    return gpa % alignment == 0 and not (gpa & reserved_gpa_bits)


# --- vmx_check_nested_events() and what it calls -------------------------------------------------


def vmx_check_nested_events(vcpu: Vcpu) -> int:
    """Decide whether a pending event becomes a nested VM-Exit to L1 (``kvm_x86_ops``
    ``nested_ops->check_events``). Returns 0, ``-EBUSY`` (retry after an immediate exit) or
    ``-ENXIO`` (from the posted-interrupt completion: exit to userspace).

    Order: INIT, SIPI, exceptions above MTF, MTF, low-priority #DB traps, VMX-preemption timer,
    SMI, NMI, external interrupts (``docs/kernel.md``). The interrupt branch differs by
    version: ``PRE_PATCH`` exits for any vector; ``POST_PATCH`` pends a nested posted interrupt
    when the vector is ``posted_intr_nv``; ``NOV_2024`` also blocks that branch only on
    re-injection.
    """
    apic = vcpu.apic
    vmx_n = vcpu.nested
    version = vcpu.version
    block_nested_exceptions = vmx_n.nested_run_pending
    # "New events (not exceptions) are only recognized at instruction boundaries. If an event
    # needs reinjection, then KVM is handling a VM-Exit that occurred _during_ instruction
    # execution; new events are blocked until the instruction completes."
    block_non_injected_events = kvm_event_needs_reinjection(vcpu)
    block_nested_events = block_nested_exceptions or block_non_injected_events

    if "INIT" in apic.pending_events:
        if block_nested_events:
            return -EBUSY
        # nested_vmx_update_pending_dbg(): no pending #DB state is modelled
        apic.pending_events.discard("INIT")
        if vcpu.mp_state != "INIT_RECEIVED":
            nested_vmx_vmexit(vcpu, EXIT_REASON_INIT_SIGNAL, 0, 0)
        vmx_n.mtf_pending = False  # "MTF is discarded if the vCPU is in WFS."
        return 0

    if "SIPI" in apic.pending_events:
        if block_nested_events:
            return -EBUSY
        apic.pending_events.discard("SIPI")
        if vcpu.mp_state == "INIT_RECEIVED":
            nested_vmx_vmexit(vcpu, EXIT_REASON_SIPI_SIGNAL, 0, apic.sipi_vector & 0xFF)
            return 0
        # fallthrough: the SIPI is ignored

    # Process exceptions that are higher priority than Monitor Trap Flag: fault-like
    # exceptions, TSS T flag #DB (not emulated by KVM), and ICEBP (INT1).
    if vcpu.exception_vmexit.pending and not vcpu.exception_vmexit.low_priority_db_trap:
        if block_nested_exceptions:
            return -EBUSY
        nested_vmx_inject_exception_vmexit(vcpu)
        return 0
    if vcpu.exception.pending and not vcpu.exception.low_priority_db_trap:
        if block_nested_exceptions:
            return -EBUSY
        return _no_vmexit(vcpu)

    if vmx_n.mtf_pending:
        if block_nested_events:
            return -EBUSY
        nested_vmx_vmexit(vcpu, EXIT_REASON_MONITOR_TRAP_FLAG, 0, 0)
        return 0

    if vcpu.exception_vmexit.pending:
        if block_nested_exceptions:
            return -EBUSY
        nested_vmx_inject_exception_vmexit(vcpu)
        return 0
    if vcpu.exception.pending:
        if block_nested_exceptions:
            return -EBUSY
        return _no_vmexit(vcpu)

    if nested_vmx_preemption_timer_pending(vcpu):
        if block_nested_events:
            return -EBUSY
        nested_vmx_vmexit(vcpu, EXIT_REASON_PREEMPTION_TIMER, 0, 0)
        return 0

    if vcpu.smi_pending and not vcpu.is_smm:
        if block_nested_events:
            return -EBUSY
        return _no_vmexit(vcpu)

    if vcpu.nmi_pending and not vmx.vmx_nmi_blocked(vcpu):
        if block_nested_events:
            return -EBUSY
        if not nested_exit_on_nmi(vcpu):
            return _no_vmexit(vcpu)
        nested_vmx_vmexit(vcpu, EXIT_REASON_EXCEPTION_NMI,
                          NMI_VECTOR | INTR_TYPE_NMI_INTR | INTR_INFO_VALID_MASK, 0)
        # "The NMI is triggered by hardware ... it is acknowledged at VM-Exit"
        vcpu.nmi_pending = 0
        vcpu.nmi_masked = True  # vmx_set_nmi_mask(vcpu, true)
        return 0

    if irq.kvm_cpu_has_interrupt(vcpu) and not vmx.vmx_interrupt_blocked(vcpu):
        if EVENT_PRIORITY_AT_VMENTER(version):
            return _nested_interrupt_nov_2024(vcpu, block_nested_events, block_non_injected_events)
        if block_nested_events:
            return -EBUSY
        if not nested_exit_on_intr(vcpu):
            return _no_vmexit(vcpu)

        if not nested_exit_intr_ack_set(vcpu):
            nested_vmx_vmexit(vcpu, EXIT_REASON_EXTERNAL_INTERRUPT, 0, 0)
            return 0

        irq_vec = irq.kvm_cpu_get_extint(vcpu)
        if irq_vec != -1:
            nested_vmx_vmexit(vcpu, EXIT_REASON_EXTERNAL_INTERRUPT,
                              INTR_INFO_VALID_MASK | INTR_TYPE_EXT_INTR | irq_vec, 0)
            return 0

        irq_vec = lapic.kvm_apic_has_interrupt(vcpu)
        if irq_vec < 0:  # WARN_ON_ONCE(irq < 0)
            vcpu.trace("WARN: vmx_check_nested_events: no IRQ after kvm_cpu_has_interrupt()")
            return _no_vmexit(vcpu)

        if irq_vec == vmx_n.posted_intr_nv and NV_AT_INJECTION(version):
            # "If the IRQ is L2's PI notification vector, process posted interrupts for L2
            # instead of injecting VM-Exit, as the detection/morphing architecturally occurs
            # when the IRQ is delivered to the CPU." (6e0b456547f4)
            vcpu.trace(f"vmx_check_nested_events: irq {irq_vec:#04x} == posted_intr_nv: "
                       "pi_pending = true, kvm_apic_clear_irr")
            vmx_n.pi_pending = True
            lapic.kvm_apic_clear_irr(vcpu, irq_vec)
            return _no_vmexit(vcpu)

        nested_vmx_vmexit(vcpu, EXIT_REASON_EXTERNAL_INTERRUPT,
                          INTR_INFO_VALID_MASK | INTR_TYPE_EXT_INTR | irq_vec, 0)
        # "ACK the interrupt _after_ emulating VM-Exit, as the IRQ must be marked as in-service
        # in vmcs01.GUEST_INTERRUPT_STATUS.SVI if APICv is active."
        lapic.kvm_apic_ack_interrupt(vcpu, irq_vec)
        return 0

    return _no_vmexit(vcpu)


def _nested_interrupt_nov_2024(vcpu: Vcpu, block_nested_events: bool,
                               block_non_injected_events: bool) -> int:
    """The external-interrupt branch of ``vmx_check_nested_events()`` at ce5cdfb49813."""
    if not nested_exit_on_intr(vcpu):
        if block_nested_events:
            return -EBUSY
        return _no_vmexit(vcpu)
    if not nested_exit_intr_ack_set(vcpu):
        if block_nested_events:
            return -EBUSY
        nested_vmx_vmexit(vcpu, EXIT_REASON_EXTERNAL_INTERRUPT, 0, 0)
        return 0
    irq_vec = irq.kvm_cpu_get_extint(vcpu)
    if irq_vec != -1:
        if block_nested_events:
            return -EBUSY
        nested_vmx_vmexit(vcpu, EXIT_REASON_EXTERNAL_INTERRUPT,
                          INTR_INFO_VALID_MASK | INTR_TYPE_EXT_INTR | irq_vec, 0)
        return 0
    irq_vec = lapic.kvm_apic_has_interrupt(vcpu)
    if irq_vec < 0:  # WARN_ON_ONCE(irq < 0)
        vcpu.trace("WARN: vmx_check_nested_events: no IRQ after kvm_cpu_has_interrupt()")
        return _no_vmexit(vcpu)
    if irq_vec == vcpu.nested.posted_intr_nv:
        # "Nested posted interrupts are delivered via RVI, i.e. aren't injected by KVM, and so
        # can be queued even if manual event injection is disallowed."
        if block_non_injected_events:
            return -EBUSY
        vcpu.trace(f"vmx_check_nested_events: irq {irq_vec:#04x} == posted_intr_nv: "
                   "pi_pending = true, kvm_apic_clear_irr")
        vcpu.nested.pi_pending = True
        lapic.kvm_apic_clear_irr(vcpu, irq_vec)
        return _no_vmexit(vcpu)
    if block_nested_events:
        return -EBUSY
    nested_vmx_vmexit(vcpu, EXIT_REASON_EXTERNAL_INTERRUPT,
                      INTR_INFO_VALID_MASK | INTR_TYPE_EXT_INTR | irq_vec, 0)
    lapic.kvm_apic_ack_interrupt(vcpu, irq_vec)
    return 0


def _no_vmexit(vcpu: Vcpu) -> int:
    """The ``no_vmexit:`` label of ``vmx_check_nested_events()``."""
    return vmx_complete_nested_posted_interrupt(vcpu)


def nested_vmx_inject_exception_vmexit(vcpu: Vcpu) -> None:
    """Reflect a pending exception to L1 as an exception VM-Exit (hardware exception type)."""
    ex = vcpu.exception_vmexit
    intr_info = ex.vector | INTR_TYPE_HARD_EXCEPTION | INTR_INFO_VALID_MASK
    ex.pending = False
    nested_vmx_vmexit(vcpu, EXIT_REASON_EXCEPTION_NMI, intr_info, 0)


def nested_vmx_triple_fault(vcpu: Vcpu) -> None:
    vcpu.requests.discard(Request.TRIPLE_FAULT)
    nested_vmx_vmexit(vcpu, EXIT_REASON_TRIPLE_FAULT, 0, 0)


def vmx_complete_nested_posted_interrupt(vcpu: Vcpu) -> int:
    """Emulate posted-interrupt processing on the nested descriptor (SDM steps 3, 5, 6).

    Differences from the SDM (``cosim/deviations.py``): ON = 0 skips the merge (known bug KB4);
    PIR = {0} is not merged (deviation D2); RVI becomes the highest bit of the merged VIRR
    (known bug KB6). The L2
    virtual interrupt itself is delivered by the CPU at the next VM-Entry of vmcs02.
    """
    vmx_n = vcpu.nested
    if not vmx_n.pi_pending:
        return 0
    if vmx_n.pi_desc is None:
        return _mmio_needed(vcpu)
    vmx_n.pi_pending = False
    if not pi_test_and_clear_on(vmx_n.pi_desc):
        vcpu.trace("vmx_complete_nested_posted_interrupt: ON was 0, PIR not processed")
        return 0
    max_irr = pi_find_highest_vector(vmx_n.pi_desc)
    if max_irr > 0:
        vapic_page = vmx_n.virtual_apic_map
        if vapic_page is None:
            return _mmio_needed(vcpu)
        _, max_irr = lapic.__kvm_apic_update_irr(vmx_n.pi_desc, vapic_page)
        vmcs = vcpu.loaded_vmcs
        status = vmcs.guest_intr_status
        if (max_irr & 0xFF) > (status & 0xFF):
            status &= ~0xFF
            status |= max_irr & 0xFF
            vmcs.guest_intr_status = status
        vcpu.trace(f"vmx_complete_nested_posted_interrupt: PIR merged into L2 VIRR, "
                   f"{vmcs.name} RVI = {vmcs.rvi:#04x}")
    return 0


def _mmio_needed(vcpu: Vcpu) -> int:
    """``kvm_handle_memory_failure(vcpu, X86EMUL_IO_NEEDED, NULL); return -ENXIO;``"""
    vcpu.userspace_exit = "KVM_EXIT_INTERNAL_ERROR (nested PI descriptor not mapped)"
    vcpu.trace("vmx_complete_nested_posted_interrupt: mmio_needed, -ENXIO")
    return -ENXIO


def vmx_has_nested_events(vcpu: Vcpu, for_injection: bool) -> bool:
    """``nested_ops->has_events``: events that need the vCPU to (re-)enter L2 promptly."""
    vmx_n = vcpu.nested
    vmcs12 = get_vmcs12(vcpu)
    if nested_vmx_preemption_timer_pending(vcpu) or vmx_n.mtf_pending:
        return True
    if for_injection:
        return False
    if not nested_cpu_has_vid(vmcs12) or vmx.__vmx_interrupt_blocked(vcpu):
        return False
    vapic = vmx_n.virtual_apic_map
    if vapic is None:
        return False
    vppr = vapic.ppr
    if (vcpu.loaded_vmcs.rvi & 0xF0) > (vppr & 0xF0):
        return True
    if vmx_n.pi_pending and vmx_n.pi_desc is not None and pi_test_on(vmx_n.pi_desc):
        max_irr = pi_find_highest_vector(vmx_n.pi_desc)
        if max_irr > 0 and (max_irr & 0xF0) > (vppr & 0xF0):
            return True
    return False


# --- nested VM-Exit ---------------------------------------------------------------------------


def nested_vmx_vmexit(vcpu: Vcpu, vm_exit_reason: int, exit_intr_info: int,
                      exit_qualification: int) -> None:
    """Emulate a VM-Exit from L2 to L1: save L2 state into vmcs12, switch to vmcs01, unmap.

    No interrupt is acknowledged here at these commits (the ack moved to the caller in
    363010e1dd0e).
    """
    vmx_n = vcpu.nested
    vmcs12 = get_vmcs12(vcpu)
    vmx_n.mtf_pending = False  # "Pending MTF traps are discarded on VM-Exit."
    if vmx_n.nested_run_pending:  # WARN_ON_ONCE: "trying to cancel vmlaunch/vmresume is a bug"
        vcpu.trace("WARN: nested_vmx_vmexit with nested_run_pending")
    vcpu.guest_mode = False  # leave_guest_mode()
    sync_vmcs02_to_vmcs12(vcpu, vmcs12)
    prepare_vmcs12(vcpu, vmcs12, vm_exit_reason, exit_intr_info, exit_qualification)
    vcpu.loaded_vmcs = vcpu.vmcs01  # vmx_switch_vmcs(vcpu, &vmx->vmcs01)
    vmx_n.virtual_apic_map = None  # kvm_vcpu_unmap(virtual_apic_map)
    vmx_n.pi_desc = None  # kvm_vcpu_unmap(pi_desc_map); pi_desc = NULL
    if vmx_n.update_vmcs01_hwapic_isr:  # set by vmx_hwapic_isr_update() in guest mode
        vmx_n.update_vmcs01_hwapic_isr = False
        lapic.kvm_apic_update_hwapic_isr(vcpu)
    vcpu.mp_state = "RUNNABLE"  # "in case we halted in L2"
    vcpu.nested_exits.append(NestedExit(vm_exit_reason, exit_intr_info, exit_qualification))
    vcpu.trace(f"nested_vmx_vmexit(reason={vm_exit_reason}, intr_info={exit_intr_info:#010x}, "
               f"qualification={exit_qualification:#x})")


def sync_vmcs02_to_vmcs12(vcpu: Vcpu, vmcs12: Vmcs12) -> None:
    vmcs12.guest_rflags_if = vcpu.l2_rflags_if
    if nested_cpu_has_vid(vmcs12):
        vmcs12.guest_intr_status = vcpu.vmcs02.guest_intr_status


def prepare_vmcs12(vcpu: Vcpu, vmcs12: Vmcs12, vm_exit_reason: int, exit_intr_info: int,
                   exit_qualification: int) -> None:
    vmcs12.vm_exit_reason = vm_exit_reason
    vmcs12.exit_qualification = exit_qualification
    vmcs12.vm_exit_intr_info = exit_intr_info
    vmcs12.launch_state = 1
    # vmcs12_save_pending_event(): an injected, undelivered event goes to IDT-vectoring info
    # and leaves KVM's queue (kvm_clear_interrupt_queue / kvm_clear_exception_queue).
    vcpu.interrupt_injected = False
    vcpu.exception.injected = False
    vcpu.nmi_injected = False


# --- nested VM-Enter --------------------------------------------------------------------------


def nested_vmx_check_apicv_controls(vcpu: Vcpu, vmcs12: Vmcs12) -> int:
    """The APIC-virtualization consistency checks of VMLAUNCH/VMRESUME (SDM 26.2.1.1).

    Returns 0 or ``-EINVAL`` (the caller fails the entry with VM-instruction error 7).
    """
    einval = -22
    if not (nested_cpu_has_virt_x2apic_mode(vmcs12) or nested_cpu_has_apic_reg_virt(vmcs12)
            or nested_cpu_has_vid(vmcs12) or nested_cpu_has_posted_intr(vmcs12)):
        return 0
    # If virtualize x2apic mode is enabled, virtualize apic access must be disabled.
    if (nested_cpu_has_virt_x2apic_mode(vmcs12)
            and nested_cpu_has2(vmcs12, SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES)):
        return einval
    # If virtual interrupt delivery is enabled, we must exit on external interrupts.
    if nested_cpu_has_vid(vmcs12) and not nested_exit_on_intr(vcpu):
        return einval
    # bits 15:8 should be zero in posted_intr_nv, the descriptor address has been already
    # checked in nested_get_vmcs12_pages. (The comment is stale: the check is the GPA one.)
    if nested_cpu_has_posted_intr(vmcs12) and (
            not nested_cpu_has_vid(vmcs12)
            or not nested_exit_intr_ack_set(vcpu)
            or (vmcs12.posted_intr_nv & 0xFF00)
            or not kvm_vcpu_is_legal_aligned_gpa(vcpu, vmcs12.posted_intr_desc_addr, 64)):
        return einval
    # tpr shadow is needed by all apicv features.
    if not nested_cpu_has(vmcs12, CPU_BASED_TPR_SHADOW):
        return einval
    return 0


def nested_vmx_fail(vcpu: Vcpu, vm_instruction_error: int) -> int:
    """VMfailValid: L1 sees the VM-instruction error; it keeps running (no VM-Entry)."""
    get_vmcs12(vcpu).vm_instruction_error = vm_instruction_error
    vcpu.vmentry_errors.append(vm_instruction_error)
    vcpu.trace(f"nested_vmx_fail(VM-instruction error {vm_instruction_error})")
    return 1


def prepare_vmcs02_early(vcpu: Vcpu, vmcs12: Vmcs12) -> None:
    """Merge vmcs01's and vmcs12's pin/secondary controls into vmcs02 and cache the NV."""
    vmx_n = vcpu.nested
    vmcs02 = vcpu.vmcs02
    exec_control = vcpu.vmcs01.pin_based
    exec_control |= vmcs12.pin_based_vm_exec_control & ~PIN_BASED_VMX_PREEMPTION_TIMER
    # "Posted interrupts setting is only taken from vmcs12."
    if vmx_n.pi_pending:
        vcpu.trace("prepare_vmcs02_early: pi_pending = false (a nested posted interrupt that "
                   "was never completed is dropped)")
    vmx_n.pi_pending = False
    if nested_cpu_has_posted_intr(vmcs12):
        vmx_n.set_posted_intr_nv(vmcs12.posted_intr_nv)
    else:
        if INVALIDATE_NV(vcpu.version):
            vmx_n.set_posted_intr_nv(-1)  # 1ed0f119c5ff
        exec_control &= ~PIN_BASED_POSTED_INTR
    vmcs02.pin_based = exec_control
    # prepare_vmcs02_constant_state(): vmcs02's notification vector is KVM's nested vector
    vmcs02.posted_intr_nv = POSTED_INTR_NESTED_VECTOR
    vmcs02.cpu_based = vmcs12.cpu_based_vm_exec_control & (CPU_BASED_INTR_WINDOW_EXITING
                                                           | CPU_BASED_NMI_WINDOW_EXITING
                                                           | CPU_BASED_TPR_SHADOW)
    secondary = vcpu.vmcs01.secondary
    if not nested_cpu_has_vid(vmcs12):
        secondary &= ~SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY
    vmcs02.secondary = secondary
    if secondary & SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY:
        vmcs02.guest_intr_status = vmcs12.guest_intr_status


def nested_get_vmcs12_pages(vcpu: Vcpu) -> bool:
    """Map L2's virtual-APIC page and the nested posted-interrupt descriptor."""
    vmx_n = vcpu.nested
    vmcs12 = get_vmcs12(vcpu)
    vmcs02 = vcpu.vmcs02
    if nested_cpu_has(vmcs12, CPU_BASED_TPR_SHADOW):
        page = vcpu.memory.map_apic_page(vmcs12.virtual_apic_page_addr)
        vmx_n.virtual_apic_map = page
        vmcs02.virtual_apic = page
    if nested_cpu_has_posted_intr(vmcs12):
        desc = vcpu.memory.map_pi_desc(vmcs12.posted_intr_desc_addr)
        vmx_n.pi_desc = desc
        vmcs02.posted_intr_desc = desc
        if desc is None:
            # "Defer the KVM_INTERNAL_EXIT until KVM tries to access the contents"
            vmcs02.pin_based &= ~PIN_BASED_POSTED_INTR
    return True


def vmx_has_apicv_interrupt(vcpu: Vcpu) -> bool:
    """vmcs01 RVI above L1's PPR (read while vmcs01 is still loaded)."""
    rvi = vcpu.loaded_vmcs.rvi
    vppr = vcpu.apic.regs.ppr
    return (rvi & 0xF0) > (vppr & 0xF0)


def kvm_apic_has_pending_init_or_sipi(vcpu: Vcpu) -> bool:
    return bool(vcpu.apic.pending_events & {"INIT", "SIPI"})


def nested_vmx_enter_non_root_mode(vcpu: Vcpu, from_vmentry: bool) -> int:
    """Switch to vmcs02 and enter guest mode; request an event check when one may be due."""
    vmcs12 = get_vmcs12(vcpu)
    nov_2024 = VPPR_AT_VMENTER(vcpu.version)
    evaluate_pending_interrupts = False
    if not nov_2024:
        evaluate_pending_interrupts = bool(
            vcpu.vmcs01.cpu_based & (CPU_BASED_INTR_WINDOW_EXITING | CPU_BASED_NMI_WINDOW_EXITING))
        if not evaluate_pending_interrupts and vcpu.apic.apicv_active:
            evaluate_pending_interrupts |= vmx_has_apicv_interrupt(vcpu)
        if not evaluate_pending_interrupts:
            evaluate_pending_interrupts |= kvm_apic_has_pending_init_or_sipi(vcpu)
    vcpu.loaded_vmcs = vcpu.vmcs02  # vmx_switch_vmcs(vcpu, &vmx->nested.vmcs02)
    prepare_vmcs02_early(vcpu, vmcs12)
    if from_vmentry:
        if not nested_get_vmcs12_pages(vcpu):
            vcpu.loaded_vmcs = vcpu.vmcs01
            return NVMX_VMENTRY_KVM_INTERNAL_ERROR
    vcpu.guest_mode = True  # enter_guest_mode()
    # prepare_vmcs02(): L2's RFLAGS
    vcpu.l2_rflags_if = vmcs12.guest_rflags_if
    if nov_2024:
        # "|| kvm_apic_has_interrupt(vcpu)": an int used as a boolean, so -1 (no interrupt)
        # is true too and KVM_REQ_EVENT is raised after every successful VM-Enter (modelled as
        # written, not as meant)
        evaluate_pending_interrupts = (
            bool(vcpu.vmcs01.cpu_based & (CPU_BASED_INTR_WINDOW_EXITING
                                          | CPU_BASED_NMI_WINDOW_EXITING))
            or kvm_apic_has_pending_init_or_sipi(vcpu)
            or lapic.kvm_apic_has_interrupt(vcpu) != 0)
    if evaluate_pending_interrupts:
        vcpu.requests.add(Request.EVENT)
    return NVMX_VMENTRY_SUCCESS


def nested_vmx_run(vcpu: Vcpu) -> int:
    """Emulate VMLAUNCH/VMRESUME: consistency checks, then enter L2 with
    ``nested_run_pending``. Returns 1 (continue running the vCPU) like the kernel.

    Only the APIC-virtualization control checks are modelled among the consistency checks, so
    the kernel's ``launch`` argument (the VMLAUNCH-vs-VMRESUME launch-state check) is omitted;
    the guest activity state is always "active".
    """
    vmx_n = vcpu.nested
    vmcs12 = get_vmcs12(vcpu)
    if nested_vmx_check_apicv_controls(vcpu, vmcs12):
        return nested_vmx_fail(vcpu, VMXERR_ENTRY_INVALID_CONTROL_FIELD)
    # "We're finally done with prerequisite checking, and can start with the nested entry."
    vmx_n.nested_run_pending = True
    status = nested_vmx_enter_non_root_mode(vcpu, True)
    if status != NVMX_VMENTRY_SUCCESS:  # goto vmentry_failed
        vmx_n.nested_run_pending = False
        if status == NVMX_VMENTRY_KVM_INTERNAL_ERROR:
            return 0
        if status == NVMX_VMENTRY_VMEXIT:  # a VM exit to L1 was synthesized: resume L1
            return 1
        # WARN_ON_ONCE(status != NVMX_VMENTRY_VMFAIL)
        return nested_vmx_fail(vcpu, VMXERR_ENTRY_INVALID_CONTROL_FIELD)
    vcpu.trace(f"nested_vmx_run: entered L2 (nested_run_pending), "
               f"posted_intr_nv = {vmx_n.posted_intr_nv:#06x}")
    if not EVENT_PRIORITY_AT_VMENTER(vcpu.version):
        # "Emulate processing of posted interrupts on VM-Enter." (removed by ce5cdfb49813)
        if (nested_cpu_has_posted_intr(vmcs12)
                and lapic.kvm_apic_has_interrupt(vcpu) == vmx_n.posted_intr_nv):
            vcpu.trace("nested_vmx_run: L1 IRR holds posted_intr_nv at VM-Enter: pi_pending")
            vmx_n.pi_pending = True
            vcpu.requests.add(Request.EVENT)
            lapic.kvm_apic_clear_irr(vcpu, vmx_n.posted_intr_nv)
    return 1

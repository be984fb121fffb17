"""The system around KVM: how a scenario event reaches the vCPU.

Not kernel code: these are the other agents of ``docs/kernel.md``(a
second vCPU of L1 sending an IPI that KVM traps, the IPI-virtualization hardware of the sending
CPU, an assigned device posting through VT-d, L1 or another agent writing the nested
descriptor) and L1's and L2's own actions. Each function applies one scenario event, then lets
KVM run the vCPU until it is quiescent again where the event made the pCPU leave the guest.

Between events the vCPU is in the guest (``IN_GUEST_MODE``): running L2 on vmcs02 or L1 on
vmcs01.
"""

from . import cpu, lapic, nested, x86
from .constants import (
    CPU_BASED_TPR_SHADOW,
    PIN_BASED_EXT_INTR_MASK,
    PIN_BASED_NMI_EXITING,
    PIN_BASED_POSTED_INTR,
    PIN_BASED_VIRTUAL_NMIS,
    POSTED_INTR_VECTOR,
    SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY,
)
from .state import PiDesc, RacingPiDesc, Request, Vcpu, VcpuMode, Vmcs12
from .version import KernelVersion

__all__ = [
    "ROUTES",
    "device_post",
    "eoi",
    "interrupt",
    "interrupt_in_l0",
    "ipiv",
    "l2_eoi",
    "l2_tpr",
    "race",
    "race_end",
    "new_vcpu",
    "post",
    "start_in_l1",
    "start_in_l2",
    "sti",
    "tpr",
    "trapped_ipi",
    "vm_entry",
]

#: How an interrupt for L1 reaches KVM while L2 runs (``docs/kernel.md``).
ROUTES = ("trapped-ipi", "ipiv", "device-post")


def new_vcpu(version: KernelVersion, *, maxphyaddr: int = 46) -> Vcpu:
    """A vCPU as KVM creates it with APICv: vmcs01 uses virtual-interrupt delivery and posted
    interrupts with ``POSTED_INTR_VECTOR`` on KVM's own descriptor (``vmx->pi_desc``), and
    L1's ``apic->regs`` is vmcs01's virtual-APIC page."""
    vcpu = Vcpu(version=version)
    vcpu.memory.maxphyaddr = maxphyaddr
    vcpu.pi_desc = PiDesc(nv=POSTED_INTR_VECTOR)
    vmcs01 = vcpu.vmcs01
    vmcs01.pin_based = (PIN_BASED_EXT_INTR_MASK | PIN_BASED_NMI_EXITING | PIN_BASED_VIRTUAL_NMIS
                        | PIN_BASED_POSTED_INTR)
    vmcs01.cpu_based = CPU_BASED_TPR_SHADOW
    vmcs01.secondary = SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY
    vmcs01.posted_intr_nv = POSTED_INTR_VECTOR
    vmcs01.posted_intr_desc = vcpu.pi_desc
    vmcs01.virtual_apic = vcpu.apic.regs
    vcpu.loaded_vmcs = vmcs01
    return vcpu


def _sync_vmcs01_status(vcpu: Vcpu) -> None:
    """vmcs01 RVI/SVI as KVM keeps them for a consistent L1 APIC (max IRR, max ISR)."""
    regs = vcpu.apic.regs
    rvi = max(lapic.find_highest_vector(regs.irr), 0)
    svi = max(lapic.find_highest_vector(regs.isr), 0)
    vcpu.vmcs01.guest_intr_status = (svi << 8) | rvi


def start_in_l1(vcpu: Vcpu, vmcs12: Vmcs12) -> None:
    """L1 runs with ``vmcs12`` current (after VMPTRLD); L2 is entered by a ``vm_entry`` event."""
    _sync_vmcs01_status(vcpu)
    lapic.__apic_update_ppr(vcpu.apic)
    vcpu.nested.current_vmcs12 = vmcs12
    vcpu.requests.add(Request.EVENT)
    x86.vcpu_run(vcpu)


def start_in_l2(vcpu: Vcpu, vmcs12: Vmcs12) -> None:
    """L2 runs: L1's VMLAUNCH of ``vmcs12`` passed its checks and completed earlier.

    The state is that of ``nested_vmx_enter_non_root_mode()`` after the entry, with
    ``nested_run_pending`` already cleared: the CPU entered vmcs02 once (its VM entry's PPR
    virtualization is in the virtual-APIC page); KVM then evaluates events once
    (``KVM_REQ_EVENT``) and the CPU enters vmcs02 again.
    """
    _sync_vmcs01_status(vcpu)
    lapic.__apic_update_ppr(vcpu.apic)
    vcpu.nested.current_vmcs12 = vmcs12
    vmcs12.launch_state = 1
    nested.nested_vmx_enter_non_root_mode(vcpu, True)
    cpu.entry_ppr_virtualization(vcpu.vmcs02)
    vcpu.requests.add(Request.EVENT)
    x86.vcpu_run(vcpu)


def _post_to_l1_pid_and_notify(vcpu: Vcpu, vector: int) -> None:
    """Post ``vector`` into KVM's descriptor for L1 and notify, as IPIv and VT-d do.

    ``PIR[V] := 1`` under lock; then ``ON := 1, SendNotify := 1`` iff ON = 0 and SN = 0;
    then the notification IPI (vector ``NV`` = ``POSTED_INTR_VECTOR``) to the target pCPU.
    There is no nested notification-vector check on this path (the 6e0b456547f4 message).
    """
    pid = vcpu.pi_desc
    pid.pir |= 1 << vector
    send_notify = not pid.on and not pid.sn
    if send_notify:
        pid.on = True
        cpu.physical_interrupt(vcpu, pid.nv)
    else:
        vcpu.trace(f"L1 PID: ON={int(pid.on)} SN={int(pid.sn)}: no notification")


def ipiv(vcpu: Vcpu, vector: int) -> None:
    """Another vCPU of L1 sends a fixed physical IPI that IPI virtualization handles.

    The sender's PID-pointer table entry is KVM's descriptor for this vCPU (``vmx->pi_desc``),
    so the interrupt is posted for L1 (SDM 30.1.6 pseudocode, IPIV-5..7).
    """
    vcpu.trace(f"ipiv: sender posts {vector:#04x} into L1's PID")
    _post_to_l1_pid_and_notify(vcpu, vector)


def device_post(vcpu: Vcpu, vector: int) -> None:
    """An assigned device of L1 posts ``vector`` through VT-d posted interrupts.

    The IRTE points at KVM's descriptor for this vCPU, as for any L1 interrupt; the VT-d
    hardware performs the same post-and-notify as IPIv.
    """
    vcpu.trace(f"device-post: VT-d posts {vector:#04x} into L1's PID")
    _post_to_l1_pid_and_notify(vcpu, vector)


def trapped_ipi(vcpu: Vcpu, vector: int) -> None:
    """Another vCPU of L1 writes ICR (fixed, physical, edge) and KVM traps the write:
    ``kvm_apic_send_ipi()`` -> ``__apic_accept_irq()`` on this vCPU (sender-side NV check)."""
    vcpu.trace(f"trapped-ipi: KVM delivers {vector:#04x} (__apic_accept_irq)")
    lapic.kvm_apic_accept_fixed_irq(vcpu, vector, trig_mode=False)


def interrupt(vcpu: Vcpu, vector: int, route: str) -> None:
    {"trapped-ipi": trapped_ipi, "ipiv": ipiv, "device-post": device_post}[route](vcpu, vector)


def interrupt_in_l0(vcpu: Vcpu, vector: int, route: str) -> None:
    """An interrupt for L1 arrives while the vCPU is in L0 (KVM), before KVM re-enters the
    guest: during the exit to L0 that the previous event caused (``hold_in_l0`` kept the vCPU
    there), or else during an exit for a host reason (a host timer tick). Then KVM runs the
    vCPU. On the hardware, which has no L0, the interrupt simply arrives.
    """
    if vcpu.held_in_l0:
        vcpu.trace(f"in L0: {vector:#04x} arrives while KVM handles the exit to L0")
    else:
        vcpu.trace(f"in L0: the vCPU exits to L0 for a host reason; {vector:#04x} arrives")
        vcpu.mode = VcpuMode.OUTSIDE_GUEST_MODE
    vcpu.hold_in_l0 = vcpu.held_in_l0 = False
    interrupt(vcpu, vector, route)
    x86.vcpu_run(vcpu)


def race(vcpu: Vcpu, vector: int) -> None:
    """Another agent's post (as :func:`post`) that lands inside the next posted-interrupt
    processing of the nested descriptor: right after ON is cleared (step 3 of the CPU's
    processing, or ``pi_test_and_clear_on`` in KVM's), before PIR is read. :func:`race_end`
    lands it as an ordinary post if nothing cleared ON by then."""
    vmcs12 = nested.get_vmcs12(vcpu)
    desc = vcpu.memory.map_pi_desc(vmcs12.posted_intr_desc_addr)
    if desc is None:
        vcpu.trace("race: descriptor address is not backed by memory; nothing written")
        return
    RacingPiDesc.of(desc).arm(vector)
    vcpu.trace(f"race: PIR[{vector:#04x}] := 1, ON := 1 will land when ON is next cleared")


def race_end(vcpu: Vcpu) -> None:
    """The racing posts that found no processing to land in land now."""
    vmcs12 = nested.get_vmcs12(vcpu)
    desc = vcpu.memory.pi_descs.get(vmcs12.posted_intr_desc_addr)
    if not isinstance(desc, RacingPiDesc):
        return  # none armed, or landed already
    for vector in desc.disarm():
        desc.pir |= 1 << vector
        desc.on = True
        vcpu.trace(f"race: no processing cleared ON; PIR[{vector:#04x}] := 1, ON := 1 now")


def post(vcpu: Vcpu, vector: int) -> None:
    """Another agent writes the nested descriptor (vmcs12's ``posted_intr_desc_addr``) with
    locked RMWs: ``PIR[vector] := 1``, then ``ON := 1``; no IPI is sent."""
    vmcs12 = nested.get_vmcs12(vcpu)
    desc = vcpu.memory.map_pi_desc(vmcs12.posted_intr_desc_addr)
    if desc is None:
        vcpu.trace("post: descriptor address is not backed by memory; nothing written")
        return
    desc.pir |= 1 << vector
    desc.on = True
    vcpu.trace(f"post: nested PID PIR[{vector:#04x}] := 1, ON := 1")


def eoi(vcpu: Vcpu) -> None:
    """L1 writes EOI; the write reaches KVM's emulated APIC (``apic_set_eoi``). While the vCPU
    runs L2, L1 is not running and cannot write (the hardware side has L1 running)."""
    if vcpu.guest_mode:
        vcpu.trace("eoi: L2 is running, L1 cannot write its EOI; event has no effect")
        return
    lapic.apic_set_eoi(vcpu.apic)
    x86.vcpu_run(vcpu)


def tpr(vcpu: Vcpu, value: int) -> None:
    """L1 writes TPR; the write reaches KVM's emulated APIC (``kvm_lapic_set_tpr``). While the
    vCPU runs L2, L1 is not running and cannot write."""
    if vcpu.guest_mode:
        vcpu.trace("tpr: L2 is running, L1 cannot write its TPR; event has no effect")
        return
    lapic.kvm_lapic_set_tpr(vcpu, value)
    x86.vcpu_run(vcpu)


def sti(vcpu: Vcpu) -> None:
    """L1 opens an interrupt window (STI, an instruction, CLI). With APICv, L1's interrupts
    are virtual-interrupt delivery on vmcs01 (``kvm_cpu_has_injectable_intr()`` is false for
    L1): the CPU evaluates RVI against VPPR and delivers through L1's IDT (SDM 29.2.2), with
    L1's ``apic->regs`` as the virtual-APIC page; the handler's interrupt gate clears IF
    again. KVM is not involved. While the vCPU runs L2, L1 cannot execute it."""
    if vcpu.guest_mode:
        vcpu.trace("sti: L2 is running, L1 cannot open an interrupt window; no effect")
        return
    vcpu.l1_rflags_if = True
    cpu.deliver_pending_virtual_interrupts(vcpu, vcpu.vmcs01)
    vcpu.l1_rflags_if = False


def vm_entry(vcpu: Vcpu) -> None:
    """L1 executes VMLAUNCH/VMRESUME on the current vmcs12 (``nested_vmx_run``)."""
    if vcpu.guest_mode:
        vcpu.trace("vm_entry: L2 is running, L1 cannot execute VMLAUNCH; event has no effect")
        return
    if nested.nested_vmx_run(vcpu) > 0:
        x86.vcpu_run(vcpu)


def l2_eoi(vcpu: Vcpu) -> None:
    """L2 writes its virtual EOI: EOI virtualization by the CPU on vmcs02 (VID-8)."""
    vmcs = vcpu.vmcs02
    if not vcpu.guest_mode or not vmcs.secondary & SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY:
        vcpu.trace("l2_eoi: no virtual-interrupt delivery for a running L2; event has no effect")
        return
    cpu.eoi_virtualization(vcpu, vmcs)


def l2_tpr(vcpu: Vcpu, value: int) -> None:
    """L2 writes its TPR (CR8 or the APIC page): TPR virtualization by the CPU (VID-9)."""
    vmcs = vcpu.vmcs02
    if not vcpu.guest_mode or not vmcs.cpu_based & CPU_BASED_TPR_SHADOW:
        vcpu.trace("l2_tpr: no TPR shadow for a running L2; event has no effect")
        return
    cpu.tpr_virtualization(vcpu, vmcs, value)

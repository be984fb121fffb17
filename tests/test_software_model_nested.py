"""vmx/nested.c: vmx_check_nested_events and the nested VM-Enter / VM-Exit paths
(docs/kernel.md), with exact values."""

import pytest

from software_model import KernelVersion, environment, nested
from software_model.constants import (
    CPU_BASED_ACTIVATE_SECONDARY_CONTROLS,
    CPU_BASED_TPR_SHADOW,
    EBUSY,
    ENXIO,
    EXIT_REASON_EXCEPTION_NMI,
    EXIT_REASON_INIT_SIGNAL,
    EXIT_REASON_MONITOR_TRAP_FLAG,
    EXIT_REASON_PREEMPTION_TIMER,
    PIN_BASED_EXT_INTR_MASK,
    PIN_BASED_NMI_EXITING,
    PIN_BASED_POSTED_INTR,
    PIN_BASED_VMX_PREEMPTION_TIMER,
    SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY,
    VM_EXIT_ACK_INTR_ON_EXIT,
)
from software_model.state import NestedExit, Request

from .conftest import DESC_ADDR, NV, VAPIC_ADDR, nested_desc, pi_vmcs12, vcpu_in_l2

PRE, POST, NOV = KernelVersion.PRE_PATCH, KernelVersion.POST_PATCH, KernelVersion.NOV_2024


def put_in_l1_irr(vcpu, *vectors):
    for v in vectors:
        vcpu.apic.regs.irr |= 1 << v


# --- the seed (docs/kernel.md) ----------------------------------------------------------


def test_seed_pre_patch_exits_with_the_notification_vector():
    vcpu = vcpu_in_l2(PRE)
    environment.ipiv(vcpu, NV)
    assert vcpu.nested_exits == [NestedExit(1, 0x800000FF, 0)]
    vmcs12 = nested.get_vmcs12(vcpu)
    assert (vmcs12.vm_exit_reason, vmcs12.vm_exit_intr_info) == (1, 0x800000FF)
    regs = vcpu.apic.regs
    assert (regs.irr, regs.isr, regs.ppr) == (0, 1 << NV, 0xF0)
    assert vcpu.vmcs01.svi == NV  # acked after switching to vmcs01 (I-7)
    desc = nested_desc(vcpu)
    assert (desc.pir, desc.on) == (1 << 0x41, True)
    assert vcpu.memory.apic_pages[VAPIC_ADDR].irr == 0
    assert not vcpu.guest_mode and vcpu.l2_delivered == []


@pytest.mark.parametrize("version", [POST, NOV], ids=lambda v: v.value)
def test_seed_post_patch_processes_the_nested_posted_interrupt(version):
    vcpu = vcpu_in_l2(version)
    vcpu.l2_rflags_if = False  # keep the virtual interrupt pending to observe RVI
    environment.ipiv(vcpu, NV)
    assert vcpu.nested_exits == []
    assert vcpu.guest_mode
    regs = vcpu.apic.regs
    assert (regs.irr, regs.isr, regs.ppr) == (0, 0, 0)
    desc = nested_desc(vcpu)
    assert (desc.pir, desc.on) == (0, False)
    assert vcpu.memory.apic_pages[VAPIC_ADDR].irr == 1 << 0x41
    assert vcpu.vmcs02.rvi == 0x41  # L2 RVI raised
    assert vcpu.nested.pi_pending is False
    assert any("posted_intr_nv" in line for line in vcpu.log)


def test_seed_trapped_ipi_takes_the_sender_side_path_in_every_version(version):
    vcpu = vcpu_in_l2(version)
    environment.trapped_ipi(vcpu, NV)
    assert vcpu.nested_exits == []
    assert vcpu.apic.regs.irr == 0  # I-12: L1's IRR is never polluted on this path
    assert vcpu.nested.pi_pending and Request.EVENT in vcpu.requests
    # the CPU in L2 matched vmcs02's NV (0xf0) and processed the nested descriptor
    assert nested_desc(vcpu).pir == 0
    assert vcpu.l2_delivered == [0x41]


def test_non_notification_vector_exits_in_every_version(version):
    vcpu = vcpu_in_l2(version)
    environment.device_post(vcpu, 0x50)
    assert vcpu.nested_exits == [NestedExit(1, 0x80000050, 0)]
    assert vcpu.apic.regs.isr == 1 << 0x50
    assert nested_desc(vcpu).pir == 1 << 0x41


def test_notification_vector_is_ignored_when_vmcs12_disables_posted_interrupts(version):
    vcpu = vcpu_in_l2(version, pi_vmcs12(pin_based_vm_exec_control=PIN_BASED_EXT_INTR_MASK))
    assert vcpu.nested.posted_intr_nv == 0xFFFF  # never set: I-10
    environment.ipiv(vcpu, NV)
    assert vcpu.nested_exits == [NestedExit(1, 0x800000FF, 0)]


# --- branches of the interrupt check -------------------------------------------------------------


def test_no_ack_exit_leaves_the_interrupt_pending(version):
    vcpu = vcpu_in_l2(version, pi_vmcs12(pin_based_vm_exec_control=PIN_BASED_EXT_INTR_MASK,
                                         vm_exit_controls=0, secondary_vm_exec_control=0))
    environment.ipiv(vcpu, 0x50)
    assert vcpu.nested_exits == [NestedExit(1, 0, 0)]
    assert vcpu.apic.regs.irr == 1 << 0x50 and vcpu.apic.regs.isr == 0


def test_extint_takes_precedence_over_the_lapic_and_skips_the_nv_check(version):
    vcpu = vcpu_in_l2(version)
    put_in_l1_irr(vcpu, NV)
    vcpu.extint_vector = NV  # even an ExtINT equal to NV is a plain exit (C20)
    assert nested.vmx_check_nested_events(vcpu) == 0
    assert vcpu.nested_exits == [NestedExit(1, 0x800000FF, 0)]
    assert vcpu.extint_vector == -1
    assert vcpu.apic.regs.irr == 1 << NV and vcpu.apic.regs.isr == 0


def test_nested_run_pending_blocks_the_interrupt_branch(version):
    vcpu = vcpu_in_l2(version)
    put_in_l1_irr(vcpu, 0x50)
    vcpu.nested.nested_run_pending = True
    assert nested.vmx_check_nested_events(vcpu) == -EBUSY
    assert vcpu.nested_exits == [] and vcpu.apic.regs.irr == 1 << 0x50


def test_nested_run_pending_blocks_the_nv_branch_except_in_nov_2024(version):
    vcpu = vcpu_in_l2(version)
    put_in_l1_irr(vcpu, NV)
    vcpu.nested.nested_run_pending = True
    r = nested.vmx_check_nested_events(vcpu)
    if version is NOV:
        assert r == 0 and nested_desc(vcpu).pir == 0  # blocked only by re-injection
    else:
        assert r == -EBUSY and nested_desc(vcpu).pir == 1 << 0x41


def test_reinjection_blocks_the_nv_branch_in_every_version(version):
    vcpu = vcpu_in_l2(version)
    put_in_l1_irr(vcpu, NV)
    vcpu.interrupt_injected = True
    assert nested.vmx_check_nested_events(vcpu) == -EBUSY


def test_pending_event_is_retried_after_an_immediate_exit(version):
    """kvm-unit-tests vmx_pending_event_test: -EBUSY, immediate exit, then the no-ack exit."""
    vcpu = environment.new_vcpu(version)
    put_in_l1_irr(vcpu, 0xF1)
    vmcs12 = pi_vmcs12(pin_based_vm_exec_control=PIN_BASED_EXT_INTR_MASK, vm_exit_controls=0,
                       secondary_vm_exec_control=0, cpu_based_vm_exec_control=0)
    environment.start_in_l1(vcpu, vmcs12)
    environment.vm_entry(vcpu)
    assert vcpu.nested_exits == [NestedExit(1, 0, 0)]
    assert vcpu.apic.regs.irr == 1 << 0xF1
    assert vcpu.nested.nested_run_pending is False


# --- priority order (docs/kernel.md) ----------------------------------------------------


PRIORITY = [
    ("init", NestedExit(EXIT_REASON_INIT_SIGNAL, 0, 0)),
    ("exception", NestedExit(EXIT_REASON_EXCEPTION_NMI, 0x8000030E, 0)),  # #PF, type 3
    ("mtf", NestedExit(EXIT_REASON_MONITOR_TRAP_FLAG, 0, 0)),
    ("preemption_timer", NestedExit(EXIT_REASON_PREEMPTION_TIMER, 0, 0)),
    ("nmi", NestedExit(EXIT_REASON_EXCEPTION_NMI, 0x80000202, 0)),
    ("interrupt", NestedExit(1, 0x800000FF, 0)),
]


def raise_event(vcpu, name):
    if name == "init":
        vcpu.apic.pending_events.add("INIT")
    elif name == "exception":
        vcpu.exception_vmexit.pending = True
        vcpu.exception_vmexit.vector = 14  # #PF, hardware exception type 3
    elif name == "mtf":
        vcpu.nested.mtf_pending = True
    elif name == "preemption_timer":
        vcpu.nested.preemption_timer_expired = True
    elif name == "nmi":
        vcpu.nmi_pending = 1
    else:
        put_in_l1_irr(vcpu, NV)


@pytest.mark.parametrize("index", range(len(PRIORITY) - 1))
def test_each_event_outranks_every_lower_one(index):
    """Raise one event and every lower-priority one: the highest wins (pre-patch, where the
    interrupt is also an exit, so every level is visible)."""
    vmcs12 = pi_vmcs12(pin_based_vm_exec_control=PIN_BASED_EXT_INTR_MASK | PIN_BASED_POSTED_INTR
                       | PIN_BASED_NMI_EXITING | PIN_BASED_VMX_PREEMPTION_TIMER)
    vcpu = vcpu_in_l2(PRE, vmcs12)
    for name, _ in PRIORITY[index:]:
        raise_event(vcpu, name)
    assert nested.vmx_check_nested_events(vcpu) == 0
    assert vcpu.nested_exits == [PRIORITY[index][1]]


def test_nv_processing_does_not_preempt_an_nmi_exit(version):
    """I-8: an NMI with NMI exiting wins over the notification vector."""
    vmcs12 = pi_vmcs12(pin_based_vm_exec_control=PIN_BASED_EXT_INTR_MASK | PIN_BASED_POSTED_INTR
                       | PIN_BASED_NMI_EXITING)
    vcpu = vcpu_in_l2(version, vmcs12)
    put_in_l1_irr(vcpu, NV)
    vcpu.nmi_pending = 1
    nested.vmx_check_nested_events(vcpu)
    assert vcpu.nested_exits == [NestedExit(0, 0x80000202, 0)]
    assert nested_desc(vcpu).pir == 1 << 0x41 and vcpu.apic.regs.irr == 1 << NV


# --- vmx_complete_nested_posted_interrupt (KB4, D2, KB6, C4) ----------------------------------


def complete(vcpu, pir, on, rvi=0, virr=0):
    desc = nested_desc(vcpu)
    desc.pir, desc.on = pir, on
    vcpu.memory.apic_pages[VAPIC_ADDR].irr = virr
    vcpu.vmcs02.guest_intr_status = rvi
    vcpu.nested.pi_pending = True
    return nested.vmx_complete_nested_posted_interrupt(vcpu)


def test_complete_with_on_clear_does_not_merge_pir():  # KB4, C5
    vcpu = vcpu_in_l2(POST)
    assert complete(vcpu, 1 << 0x41, on=False) == 0
    assert nested_desc(vcpu).pir == 1 << 0x41
    assert vcpu.nested.pi_pending is False


def test_complete_with_only_bit_0_posted_does_not_merge():  # D2
    vcpu = vcpu_in_l2(POST)
    complete(vcpu, 1, on=True)
    assert nested_desc(vcpu).pir == 1 and not nested_desc(vcpu).on
    assert vcpu.memory.apic_pages[VAPIC_ADDR].irr == 0


def test_complete_with_empty_pir_only_clears_on():  # C4
    vcpu = vcpu_in_l2(POST)
    complete(vcpu, 0, on=True, rvi=0x33)
    assert not nested_desc(vcpu).on and vcpu.vmcs02.guest_intr_status == 0x33


def test_complete_sets_rvi_from_the_merged_virr():  # KB6, C9
    vcpu = vcpu_in_l2(POST)
    complete(vcpu, 1 << 0x41, on=True, rvi=0x30, virr=1 << 0x90)
    assert vcpu.memory.apic_pages[VAPIC_ADDR].irr == 1 << 0x90 | 1 << 0x41
    assert vcpu.vmcs02.rvi == 0x90  # the SDM would give max(0x30, 0x41) = 0x41


def test_complete_without_a_mapped_descriptor_exits_to_userspace():
    vcpu = vcpu_in_l2(POST)
    vcpu.nested.pi_desc = None
    vcpu.nested.pi_pending = True
    assert nested.vmx_complete_nested_posted_interrupt(vcpu) == -ENXIO
    assert vcpu.userspace_exit.startswith("KVM_EXIT_INTERNAL_ERROR")


# --- nested VM-Enter -----------------------------------------------------------------------------


def check(**changes):
    """nested_vmx_check_apicv_controls on the kvm-unit-tests base vmcs12."""
    vcpu = environment.new_vcpu(POST, maxphyaddr=46)
    vcpu.nested.current_vmcs12 = vmcs12 = pi_vmcs12(**changes)
    return nested.nested_vmx_check_apicv_controls(vcpu, vmcs12)


PIN_PI = PIN_BASED_EXT_INTR_MASK | PIN_BASED_POSTED_INTR
CPU = CPU_BASED_TPR_SHADOW | CPU_BASED_ACTIVATE_SECONDARY_CONTROLS
VID = SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY
ACK = VM_EXIT_ACK_INTR_ON_EXIT


def test_kut_test_posted_intr_control_table():
    """kvm-unit-tests x86/vmx_tests.c test_posted_intr() steps 1-6 (docs/kernel.md)."""
    assert check(pin_based_vm_exec_control=PIN_PI, secondary_vm_exec_control=0,
                 vm_exit_controls=0) != 0  # 1: PI=1, VID=0
    assert check(pin_based_vm_exec_control=PIN_PI, vm_exit_controls=0) != 0  # 2: VID=1, INTA=0
    assert check(vm_exit_controls=0) != 0  # 3: INTA=0
    assert check(vm_exit_controls=ACK) == 0  # 4: INTA=1
    assert check(secondary_vm_exec_control=0) != 0  # 5: VID=0
    assert check(secondary_vm_exec_control=VID) == 0  # 6: VID=1


def test_kut_test_virtual_intr_ctls_needs_external_interrupt_exiting():
    assert check(pin_based_vm_exec_control=0) != 0
    assert check(pin_based_vm_exec_control=PIN_BASED_EXT_INTR_MASK) == 0


@pytest.mark.parametrize("i", range(16))
def test_kut_test_posted_intr_notification_vector_bits(i):  # step 7
    assert (check(posted_intr_nv=1 << i) == 0) == (i < 8)


def test_kut_test_posted_intr_notification_vector_zero_is_valid():
    assert check(posted_intr_nv=0) == 0


@pytest.mark.parametrize("addr,valid", [
    *[(1 << i, False) for i in range(6)],
    (0xF0, False), (0xFF, False), (0x0F, False),
    (0x8000, True), (0x0, True), (0xC000, True),
])
def test_kut_test_posted_intr_descriptor_addresses(addr, valid):  # step 8
    assert (check(posted_intr_desc_addr=addr) == 0) == valid


@pytest.mark.parametrize("i", range(64))
def test_kut_vmcs_addr_values_single_bits(i):  # step 9, MAXPHYADDR 46
    assert (check(posted_intr_desc_addr=1 << i) == 0) == (i >= 6 and i < 46)


@pytest.mark.parametrize("addr,valid", [
    (4096 - 1, False), (4096, True), ((1 << 46) - 4096, True), ((1 << 64) - 1, False),
])
def test_kut_vmcs_addr_values_page_boundaries(addr, valid):  # step 9
    assert (check(posted_intr_desc_addr=addr) == 0) == valid


def test_failed_vm_entry_reports_vm_instruction_error_7(version):
    vcpu = environment.new_vcpu(version)
    environment.start_in_l1(vcpu, pi_vmcs12(secondary_vm_exec_control=0))
    environment.vm_entry(vcpu)
    assert vcpu.vmentry_errors == [7]
    assert nested.get_vmcs12(vcpu).vm_instruction_error == 7
    assert not vcpu.guest_mode and vcpu.loaded_vmcs is vcpu.vmcs01


def test_vm_enter_nv_check_exists_until_nov_2024(version):
    vcpu = environment.new_vcpu(version)
    desc = vcpu.memory.map_pi_desc(DESC_ADDR)
    desc.pir, desc.on = 1 << 0x41, True
    put_in_l1_irr(vcpu, NV)
    environment.start_in_l1(vcpu, pi_vmcs12())
    vcpu.log.clear()
    environment.vm_entry(vcpu)
    enter_check = any("at VM-Enter" in line for line in vcpu.log)
    assert enter_check == (version is not NOV)
    # either way the notification is consumed as posted-interrupt processing
    assert vcpu.nested_exits == [] and vcpu.apic.regs.irr == 0
    assert vcpu.l2_delivered == [0x41]


def test_posted_intr_nv_is_invalidated_without_pi_only_from_6_7(version):
    vcpu = environment.new_vcpu(version)
    vmcs12 = pi_vmcs12()
    environment.start_in_l1(vcpu, vmcs12)
    environment.vm_entry(vcpu)
    assert vcpu.nested.posted_intr_nv == NV
    nested.nested_vmx_vmexit(vcpu, 1, 0, 0)
    vmcs12.pin_based_vm_exec_control = PIN_BASED_EXT_INTR_MASK
    environment.vm_entry(vcpu)
    expected = 0xFFFF if version is NOV else NV  # stale NV edge of docs/kernel.md
    assert vcpu.nested.posted_intr_nv == expected


def test_stale_nv_with_pi_disabled_exits_to_userspace_before_6_7():
    """docs/kernel.md: the sender path pends a nested PI with no descriptor mapped."""
    vcpu = environment.new_vcpu(POST)
    vmcs12 = pi_vmcs12()
    environment.start_in_l1(vcpu, vmcs12)
    environment.vm_entry(vcpu)
    nested.nested_vmx_vmexit(vcpu, 1, 0, 0)
    vmcs12.pin_based_vm_exec_control = PIN_BASED_EXT_INTR_MASK
    vmcs12.secondary_vm_exec_control = VID
    environment.vm_entry(vcpu)
    vcpu.log.clear()
    environment.trapped_ipi(vcpu, NV)
    # vmcs02 has no PI, so the 0xf0 IPI exits to L0; the pending nested PI has no descriptor
    assert vcpu.log[-2:] == ["cpu: external-interrupt VM exit to L0 (0xf0) from vmcs02",
                             "vmx_complete_nested_posted_interrupt: mmio_needed, -ENXIO"]
    assert vcpu.userspace_exit.startswith("KVM_EXIT_INTERNAL_ERROR")


def test_nested_vmexit_unmaps_and_switches_to_vmcs01():
    vcpu = vcpu_in_l2(POST)
    vcpu.vmcs02.guest_intr_status = 0x4150
    nested.nested_vmx_vmexit(vcpu, 1, 0x80000050, 0)
    vmcs12 = nested.get_vmcs12(vcpu)
    assert vcpu.loaded_vmcs is vcpu.vmcs01
    assert vcpu.nested.pi_desc is None and vcpu.nested.virtual_apic_map is None
    assert vmcs12.guest_intr_status == 0x4150  # sync_vmcs02_to_vmcs12 with VID
    assert (vmcs12.vm_exit_reason, vmcs12.vm_exit_intr_info, vmcs12.exit_qualification) == \
        (1, 0x80000050, 0)


def test_l2_without_ext_interrupt_exiting_gets_the_interrupt_injected(version):
    vmcs12 = pi_vmcs12(pin_based_vm_exec_control=0, secondary_vm_exec_control=0,
                       vm_exit_controls=0, cpu_based_vm_exec_control=0)
    vcpu = vcpu_in_l2(version, vmcs12)
    environment.trapped_ipi(vcpu, 0x66)
    assert vcpu.nested_exits == []
    assert vcpu.l2_delivered == [0x66]
    assert vcpu.apic.regs.isr == 1 << 0x66  # acked in L1's APIC (EXT-1: through L2's IDT)


# --- the nov-2024 details (issue: the KVM model at nov-2024) -------------------------------------


def test_version_switches_are_data_with_their_commits():
    from software_model import vmx

    switches = [nested.NV_AT_INJECTION, nested.EVENT_PRIORITY_AT_VMENTER, nested.INVALIDATE_NV,
                nested.VPPR_AT_VMENTER, vmx.DEFER_SVI_IN_GUEST_MODE]
    assert [(c.commit, c.first) for c in switches] == [
        ("6e0b456547f4", POST), ("ce5cdfb49813", NOV), ("1ed0f119c5ff", NOV),
        ("637df11290b3", NOV), ("04bc93cf49d1", NOV)]
    assert [nested.NV_AT_INJECTION(v) for v in (PRE, POST, NOV)] == [False, True, True]
    assert [vmx.DEFER_SVI_IN_GUEST_MODE(v) for v in (PRE, POST, NOV)] == [False, False, True]


@pytest.mark.parametrize("version,svi02,svi01", [(POST, 0x60, 0), (NOV, 0, 0x60)],
                         ids=["post-patch", "nov-2024"])
def test_isr_update_in_guest_mode_writes_vmcs02_until_deferred_to_vmcs01(version, svi02, svi01):
    """An L1 interrupt acknowledged while L2 runs (external-interrupt exiting off: injected
    into L2) sets L1's ISR. Up to 6e0b456547f4, vmx_hwapic_isr_update() writes SVI into the
    loaded vmcs02; from 04bc93cf49d1 on it only sets update_vmcs01_hwapic_isr, and the next
    nested VM-Exit writes vmcs01's SVI (kvm_apic_update_hwapic_isr)."""
    from software_model import lapic

    vcpu = vcpu_in_l2(version, pi_vmcs12(pin_based_vm_exec_control=0, secondary_vm_exec_control=0,
                                         cpu_based_vm_exec_control=CPU_BASED_TPR_SHADOW))
    lapic.apic_set_isr(0x60, vcpu.apic)
    assert vcpu.vmcs02.svi == svi02 and vcpu.vmcs01.svi == 0
    assert vcpu.nested.update_vmcs01_hwapic_isr == (version is NOV)
    nested.nested_vmx_vmexit(vcpu, 1, 0, 0)
    assert vcpu.vmcs01.svi == svi01 and not vcpu.nested.update_vmcs01_hwapic_isr


@pytest.mark.parametrize("version,requested", [(POST, False), (NOV, True)],
                         ids=["post-patch", "nov-2024"])
def test_kvm_apic_has_interrupt_minus_one_is_true_after_vm_enter(version, requested):
    """637df11290b3 adds "|| kvm_apic_has_interrupt(vcpu)" to the KVM_REQ_EVENT condition of
    nested_vmx_enter_non_root_mode(); with nothing pending it returns -1, which C reads as
    true: KVM_REQ_EVENT after every successful VM-Enter (the model keeps the quirk)."""
    vcpu = environment.new_vcpu(version)
    environment.start_in_l1(vcpu, pi_vmcs12())
    vcpu.requests.clear()
    assert nested.nested_vmx_enter_non_root_mode(vcpu, True) == nested.NVMX_VMENTRY_SUCCESS
    assert (Request.EVENT in vcpu.requests) == requested


def test_vmentry_failed_with_a_synthesized_vm_exit_resumes_l1(monkeypatch):
    """nested_vmx_run()'s vmentry_failed label: NVMX_VMENTRY_VMEXIT returns 1 (L1 resumes with
    the VM exit already synthesized), not VMfail."""
    vcpu = environment.new_vcpu(POST)
    environment.start_in_l1(vcpu, pi_vmcs12())
    monkeypatch.setattr(nested, "nested_vmx_enter_non_root_mode",
                        lambda vcpu, from_vmentry: nested.NVMX_VMENTRY_VMEXIT)
    assert nested.nested_vmx_run(vcpu) == 1
    assert vcpu.vmentry_errors == [] and not vcpu.nested.nested_run_pending


# --- KB2's family: any higher-priority nested VM exit after the VM-Enter check ------------------


def _enter_with_nv_and(version, event: str):
    """L1 enters L2 with NV pending in its IRR and, pending too, a VMX-preemption timer that
    already expired or an NMI that L1 intercepts (both outrank external interrupts in
    vmx_check_nested_events)."""
    from software_model.constants import EXIT_REASON_EXCEPTION_NMI, EXIT_REASON_PREEMPTION_TIMER

    pin = PIN_BASED_EXT_INTR_MASK | PIN_BASED_POSTED_INTR
    pin |= PIN_BASED_VMX_PREEMPTION_TIMER if event == "timer" else PIN_BASED_NMI_EXITING
    vcpu = environment.new_vcpu(version)
    desc = vcpu.memory.map_pi_desc(DESC_ADDR)
    desc.pir, desc.on, desc.nv = 1 << 0x41, True, NV
    put_in_l1_irr(vcpu, NV)
    environment.start_in_l1(vcpu, pi_vmcs12(pin_based_vm_exec_control=pin))
    if event == "timer":
        vcpu.nested.preemption_timer_expired = True
    else:
        vcpu.nmi_pending = 1
    environment.vm_entry(vcpu)
    reason = EXIT_REASON_PREEMPTION_TIMER if event == "timer" else EXIT_REASON_EXCEPTION_NMI
    return vcpu, reason


@pytest.mark.parametrize("event", ["timer", "nmi"])
@pytest.mark.parametrize("version", [PRE, POST], ids=lambda v: v.value)
def test_kb2_also_behind_a_preemption_timer_or_nmi_exit(version, event):
    """The VM-Enter check clears IRR[NV] and sets pi_pending; the higher-priority nested VM
    exit (preemption timer, NMI) is taken first, and the next VM-Enter drops pi_pending:
    NV is gone from L1's IRR and the descriptor keeps ON = 1 with 0x41 (KB2's mechanism,
    the case Chao Gao raised in review of the v1 series)."""
    vcpu, reason = _enter_with_nv_and(version, event)
    assert [e.reason for e in vcpu.nested_exits] == [reason]
    assert not vcpu.apic.regs.irr >> NV & 1 and not vcpu.apic.regs.isr >> NV & 1
    assert vcpu.nested.pi_pending
    vcpu.nested.preemption_timer_expired = False
    vcpu.nmi_pending = 0
    environment.vm_entry(vcpu)  # L1 re-enters: prepare_vmcs02_early() drops pi_pending
    assert vcpu.guest_mode and not vcpu.nested.pi_pending
    desc = nested_desc(vcpu)
    assert (desc.pir, desc.on) == (1 << 0x41, True) and vcpu.l2_delivered == []


@pytest.mark.parametrize("event", ["timer", "nmi"])
def test_kb2_family_fixed_at_nov_2024(event):
    """ce5cdfb49813: no VM-Enter check; the higher-priority exit is taken and NV stays in
    L1's IRR, so the next VM entry processes it."""
    vcpu, reason = _enter_with_nv_and(NOV, event)
    assert [e.reason for e in vcpu.nested_exits] == [reason]
    assert vcpu.apic.regs.irr >> NV & 1 and not vcpu.nested.pi_pending
    vcpu.nested.preemption_timer_expired = False
    vcpu.nmi_pending = 0
    environment.vm_entry(vcpu)
    assert vcpu.l2_delivered == [0x41] and nested_desc(vcpu).on is False

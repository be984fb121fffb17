"""cpu.py (what the processor does with the loaded VMCS), environment.py (the agents around
KVM) and the remaining helpers, with exact values from the SDM and the kernel source."""

import pytest

from software_model import KernelVersion, cpu, environment, nested, posted_intr, vmx
from software_model.constants import CPU_BASED_INTR_WINDOW_EXITING, EBUSY
from software_model.state import PiDesc, Request

from .conftest import DESC_ADDR, NV, VAPIC_ADDR, nested_desc, pi_vmcs12, vcpu_in_l2

POST = KernelVersion.POST_PATCH


def l2_page(vcpu):
    return vcpu.memory.apic_pages[VAPIC_ADDR]


# --- pi_* helpers (arch/x86/include/asm/posted_intr.h) -------------------------------------------


def test_pi_helpers_return_old_values_and_touch_one_bit():
    d = PiDesc(pir=1 << 5, nv=0xF2, ndst=7)
    assert posted_intr.pi_test_and_set_on(d) is False and d.on
    assert posted_intr.pi_test_and_set_on(d) is True
    assert posted_intr.pi_test_and_clear_on(d) is True and not d.on
    assert posted_intr.pi_test_and_set_pir(9, d) is False and d.pir == 1 << 5 | 1 << 9
    assert posted_intr.pi_test_and_set_pir(9, d) is True
    posted_intr.pi_set_sn(d)
    assert posted_intr.pi_test_sn(d) and posted_intr.pi_test_and_clear_sn(d) is True
    assert (d.nv, d.ndst) == (0xF2, 7)
    assert posted_intr.pi_find_highest_vector(d) == 9
    assert posted_intr.pi_find_highest_vector(PiDesc()) == -1
    assert posted_intr.pi_is_pir_empty(PiDesc())


def test_pir_chunks_are_exchanged_32_bits_at_a_time():
    d = PiDesc(pir=0xDEADBEEF << 64 | 0x1234)
    assert d.pir_chunk(2) == 0xDEADBEEF
    assert d.xchg_pir_chunk(2, 0) == 0xDEADBEEF
    assert d.pir == 0x1234


# --- virtual-interrupt delivery (VID-3..9) ------------------------------------------------------


def test_vm_entry_virtualizes_ppr_from_vtpr_and_svi():
    vcpu = vcpu_in_l2(POST)
    vmcs = vcpu.vmcs02
    page = l2_page(vcpu)
    page.tpr, vmcs.guest_intr_status = 0x35, 0x6000  # SVI 0x60: class 6 > 3
    cpu.vm_entry(vcpu, immediate_exit=True)
    assert page.ppr == 0x60
    page.tpr = 0x75
    cpu.vm_entry(vcpu, immediate_exit=True)
    assert page.ppr == 0x75  # VID-3: VTPR & FFH when its class is not below SVI's


def test_delivery_follows_vid_7_and_nests_by_class():
    vcpu = vcpu_in_l2(POST, pir=())
    page = l2_page(vcpu)
    page.irr = 1 << 0x51 | 1 << 0x93
    vcpu.vmcs02.guest_intr_status = 0x0093
    cpu.vm_entry(vcpu, immediate_exit=False)
    # 0x93 first; 0x51 (class 5) is not above VPPR 0x90
    assert vcpu.l2_delivered == [0x93]
    assert (page.irr, page.isr, page.ppr) == (1 << 0x51, 1 << 0x93, 0x90)
    assert vcpu.vmcs02.guest_intr_status == 0x9351  # SVI 0x93, RVI = hsb(VIRR) = 0x51


def test_recognition_ceases_after_one_delivery_even_with_a_stale_rvi():
    """C9-like state: RVI 0x93 below hsb(VIRR) 0xe1. One evaluation delivers one interrupt;
    0xe1 (class above the new VPPR 0x90) waits for the next evaluation (SDM 29.2.2)."""
    vcpu = vcpu_in_l2(POST, pir=())
    page = l2_page(vcpu)
    page.irr = 1 << 0x93 | 1 << 0xE1
    vcpu.vmcs02.guest_intr_status = 0x0093
    cpu.vm_entry(vcpu, immediate_exit=False)
    assert vcpu.l2_delivered == [0x93]
    assert vcpu.vmcs02.rvi == 0xE1 and page.ppr == 0x90
    cpu.tpr_virtualization(vcpu, vcpu.vmcs02, 0)  # an evaluation event
    assert vcpu.l2_delivered == [0x93, 0xE1]


def test_no_delivery_with_if_clear_or_interrupt_window_exiting():
    vcpu = vcpu_in_l2(POST, pir=())
    l2_page(vcpu).irr = 1 << 0x80
    vcpu.vmcs02.guest_intr_status = 0x80
    vcpu.l2_rflags_if = False
    cpu.vm_entry(vcpu, immediate_exit=False)
    assert vcpu.l2_delivered == []
    vcpu.l2_rflags_if = True
    vcpu.vmcs02.cpu_based |= CPU_BASED_INTR_WINDOW_EXITING  # C15 / VID-4
    cpu.vm_entry(vcpu, immediate_exit=False)
    assert vcpu.l2_delivered == []
    vcpu.vmcs02.cpu_based &= ~CPU_BASED_INTR_WINDOW_EXITING
    cpu.vm_entry(vcpu, immediate_exit=True)  # the preemption-timer exit wins
    assert vcpu.l2_delivered == []
    cpu.vm_entry(vcpu, immediate_exit=False)
    assert vcpu.l2_delivered == [0x80]


def test_eoi_virtualization_clears_svi_and_delivers_the_next():
    vcpu = vcpu_in_l2(POST, pir=())
    page = l2_page(vcpu)
    page.isr, page.irr, page.tpr = 1 << 0x93 | 1 << 0x31, 1 << 0x51, 0
    vcpu.vmcs02.guest_intr_status = 0x9351
    cpu.eoi_virtualization(vcpu, vcpu.vmcs02)  # VID-8
    # VPPR fell to 0x30, so 0x51 was recognized and delivered: it is in service above 0x31
    assert vcpu.l2_delivered == [0x51]
    assert page.isr == 1 << 0x31 | 1 << 0x51
    assert vcpu.vmcs02.guest_intr_status == 0x5100 and page.ppr == 0x50


def test_tpr_virtualization_unmasks_a_pending_virtual_interrupt():
    vcpu = vcpu_in_l2(POST, pir=())
    page = l2_page(vcpu)
    page.irr = 1 << 0x45
    vcpu.vmcs02.guest_intr_status = 0x45
    cpu.tpr_virtualization(vcpu, vcpu.vmcs02, 0x50)
    assert page.ppr == 0x50 and vcpu.l2_delivered == []
    cpu.tpr_virtualization(vcpu, vcpu.vmcs02, 0x30)  # VID-9
    assert vcpu.l2_delivered == [0x45]


def test_hardware_pi_processing_uses_max_of_rvi_and_pir():
    """SDM step 6 (the CPU, unlike KVM: known bug KB6): RVI := max(RVI, hsb(PIR))."""
    vcpu = vcpu_in_l2(POST, pir=(0x41,))
    vcpu.l2_rflags_if = False
    l2_page(vcpu).irr = 1 << 0x90
    vcpu.vmcs02.guest_intr_status = 0x30
    cpu.posted_interrupt_processing(vcpu, vcpu.vmcs02)
    assert vcpu.vmcs02.rvi == 0x41
    assert l2_page(vcpu).irr == 1 << 0x90 | 1 << 0x41
    assert nested_desc(vcpu).pir == 0 and not nested_desc(vcpu).on


# --- environment: the events --------------------------------------------------------------------


def test_post_writes_pir_then_on_without_notification():
    vcpu = vcpu_in_l2(POST, pir=(), on=False)
    environment.post(vcpu, 0x42)
    desc = nested_desc(vcpu)
    assert (desc.pir, desc.on) == (1 << 0x42, True)
    assert l2_page(vcpu).irr == 0 and vcpu.l2_delivered == []


def test_a_racing_post_lands_between_step_3_and_the_harvest():
    """C14: another agent's post that lands right after step 3 cleared ON is harvested by the
    same processing and leaves ON = 1 with PIR empty (the next notification finds nothing:
    C4). Without a processing it lands as an ordinary post when the event ends."""
    vcpu = vcpu_in_l2(POST, pir=(0x41,))
    vcpu.l2_rflags_if = False
    environment.race(vcpu, 0x52)
    assert nested_desc(vcpu).pir == 1 << 0x41  # not yet
    cpu.posted_interrupt_processing(vcpu, vcpu.vmcs02)
    desc = nested_desc(vcpu)
    assert (desc.pir, desc.on) == (0, True)
    assert l2_page(vcpu).irr == 1 << 0x41 | 1 << 0x52 and vcpu.vmcs02.rvi == 0x52
    environment.race_end(vcpu)  # already landed: nothing more
    assert (desc.pir, desc.on) == (0, True)

    vcpu = vcpu_in_l2(POST, pir=(), on=False)
    environment.race(vcpu, 0x52)
    environment.race_end(vcpu)
    assert (nested_desc(vcpu).pir, nested_desc(vcpu).on) == (1 << 0x52, True)


def test_ipiv_with_sn_set_posts_without_notification():  # C11 / IPIV-9
    vcpu = vcpu_in_l2(KernelVersion.PRE_PATCH)
    vcpu.pi_desc.sn = True
    environment.ipiv(vcpu, NV)
    assert vcpu.pi_desc.pir == 1 << NV and not vcpu.pi_desc.on
    assert vcpu.nested_exits == []  # nothing reached KVM yet
    assert vcpu.log[-1] == "L1 PID: ON=0 SN=1: no notification"


def test_l2_events_without_l2_running_have_no_effect():
    vcpu = environment.new_vcpu(POST)
    environment.start_in_l1(vcpu, pi_vmcs12())
    environment.l2_eoi(vcpu)
    environment.l2_tpr(vcpu, 0x20)
    assert vcpu.log[-2:] == [
        "l2_eoi: no virtual-interrupt delivery for a running L2; event has no effect",
        "l2_tpr: no TPR shadow for a running L2; event has no effect"]


def test_vm_entry_while_l2_runs_has_no_effect():
    vcpu = vcpu_in_l2(POST)
    environment.vm_entry(vcpu)
    assert vcpu.log == ["vm_entry: L2 is running, L1 cannot execute VMLAUNCH; event has no effect"]


def test_l1_eoi_after_the_pre_patch_exit_restores_ppr():
    vcpu = vcpu_in_l2(KernelVersion.PRE_PATCH)
    environment.ipiv(vcpu, NV)
    environment.eoi(vcpu)
    regs = vcpu.apic.regs
    assert (regs.isr, regs.ppr) == (0, 0)
    assert vcpu.apic.ioapic_eois == [(NV, False)]
    assert vcpu.vmcs01.svi == 0


# --- remaining vmx / nested helpers -------------------------------------------------------------


def test_vmx_interrupt_allowed():
    vcpu = vcpu_in_l2(POST)
    assert vmx.vmx_interrupt_allowed(vcpu, True) == -EBUSY  # L1 wants the exit
    assert vmx.vmx_interrupt_allowed(vcpu, False) == 1  # IF is irrelevant (D5)
    vcpu.nested.nested_run_pending = True
    assert vmx.vmx_interrupt_allowed(vcpu, False) == -EBUSY


def test_vmx_hwapic_isr_update_writes_the_loaded_vmcs():
    vcpu = vcpu_in_l2(POST)
    vmx.vmx_hwapic_isr_update(vcpu, 0x77)
    assert vcpu.vmcs02.svi == 0x77 and vcpu.vmcs01.svi == 0


@pytest.mark.parametrize("rvi,vppr,pi,expected", [
    (0x50, 0x40, False, True),
    (0x45, 0x40, False, False),
    (0x00, 0x40, True, True),  # pending nested PI whose highest PIR class is above VPPR
])
def test_vmx_has_nested_events(rvi, vppr, pi, expected):
    vcpu = vcpu_in_l2(POST, pir=(0x61,))
    vcpu.vmcs02.guest_intr_status = rvi
    l2_page(vcpu).ppr = vppr
    vcpu.nested.pi_pending = pi
    assert nested.vmx_has_nested_events(vcpu, False) is expected
    assert nested.vmx_has_nested_events(vcpu, True) is False


def test_prepare_vmcs02_early_caches_nv_and_sets_vmcs02_constants():
    vcpu = vcpu_in_l2(POST)
    assert vcpu.nested.posted_intr_nv == NV
    assert vcpu.vmcs02.posted_intr_nv == 0xF0
    assert vcpu.vmcs02.posted_intr_desc is vcpu.memory.pi_descs[DESC_ADDR]
    assert vcpu.nested.pi_pending is False


def test_kvm_make_request_on_vm_enter_when_l1_has_a_pending_interrupt_nov_2024():
    """637df11290b3: the nov-2024 VM-Enter path calls kvm_apic_has_interrupt()."""
    vcpu = environment.new_vcpu(KernelVersion.NOV_2024)
    vcpu.apic.regs.irr = 1 << 0x50
    environment.start_in_l1(vcpu, pi_vmcs12())
    vcpu.nested.nested_run_pending = True
    vcpu.requests.clear()
    nested.nested_vmx_enter_non_root_mode(vcpu, True)
    assert vcpu.requests == {Request.EVENT}

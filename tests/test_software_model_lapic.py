"""lapic.c, irq.c and the VMX APIC hooks (docs/kernel.md), with exact values."""

from software_model import KernelVersion, environment, irq, lapic, vmx
from software_model.constants import POSTED_INTR_VECTOR
from software_model.state import ApicPage, Lapic, PiDesc, Request, Vcpu

from .conftest import vcpu_in_l2


def l1_vcpu(irr=(), isr=(), tpr=0, tmr=()) -> Vcpu:
    vcpu = environment.new_vcpu(KernelVersion.POST_PATCH)
    regs = vcpu.apic.regs
    regs.irr = sum(1 << v for v in irr)
    regs.isr = sum(1 << v for v in isr)
    regs.tmr = sum(1 << v for v in tmr)
    regs.tpr = tpr
    return vcpu


def test_find_highest_vector():
    assert lapic.find_highest_vector(0) == -1
    assert lapic.find_highest_vector(1 << 0x41 | 1 << 0xFF) == 0xFF
    assert lapic.find_highest_vector(1 << 32) == 32


def test_apic_update_ppr_takes_tpr_when_its_class_is_not_below_isr():
    vcpu = l1_vcpu(isr=(0x45,), tpr=0x47)
    assert lapic.__apic_update_ppr(vcpu.apic) == (False, 0x47)
    assert vcpu.apic.regs.ppr == 0x47


def test_apic_update_ppr_takes_isr_class_and_reports_a_decrease():
    vcpu = l1_vcpu(isr=(0x5A,), tpr=0x31)
    vcpu.apic.regs.ppr = 0x90
    assert lapic.__apic_update_ppr(vcpu.apic) == (True, 0x50)
    assert vcpu.apic.regs.ppr == 0x50


def test_apic_has_interrupt_for_ppr_compares_classes():
    vcpu = l1_vcpu(irr=(0x4B,), isr=(0x4A,))
    # C19: same class as the in-service vector is not deliverable
    assert lapic.kvm_apic_has_interrupt(vcpu) == -1
    vcpu.apic.regs.irr |= 1 << 0x50
    assert lapic.kvm_apic_has_interrupt(vcpu) == 0x50


def test_kvm_apic_has_interrupt_refreshes_ppr_and_syncs_l1_pir():
    vcpu = l1_vcpu(tpr=0x20)
    vcpu.pi_desc.pir = 1 << 0x61
    vcpu.pi_desc.on = True
    assert lapic.kvm_apic_has_interrupt(vcpu) == 0x61
    assert vcpu.apic.regs.ppr == 0x20
    assert vcpu.apic.regs.irr == 1 << 0x61
    assert vcpu.pi_desc.pir == 0 and not vcpu.pi_desc.on
    # not in guest mode: vmx_set_rvi() writes vmcs01's RVI
    assert vcpu.vmcs01.rvi == 0x61


def test_kvm_apic_has_interrupt_returns_minus_one_for_a_disabled_apic():
    vcpu = l1_vcpu(irr=(0x80,))
    vcpu.apic.hw_enabled = False
    assert lapic.kvm_apic_has_interrupt(vcpu) == -1


def test_kvm_apic_ack_interrupt_moves_irr_to_isr_and_writes_svi_to_vmcs01():
    vcpu = l1_vcpu(irr=(0xDE, 0x31), tpr=0x10)
    lapic.kvm_apic_ack_interrupt(vcpu, 0xDE)
    regs = vcpu.apic.regs
    assert regs.irr == 1 << 0x31
    assert regs.isr == 1 << 0xDE
    assert regs.ppr == 0xD0
    assert vcpu.vmcs01.guest_intr_status == 0xDE31  # SVI 0xde, RVI = max IRR 0x31


def test_kvm_apic_clear_irr_leaves_isr_and_ppr_alone():
    vcpu = l1_vcpu(irr=(0xFF,), isr=(0x30,))
    lapic.__apic_update_ppr(vcpu.apic)
    lapic.kvm_apic_clear_irr(vcpu, 0xFF)
    assert vcpu.apic.regs.irr == 0
    assert vcpu.apic.regs.isr == 1 << 0x30
    assert vcpu.apic.regs.ppr == 0x30


def test_apic_clear_irr_while_l2_runs_never_writes_vmcs02_rvi():
    vcpu = vcpu_in_l2(KernelVersion.POST_PATCH)
    vcpu.vmcs02.guest_intr_status = 0x0041
    vcpu.apic.regs.irr = 1 << 0x80
    lapic.kvm_apic_clear_irr(vcpu, 0x80)
    assert vcpu.vmcs02.guest_intr_status == 0x0041  # invariant I-7


def test_non_apicv_irr_pending_and_isr_cache():
    apic = Lapic(apicv_active=False, isr_count=0)
    Vcpu(version=KernelVersion.POST_PATCH, apic=apic)
    apic.regs.irr = 1 << 0x40
    lapic.apic_clear_irr(0x40, apic)
    assert apic.irr_pending is False and lapic.apic_find_highest_irr(apic) == -1
    lapic.apic_set_isr(0x70, apic)
    assert (apic.isr_count, apic.highest_isr_cache) == (1, 0x70)
    lapic.apic_clear_isr(0x70, apic)
    assert (apic.isr_count, apic.highest_isr_cache, apic.regs.isr) == (0, -1, 0)


def test___kvm_apic_update_irr_returns_highest_of_merged_irr():
    regs = ApicPage(irr=1 << 0x90)
    desc = PiDesc(pir=1 << 0x41 | 1 << 0x42)
    assert lapic.__kvm_apic_update_irr(desc, regs) == (False, 0x90)
    assert regs.irr == 1 << 0x90 | 1 << 0x41 | 1 << 0x42
    assert desc.pir == 0
    desc.pir = 1 << 0xA0
    assert lapic.__kvm_apic_update_irr(desc, regs) == (True, 0xA0)
    # a posted bit already in IRR is not an update
    desc.pir = 1 << 0xA0
    assert lapic.__kvm_apic_update_irr(desc, regs) == (False, 0xA0)


def test_apic_set_eoi_clears_highest_isr_and_forwards_level_eoi():
    vcpu = l1_vcpu(isr=(0x51, 0x62), tmr=(0x62,))
    vcpu.requests.clear()
    assert lapic.apic_set_eoi(vcpu.apic) == 0x62
    assert vcpu.apic.regs.isr == 1 << 0x51
    assert vcpu.apic.regs.ppr == 0x50
    assert vcpu.apic.ioapic_eois == [(0x62, True)]
    assert Request.EVENT in vcpu.requests
    # APIC-11: EOI with an empty ISR changes nothing
    vcpu.apic.regs.isr = 0
    assert lapic.apic_set_eoi(vcpu.apic) == -1


def test_kvm_lapic_set_tpr_requests_an_event_when_ppr_drops_below_a_pending_vector():
    vcpu = l1_vcpu(irr=(0x55,), tpr=0x60)
    lapic.__apic_update_ppr(vcpu.apic)
    vcpu.requests.clear()
    lapic.kvm_lapic_set_tpr(vcpu, 0x40)
    assert vcpu.apic.regs.ppr == 0x40
    assert vcpu.requests == {Request.EVENT}


def test_kvm_apic_accept_fixed_irq_sets_tmr_for_level_and_posts_to_l1_pid():
    vcpu = l1_vcpu()
    vcpu.mode = vcpu.mode.OUTSIDE_GUEST_MODE  # no notification IPI while outside the guest
    lapic.kvm_apic_accept_fixed_irq(vcpu, 0x77, trig_mode=True)
    assert vcpu.apic.regs.tmr == 1 << 0x77
    assert vcpu.pi_desc.pir == 1 << 0x77 and vcpu.pi_desc.on
    lapic.kvm_apic_accept_fixed_irq(vcpu, 0x77, trig_mode=False)
    assert vcpu.apic.regs.tmr == 0


def test_vmx_sync_pir_to_irr_in_guest_mode_requests_event_instead_of_rvi():
    vcpu = vcpu_in_l2(KernelVersion.PRE_PATCH)
    vcpu.pi_desc.pir = 1 << 0xFF
    vcpu.pi_desc.on = True
    before = vcpu.vmcs01.guest_intr_status
    assert vmx.vmx_sync_pir_to_irr(vcpu) == 0xFF
    assert vcpu.apic.regs.irr == 1 << 0xFF
    assert not vcpu.pi_desc.on
    assert vcpu.requests == {Request.EVENT}
    assert vcpu.vmcs01.guest_intr_status == before


def test_kvm_cpu_get_interrupt_prefers_extint_then_acks_lapic():
    vcpu = l1_vcpu(irr=(0x80,))
    vcpu.extint_vector = 0x30
    assert irq.kvm_cpu_has_interrupt(vcpu)
    assert irq.kvm_cpu_get_interrupt(vcpu) == 0x30
    assert vcpu.extint_vector == -1 and vcpu.apic.regs.irr == 1 << 0x80
    assert irq.kvm_cpu_get_interrupt(vcpu) == 0x80
    assert vcpu.apic.regs.isr == 1 << 0x80


def test_kvm_cpu_has_injectable_intr_is_false_for_l1_with_apicv():
    vcpu = l1_vcpu(irr=(0x80,))
    assert not irq.kvm_cpu_has_injectable_intr(vcpu)


def test_vmx_deliver_posted_interrupt_sends_one_notification_per_on_transition():
    vcpu = l1_vcpu()
    assert vmx.vmx_deliver_posted_interrupt(vcpu, 0x90) == 0
    # L1 runs on vmcs01 whose NV is POSTED_INTR_VECTOR: the CPU processes the post into IRR
    assert vcpu.apic.regs.irr == 1 << 0x90 and not vcpu.pi_desc.on
    assert vcpu.vmcs01.rvi == 0x90
    vcpu.pi_desc.on = True  # an outstanding notification suppresses the next IPI
    vmx.vmx_deliver_posted_interrupt(vcpu, 0x91)
    assert vcpu.pi_desc.pir == 1 << 0x91
    assert vcpu.apic.regs.irr == 1 << 0x90
    assert vcpu.pi_desc.nv == POSTED_INTR_VECTOR

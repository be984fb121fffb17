"""KVM's state for one vCPU running a nested guest, as plain dataclasses.

Each class mirrors a kernel structure; field names are the kernel's. 256-bit bitmaps (IRR, ISR,
TMR, PIR) are Python integers, bit *v* = vector *v*. Nothing here imports amaranth or cocotb.

References: ``arch/x86/kvm/lapic.h`` (``struct kvm_lapic``), ``arch/x86/kvm/vmx/vmx.h``
(``struct nested_vmx``, ``struct vcpu_vmx``), ``arch/x86/kvm/vmx/vmcs12.h`` (``struct vmcs12``),
``arch/x86/include/asm/posted_intr.h`` (``struct pi_desc``), at the commits of
:class:`software_model.version.KernelVersion`.
"""

import enum
from dataclasses import dataclass, field

from .version import KernelVersion

__all__ = [
    "POSTED_INTR_NV_INVALID",
    "ApicPage",
    "ExceptionState",
    "GuestMemory",
    "Lapic",
    "NestedExit",
    "NestedVmx",
    "PiDesc",
    "RacingPiDesc",
    "Request",
    "Vcpu",
    "VcpuMode",
    "Vmcs",
    "Vmcs12",
]

#: ``vmx->nested.posted_intr_nv`` is a u16; -1 stored into it reads back as 0xffff.
POSTED_INTR_NV_INVALID = 0xFFFF


@dataclass
class PiDesc:
    """``struct pi_desc``: the 64-byte posted-interrupt descriptor.

    ``pir`` is bits 255:0; ``on`` bit 256; ``sn`` bit 257; ``nv`` bits 279:272; ``ndst`` bits
    319:288 (``arch/x86/include/asm/posted_intr.h``).
    """

    pir: int = 0
    on: bool = False
    sn: bool = False
    nv: int = 0
    ndst: int = 0

    def pir_chunk(self, i: int) -> int:
        """``pir[i]``: the i-th u32 of PIR."""
        return (self.pir >> (32 * i)) & 0xFFFFFFFF

    def xchg_pir_chunk(self, i: int, value: int) -> int:
        """``xchg(&pir[i], value)``: atomic exchange of one u32 chunk, returning the old one."""
        old = self.pir_chunk(i)
        self.pir = (self.pir & ~(0xFFFFFFFF << (32 * i))) | (value << (32 * i))
        return old


class RacingPiDesc(PiDesc):
    """A :class:`PiDesc` while another agent's posts wait to land (``environment.race``):
    the moment ON is next cleared, before anything reads PIR again, each lands (its locked
    ORs: PIR[vector], then ON). A descriptor is one only while a race is armed, so ordinary
    runs pay nothing for the hook."""

    racing: list[int]

    def __setattr__(self, name: str, value) -> None:
        object.__setattr__(self, name, value)
        if name == "on" and not value:
            for vector in self.racing:
                object.__setattr__(self, "pir", self.pir | 1 << vector)
                object.__setattr__(self, "on", True)
            self.disarm()

    def arm(self, vector: int) -> None:
        self.racing.append(vector)

    def disarm(self) -> list[int]:
        """Back to a plain descriptor; the posts that had not landed."""
        left = list(self.racing)
        del self.racing
        object.__setattr__(self, "__class__", PiDesc)
        return left

    @staticmethod
    def of(desc: PiDesc) -> "RacingPiDesc":
        """``desc`` itself, armed for races (every holder of it sees the same object)."""
        if not isinstance(desc, RacingPiDesc):
            desc.__class__ = RacingPiDesc
            object.__setattr__(desc, "racing", [])
        assert isinstance(desc, RacingPiDesc)
        return desc


@dataclass
class ApicPage:
    """A 4-KiB APIC register page: ``apic->regs`` for L1, or L2's virtual-APIC page.

    With APICv, L1's ``apic->regs`` *is* vmcs01's virtual-APIC page, so both uses share one
    layout: IRR at 200H, ISR at 100H, TMR at 180H, TPR at 080H, PPR at 0A0H (SDM 29.1.1).
    On L2's page these are VIRR, VISR, VTPR and VPPR.
    """

    irr: int = 0
    isr: int = 0
    tmr: int = 0
    tpr: int = 0
    ppr: int = 0


@dataclass
class Lapic:
    """``struct kvm_lapic`` (``arch/x86/kvm/lapic.h``) for L1's local APIC.

    ``apicv_active`` is true for every scenario (the bug needs APICv); the non-APICv branches of
    the kernel functions are modelled too, for unit tests. With APICv, ``isr_count`` is always 1
    and ``highest_isr_cache`` always -1 (comment in ``apic_find_highest_isr``).
    """

    regs: ApicPage = field(default_factory=ApicPage)
    spurious_vector: int = 0xFF  # APIC_SPIV[7:0]
    apicv_active: bool = True
    hw_enabled: bool = True  # kvm_apic_present(): in-kernel and MSR_IA32_APICBASE enabled
    irr_pending: bool = True
    isr_count: int = 1
    highest_isr_cache: int = -1
    pending_events: set[str] = field(default_factory=set)  # KVM_APIC_INIT / KVM_APIC_SIPI
    sipi_vector: int = 0
    #: EOIs forwarded to the I/O APIC by ``kvm_ioapic_send_eoi``: (vector, level-triggered)
    ioapic_eois: list[tuple[int, bool]] = field(default_factory=list)
    vcpu: "Vcpu" = field(init=False, repr=False, compare=False)  # apic->vcpu, set by Vcpu


@dataclass
class Vmcs:
    """The fields of a hardware VMCS (vmcs01 or vmcs02) that this model reads or writes.

    ``posted_intr_desc`` and ``virtual_apic`` stand for the host-physical addresses KVM writes
    (``POSTED_INTR_DESC_ADDR``, ``VIRTUAL_APIC_PAGE_ADDR``): the objects the CPU accesses.
    """

    name: str
    pin_based: int = 0
    cpu_based: int = 0
    secondary: int = 0
    posted_intr_nv: int = 0
    posted_intr_desc: PiDesc | None = None
    virtual_apic: ApicPage | None = None
    guest_intr_status: int = 0  # RVI = bits 7:0, SVI = bits 15:8
    vm_entry_intr_info: int = 0  # event injection (VM_ENTRY_INTR_INFO_FIELD)

    @property
    def rvi(self) -> int:
        return self.guest_intr_status & 0xFF

    @property
    def svi(self) -> int:
        return self.guest_intr_status >> 8


@dataclass
class Vmcs12:
    """``struct vmcs12`` (``arch/x86/kvm/vmx/vmcs12.h``): the VMCS L1 programs for L2."""

    pin_based_vm_exec_control: int = 0
    cpu_based_vm_exec_control: int = 0
    secondary_vm_exec_control: int = 0
    vm_exit_controls: int = 0
    posted_intr_nv: int = 0  # 16-bit field
    posted_intr_desc_addr: int = 0
    virtual_apic_page_addr: int = 0
    guest_intr_status: int = 0
    guest_rflags_if: bool = False  # only RFLAGS.IF of guest_rflags matters here
    vm_exit_reason: int = 0
    exit_qualification: int = 0
    vm_exit_intr_info: int = 0
    vm_instruction_error: int = 0
    launch_state: int = 0


@dataclass
class NestedVmx:
    """``struct nested_vmx`` (``arch/x86/kvm/vmx/vmx.h``), the fields used here."""

    vmxon: bool = True
    current_vmcs12: Vmcs12 | None = None
    nested_run_pending: bool = False
    mtf_pending: bool = False
    pi_pending: bool = False
    posted_intr_nv: int = POSTED_INTR_NV_INVALID  # u16; -1 reads as 0xffff
    pi_desc: PiDesc | None = None  # mapped nested PID (pi_desc_map)
    virtual_apic_map: ApicPage | None = None  # mapped L2 virtual-APIC page
    preemption_timer_expired: bool = False
    update_vmcs01_hwapic_isr: bool = False  # 04bc93cf49d1: SVI update deferred to vmcs01

    def set_posted_intr_nv(self, value: int) -> None:
        """Store into the u16 field (``= -1`` becomes 0xffff)."""
        self.posted_intr_nv = value & 0xFFFF


class VcpuMode(enum.Enum):
    """``vcpu->mode`` (``include/linux/kvm_host.h``)."""

    # members are singletons: identity hashing, not Enum's hash of the name in Python
    __hash__ = object.__hash__

    OUTSIDE_GUEST_MODE = "outside"
    IN_GUEST_MODE = "in-guest"


class Request(enum.Enum):
    """The ``KVM_REQ_*`` bits that the modelled paths raise."""

    # members are singletons: identity hashing, not Enum's hash of the name in Python
    __hash__ = object.__hash__

    EVENT = "KVM_REQ_EVENT"
    TRIPLE_FAULT = "KVM_REQ_TRIPLE_FAULT"


@dataclass(frozen=True)
class NestedExit:
    """One nested VM-Exit synthesized for L1 (``nested_vmx_vmexit`` arguments)."""

    reason: int
    intr_info: int
    qualification: int


@dataclass
class ExceptionState:
    """``struct kvm_queued_exception`` (the fields the nested priority logic reads)."""

    pending: bool = False
    injected: bool = False
    vector: int = 0
    low_priority_db_trap: bool = False  # vmx_is_low_priority_db_trap()


@dataclass
class GuestMemory:
    """L1's guest-physical memory, as far as KVM maps it for the nested guest.

    Every guest-physical address below ``2**maxphyaddr`` is backed by RAM (a memslot), so
    ``kvm_vcpu_map()`` succeeds for it; descriptors and virtual-APIC pages are created zeroed on
    first use. Aliasing between a descriptor and a virtual-APIC page is not modelled.
    """

    maxphyaddr: int = 46
    pi_descs: dict[int, PiDesc] = field(default_factory=dict)
    apic_pages: dict[int, ApicPage] = field(default_factory=dict)

    def is_backed(self, gpa: int) -> bool:
        return 0 <= gpa < (1 << self.maxphyaddr)

    def map_pi_desc(self, gpa: int) -> PiDesc | None:
        if not self.is_backed(gpa):
            return None
        return self.pi_descs.setdefault(gpa, PiDesc())

    def map_apic_page(self, gpa: int) -> ApicPage | None:
        if not self.is_backed(gpa):
            return None
        return self.apic_pages.setdefault(gpa & ~0xFFF, ApicPage())


@dataclass
class Vcpu:
    """``struct kvm_vcpu`` + ``struct vcpu_vmx`` for the vCPU that runs L1 (and L2 on top).

    Besides KVM's own state it records what the CPU did with the VMCS KVM loaded
    (``l2_delivered``) and the nested VM-Exits and VM-entry failures L1 observed, so that the
    outcome of each scenario event can be read off it.
    """

    version: KernelVersion
    apic: Lapic = field(default_factory=Lapic)
    memory: GuestMemory = field(default_factory=GuestMemory)
    nested: NestedVmx = field(default_factory=NestedVmx)
    vmcs01: Vmcs = field(default_factory=lambda: Vmcs("vmcs01"))
    vmcs02: Vmcs = field(default_factory=lambda: Vmcs("vmcs02"))
    loaded_vmcs: Vmcs = field(init=False)  # vmx->loaded_vmcs: vmcs01 until a VM-Enter
    pi_desc: PiDesc = field(default_factory=PiDesc)  # vmx->pi_desc: KVM's PID for L1
    guest_mode: bool = False  # HF_GUEST_MASK: is_guest_mode()
    mode: VcpuMode = VcpuMode.IN_GUEST_MODE
    requests: set[Request] = field(default_factory=set)
    mp_state: str = "RUNNABLE"  # KVM_MP_STATE_*
    # vcpu->arch event state
    exception: ExceptionState = field(default_factory=ExceptionState)
    exception_vmexit: ExceptionState = field(default_factory=ExceptionState)
    nmi_pending: int = 0
    nmi_injected: bool = False
    nmi_masked: bool = False
    smi_pending: bool = False
    is_smm: bool = False
    interrupt_injected: bool = False  # vcpu->arch.interrupt.injected
    interrupt_nr: int = 0
    extint_vector: int = -1  # PIC output / split-irqchip pending_external_vector; -1 = none
    # the running guest's interruptibility (vmcs02 while L2 runs)
    l2_rflags_if: bool = False
    l2_sti_blocking: bool = False
    l2_mov_ss_blocking: bool = False
    l1_rflags_if: bool = False  # L1 runs with interrupts disabled between its VM entries
    # the other agents' timing (not KVM state): stay in L0 after the next exit from the guest,
    # so that an interrupt can arrive before KVM re-enters (environment.interrupt_in_l0)
    hold_in_l0: bool = False
    held_in_l0: bool = False
    # what was observed
    l2_delivered: list[int] = field(default_factory=list)
    nested_exits: list[NestedExit] = field(default_factory=list)
    vmentry_errors: list[int] = field(default_factory=list)
    userspace_exit: str | None = None  # set when vcpu_run returns to userspace
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.loaded_vmcs = self.vmcs01
        self.apic.vcpu = self

    def trace(self, message: str) -> None:
        """Record a step for the human-readable explanation of an outcome."""
        self.log.append(message)

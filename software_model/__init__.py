"""A pure-Python model of KVM's nested-VMX interrupt logic, pinned to kernel commits.

Modules mirror kernel files: :mod:`.lapic` (lapic.c), :mod:`.irq` (irq.c), :mod:`.vmx` (vmx.c),
:mod:`.nested` (vmx/nested.c, nested.h), :mod:`.x86` (x86.c), :mod:`.posted_intr`
(posted_intr.h). :mod:`.cpu` is what the processor does with the VMCS KVM loads, and
:mod:`.environment` the agents around KVM that scenario events drive. Imports neither amaranth
nor cocotb.
"""

from .state import Vcpu
from .version import KernelVersion

__all__ = ["KernelVersion", "Vcpu"]

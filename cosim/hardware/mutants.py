"""Mutants of the design itself, for showing that a proof or a test can fail: each one a
single-statement change of one method of an ``rtl/`` component, compiled into a subclass (the
design in ``rtl/`` is never touched; the subclass shares the module's enums and layouts, so
properties written against the original read it unchanged).

The property modules also take reading mutants (a property observing the wrong signal); a
design mutant is stronger evidence: the hardware is wrong and the unchanged property says so.
"""

import importlib
import inspect
import textwrap
from dataclasses import dataclass

__all__ = ["DESIGN_MUTANTS", "DesignMutant", "mutant_class"]


@dataclass(frozen=True)
class DesignMutant:
    """In ``module``.``component``.``method``, ``original`` (written there once) becomes
    ``mutation``."""

    module: str
    component: str
    method: str
    original: str
    mutation: str
    breaks: str


DESIGN_MUTANTS: dict[str, DesignMutant] = {
    "nv_compared_without_the_ack": DesignMutant(
        "rtl.top", "InterruptPath", "elaborate",
        "nv_match.eq(ppi & (vector == self.posted_intr_nv[0:8]))",
        "nv_match.eq(ppi & (lapic.irr[0:8] == self.posted_intr_nv[0:8]))",
        "step 2 compares NV with the low byte of the IRR instead of the vector the INTA "
        "returned (PI-2, PI-3)"),
    "external_interrupt_before_virtual": DesignMutant(
        "rtl.top", "InterruptPath", "elaborate",
        "take.eq((self.state == PathState.NON_ROOT) & lapic.intr & ~vapic.deliverable)",
        "take.eq((self.state == PathState.NON_ROOT) & lapic.intr)",
        "an external interrupt is taken (a VM exit, or posted-interrupt processing) while a "
        "virtual interrupt is deliverable, which must go first (VID-12)"),
    "pir_read_before_on_is_cleared": DesignMutant(
        "rtl.posted_interrupt", "PostedInterruptUnit", "elaborate",
        "self.state.eq(PiState.CLEAR_ON),",
        "self.state.eq(PiState.EOI),",
        "a run skips step 3: PIR is read and cleared while ON is still 1 (PI-6, PI-10)"),
    "step_3_clears_sn_too": DesignMutant(
        "rtl.posted_interrupt", "PostedInterruptUnit", "elaborate",
        "self.mem.data.eq(CLEAR_ON_MASK),",
        "self.mem.data.eq(CLEAR_ON_MASK & ~2),",
        "step 3's AND clears descriptor bit 257 (SN) along with bit 256 (ON) (PI-1)"),
    "eoi_exit_checks_the_new_svi": DesignMutant(
        "rtl.virtual_interrupt", "VirtualInterrupt", "elaborate",
        "with m.If(self.eoi_exit_bitmap.bit_select(svi, 1)):",
        "with m.If(self.eoi_exit_bitmap.bit_select(new_svi, 1)):",
        "EOI virtualization tests the EOI-exit bitmap at the new SVI instead of the vector "
        "whose EOI it virtualizes (VID-8)"),
    "sender_stops_when_on_is_clear": DesignMutant(
        "rtl.ipi_virtualization", "IpiVirtualization", "elaborate",
        "with m.If(read_notify.on | read_notify.sn):",
        "with m.If(~read_notify.on | read_notify.sn):",
        "the sender leaves NotifyInfo alone when ON is 0 (and updates it when ON is already "
        "1): its posted vector is stranded in PIR with nobody notified (IPIV-6, IPIV-7)"),
}


def mutant_class(name: str) -> type:
    """A subclass of the mutated component whose method has mutant ``name`` applied."""
    mutant = DESIGN_MUTANTS[name]
    module = importlib.import_module(mutant.module)
    component = getattr(module, mutant.component)
    source = textwrap.dedent(inspect.getsource(getattr(component, mutant.method)))
    if source.count(mutant.original) != 1:
        raise ValueError(f"design mutant {name}: {mutant.original!r} is not written exactly "
                         f"once in {mutant.module}.{mutant.component}.{mutant.method}; update "
                         "cosim/hardware/mutants.py")
    namespace: dict = {}
    code = compile(source.replace(mutant.original, mutant.mutation),
                   f"{inspect.getsourcefile(component)} (mutant {name})", "exec")
    exec(code, vars(module), namespace)  # the repository's own method, one statement changed
    return type(f"{mutant.component}_{name}", (component,),
                {mutant.method: namespace[mutant.method], "__module__": mutant.module})

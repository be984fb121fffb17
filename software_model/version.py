"""The kernel versions the model is pinned to.

The model is one code base; functions that differ between versions test a :class:`Change` at
the exact statement where the kernel source differs. Each change is declared once, as data next
to the function it changes, with the commit that made it.

The version is read nowhere else (``tests/test_software_model_imports.py`` checks the source):
so two versions that answer every change a run asked about alike run the same statements on
the same values, and :func:`consulted` records which changes a run asked about.
"""

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["Change", "KernelVersion", "consulted"]


class KernelVersion(enum.Enum):
    """A pinned state of ``arch/x86/kvm`` (torvalds/linux and kvm-x86/linux commits).

    ``PRE_PATCH``
        8c23670f2b00 ("KVM: nVMX: Suppress external interrupt VM-Exit injection if there's no
        IRQ", v2 3/7): the parent of the fix. An L1 interrupt whose vector is L2's notification
        vector becomes a nested external-interrupt VM-Exit.
    ``POST_PATCH``
        6e0b456547f4 ("KVM: nVMX: Detect nested posted interrupt NV at nested VM-Exit
        injection", v2 4/7): the fix. ``vmx_check_nested_events()`` pends a nested posted
        interrupt instead.
    ``NOV_2024``
        ce5cdfb49813 ("KVM: nVMX: Honor event priority when emulating PI delivery during
        VM-Enter", end of the Nov-2024 series, which also contains 6/7 1ed0f119c5ff): no VM-Enter
        notification-vector check, the NV branch blocked only by re-injection, ``posted_intr_nv``
        invalidated when vmcs12 disables posted interrupts, vPPR refreshed after VM-Enter.
    """

    # members are singletons: identity hashing, not Enum's hash of the name in Python
    __hash__ = object.__hash__

    PRE_PATCH = "pre-patch"
    POST_PATCH = "post-patch"
    NOV_2024 = "nov-2024"

    @property
    def commit(self) -> str:
        return _COMMITS[self]

    def __ge__(self, other: "KernelVersion") -> bool:
        return _ORDER[self] >= _ORDER[other]

    @classmethod
    def parse(cls, text: str) -> "KernelVersion":
        for version in cls:
            if version.value == text:
                return version
        allowed = ", ".join(v.value for v in cls)
        raise ValueError(f"unknown KVM version {text!r}; allowed: {allowed}")


_COMMITS = {
    KernelVersion.PRE_PATCH: "8c23670f2b0004edb8f7135e314114f0c3452085",
    KernelVersion.POST_PATCH: "6e0b456547f41bafdad2dc3a72adc7f69326ca4c",
    KernelVersion.NOV_2024: "ce5cdfb49813",
}


@dataclass(frozen=True)
class Change:
    """A kernel commit that changed a modelled function: in effect from version ``first`` on
    (the versions are ordered: pre-patch, post-patch, nov-2024)."""

    commit: str
    title: str
    first: KernelVersion

    def __call__(self, version: KernelVersion) -> bool:
        """Whether ``version`` has this change."""
        if _consulted is not None:
            _consulted.append(self)
        return version >= self.first


#: The changes asked about since :func:`consulted` started recording (None: not recording).
_consulted: list[Change] | None = None


@contextmanager
def consulted() -> Iterator[list[Change]]:
    """Record every :class:`Change` asked about inside the ``with`` block, in order (an
    enclosing recording gets them too). The model runs in one thread; so does this."""
    global _consulted
    outer = _consulted
    record: list[Change] = []
    _consulted = record
    try:
        yield record
    finally:
        _consulted = outer
        if outer is not None:
            outer.extend(record)


#: The versions in time order (``>=`` runs in every versioned model statement: a lookup).
_ORDER = {version: i for i, version in enumerate(KernelVersion)}

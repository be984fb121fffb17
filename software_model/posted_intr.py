"""Posted-interrupt descriptor helpers.

``arch/x86/include/asm/posted_intr.h`` (``pi_test_and_set_on`` and friends, atomic bitops on
``control`` / ``pir``) and ``arch/x86/kvm/vmx/posted_intr.h`` (``pi_find_highest_vector``).
"""

from .state import PiDesc

__all__ = [
    "pi_clear_on",
    "pi_clear_sn",
    "pi_find_highest_vector",
    "pi_is_pir_empty",
    "pi_set_on",
    "pi_set_sn",
    "pi_test_and_clear_on",
    "pi_test_and_clear_sn",
    "pi_test_and_set_on",
    "pi_test_and_set_pir",
    "pi_test_on",
    "pi_test_sn",
]


def pi_test_and_set_on(pi_desc: PiDesc) -> bool:
    old = pi_desc.on
    pi_desc.on = True
    return old


def pi_test_and_clear_on(pi_desc: PiDesc) -> bool:
    old = pi_desc.on
    pi_desc.on = False
    return old


def pi_test_and_clear_sn(pi_desc: PiDesc) -> bool:
    old = pi_desc.sn
    pi_desc.sn = False
    return old


def pi_test_and_set_pir(vector: int, pi_desc: PiDesc) -> bool:
    old = bool(pi_desc.pir >> vector & 1)
    pi_desc.pir |= 1 << vector
    return old


def pi_is_pir_empty(pi_desc: PiDesc) -> bool:
    return pi_desc.pir == 0


def pi_set_sn(pi_desc: PiDesc) -> None:
    pi_desc.sn = True


def pi_set_on(pi_desc: PiDesc) -> None:
    pi_desc.on = True


def pi_clear_on(pi_desc: PiDesc) -> None:
    pi_desc.on = False


def pi_clear_sn(pi_desc: PiDesc) -> None:
    pi_desc.sn = False


def pi_test_on(pi_desc: PiDesc) -> bool:
    return pi_desc.on


def pi_test_sn(pi_desc: PiDesc) -> bool:
    return pi_desc.sn


def pi_find_highest_vector(pi_desc: PiDesc) -> int:
    """``vec = find_last_bit(pir, 256); return vec < 256 ? vec : -1``."""
    return pi_desc.pir.bit_length() - 1

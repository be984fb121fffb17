"""Signatures of the ports that carry a strobe with its payload, shared by the components so
that the top level wires them with ``connect()`` and the testbench and waveforms name their
members the same way (``delivered__valid``, ``delivered__vector``).

Never enable postponed evaluation of annotations (PEP 563) here: it breaks ``Signature``
members.
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import Out

__all__ = ["MergeSignature", "RegisterWriteSignature", "VectorStrobeSignature"]


class VectorStrobeSignature(wiring.Signature):
    """An event with a vector, from the side that produces it: ``valid`` is high for one
    cycle and ``vector`` holds the vector in that cycle (a delivery through the guest IDT, an
    EOI message to the I/O APICs)."""

    def __init__(self):
        super().__init__({"valid": Out(1), "vector": Out(8)})


class RegisterWriteSignature(wiring.Signature):
    """A register write, from the writer's side: ``valid`` is high for one cycle and
    ``value`` holds what is written (a TPR or virtual-TPR write)."""

    def __init__(self, width: int = 8):
        super().__init__({"valid": Out(1), "value": Out(width)})


class MergeSignature(wiring.Signature):
    """Posted-interrupt steps 5-7, from the posted-interrupt unit to the virtual APIC.

    Members
    -------
    valid : ``Out(1)``; bits : ``Out(256)``
        Step 5: VIRR |= ``bits`` at this edge.
    rvi_valid : ``Out(1)``; rvi_vector : ``Out(8)``
        Step 6: with ``rvi_valid``, RVI := max(RVI, ``rvi_vector``).
    evaluate : ``Out(1)``
        Step 7: evaluate pending virtual interrupts after this edge's merge.
    """

    def __init__(self):
        super().__init__({"valid": Out(1), "bits": Out(256), "rvi_valid": Out(1),
                          "rvi_vector": Out(8), "evaluate": Out(1)})

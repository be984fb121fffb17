"""What the property modules (``rtl/*_properties.py``) share: their free inputs.

Never enable postponed evaluation of annotations (PEP 563) here.
"""

from amaranth.hdl import Value
from amaranth.lib import wiring

__all__ = ["free_inputs"]


def free_inputs(component: wiring.Component) -> list[Value]:
    """Every input port of ``component``: as ports of a proof's top level they are free (the
    formal tools let an undriven top-level input take any value in every cycle)."""
    return [Value.cast(value) for _path, member, value in component.signature.flatten(component)
            if member.flow is wiring.In]

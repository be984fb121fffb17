"""The Amaranth hardware model (issue 3): local APIC, posted-interrupt processing,
virtual-interrupt delivery, VM exit/entry and IPI virtualization."""

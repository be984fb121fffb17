"""Campaigns: many scenarios made in memory, run on both sides and judged in bulk.

``sweep``: the exhaustive decision sweep (``pi-cosim sweep``, ``pi-cosim merge``). It sits
above the hardware, the reference and the judge (it runs all three) and below the command
line.
"""

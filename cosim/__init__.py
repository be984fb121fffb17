"""Cosimulation of the hardware model (``rtl``) against the KVM model (``software_model``).

Sub-packages by role, each importing only from the layers below it (``tests/test_layers.py``
fails on an arrow that runs back up)::

    cli.py, report/        the command line and what it prints (tables, verdict lines)
        |   campaign/      many scenarios made in memory, run and judged in bulk (the sweep)
        |
    judge/                 the scoreboard and the findings (deviations, known KVM bugs)
    hardware/  reference/  the two sides: the RTL under amaranth.sim or cocotb (testbench,
        |          |       memory model, backends, waveforms), and the KVM model adapter
        |          |
    scenario/              the format: scenario files and their events, the outcome record,
                           the drain policy, generators (kvm-unit-tests)

``judge``, ``hardware`` and ``reference`` do not import each other. Outside ``cosim``,
``rtl`` and ``software_model`` are imported by the side that simulates them; nothing but tests
and benchmarks imports ``cosim``.
"""

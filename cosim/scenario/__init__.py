"""The scenario format: files and events (``format``), the outcome record both sides report
(``outcome``), the drain policy a real L1 and L2 follow (``drain``), and scenario generators
(``kut``: kvm-unit-tests). The lowest layer: imports nothing else from ``cosim``."""

"""What the command line prints: side-by-side tables, the marks on differing fields, verdict
and summary lines. Imports ``cosim.judge`` and ``cosim.scenario``."""

"""The judge: the scoreboard that compares the two sides after every event and at rest, and
the findings it classifies differences with (deviations and known KVM bugs). Imports
``cosim.scenario``."""

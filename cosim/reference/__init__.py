"""The software side: scenarios through the KVM model (``software_model``) at a pinned kernel
version. Imports ``cosim.scenario`` and ``software_model``."""

"""The hardware side: the testbench around ``rtl.top.InterruptPath`` (driver, monitor,
memory responder), the backends that run it (amaranth.sim, cocotb with Icarus or Verilator)
and the waveform dumps. Imports ``cosim.scenario`` and ``rtl``."""

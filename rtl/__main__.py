"""``python -m rtl [-o FILE]``: write the hardware model as Verilog (stdout by default).

The output is deterministic and holds no absolute paths; the top module is ``pi_cosim_top``.
The submodules keep their names (``pi_cosim_top.lapic``, ``.pi``, ``.vapic``), so waveforms
show the hierarchy.
"""

import argparse
import sys

# Private API, pinned to amaranth 0.5.x (pyproject.toml: >=0.5.10,<0.6): amaranth.back.verilog
# .convert has no way to choose Yosys' proc pass, and with its `proc -nomux` (amaranth-lang/
# amaranth#479) combinational logic stays in `always @*` blocks that Icarus 11 does not run at
# time 0 (the problem of amaranth-lang/amaranth#418). find_yosys is how convert finds the
# built-in Yosys; re-check it when moving to 0.6.
from amaranth._toolchain.yosys import find_yosys
from amaranth.back import rtlil

from .top import InterruptPath

TOP_NAME = "pi_cosim_top"


def generate() -> str:
    """The Verilog text of :class:`rtl.top.InterruptPath` as module ``pi_cosim_top``.

    This is ``amaranth.back.verilog.convert`` with one change: Yosys' full ``proc`` pass
    instead of ``proc -nomux``. ``-nomux`` keeps combinational processes as ``always @*``
    blocks, and Icarus Verilog 11 does not run those at time 0: an output that depends only on
    a register that keeps its reset value (``mem__valid`` after reset) stays X until the
    register changes. With full ``proc`` every combinational signal is a continuous ``assign``.
    """
    text = rtlil.convert(InterruptPath(), name=TOP_NAME, emit_src=False)
    yosys = find_yosys(lambda version: version >= (0, 40))
    script = "\n".join([f"read_rtlil <<rtlil\n{text}\nrtlil", "proc -norom", "memory_collect",
                        "write_verilog"])
    return yosys.run(["-q", "-"], script, ignore_warnings=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtl", description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    args = parser.parse_args(argv)
    text = generate()
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

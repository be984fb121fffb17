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


def generate(design=None, name: str = TOP_NAME, *, memory_init: bool = True,
             clean: bool = False) -> str:
    """The Verilog text of ``design`` (default: :class:`rtl.top.InterruptPath` as module
    ``pi_cosim_top``).

    This is ``amaranth.back.verilog.convert`` with two changes: Yosys' full ``proc`` pass
    instead of ``proc -nomux``, and optionally no memory initialization. ``-nomux`` keeps
    combinational processes as ``always @*`` blocks, and Icarus Verilog 11 does not run those
    at time 0: an output that depends only on a register that keeps its reset value
    (``mem__valid`` after reset) stays X until the register changes. With full ``proc`` every
    combinational signal is a continuous ``assign``. ``memory_init=False`` drops the
    ``initial`` blocks of memories whose every word is written before it is read (the
    cosimulation harness's: megabytes of zeros otherwise). ``clean=True`` removes the logic
    that ``proc`` leaves unused (Yosys' ``opt_clean``; a memory only the testbench reads
    needs the ``keep`` attribute): Icarus evaluates it anyway, and the
    harness, whose unused parts are wide multiplexers written as Verilog functions, runs ten
    times slower under Icarus with it.
    """
    text = rtlil.convert(InterruptPath() if design is None else design, name=name,
                         emit_src=False)
    yosys = find_yosys(lambda version: version >= (0, 40))
    script = "\n".join([f"read_rtlil <<rtlil\n{text}\nrtlil",
                        *([] if memory_init else ["delete t:$meminit_v2"]),
                        "proc -norom", "memory_collect", *(["opt_clean"] if clean else []),
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

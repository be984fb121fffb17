"""``python -m rtl [-o FILE]``: write the hardware model as Verilog (stdout by default).

The output is deterministic and holds no absolute paths; the top module is ``pi_cosim_top``.
"""

import argparse
import sys

from amaranth.back import verilog

from .top import InterruptPath

TOP_NAME = "pi_cosim_top"


def generate() -> str:
    """The Verilog text of :class:`rtl.top.InterruptPath` as module ``pi_cosim_top``."""
    text = verilog.convert(InterruptPath(), name=TOP_NAME, emit_src=False)
    return text


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

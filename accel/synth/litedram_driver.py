"""Runs ``litedram.gen`` inside the interpreter that has LiteDRAM, LiteX and Migen installed.

Started by :mod:`accel.synth.litedram` as ``PYTHON litedram_driver.py [--timing-checker]
CONFIG --output-dir DIR --name NAME [--sim]``; it must not import ``accel`` (that interpreter
need not have it). Two adjustments to the stock generator, both for the ``--sim`` variant:

- LiteX's simulation builder writes Makefile variables for its own Verilator harness that point
  at ``pythondata-misc-tapcfg`` (a TAP network library), which is not on PyPI. We build our own
  harness, so a stub with an empty ``data_location`` stands in.
- ``--timing-checker`` builds the SDRAM model with LiteDRAM's DFI timing checker
  (``verbosity=SDRAM_VERBOSE_STD``), which ``litedram.gen`` leaves out: it ``$display``\\s
  "<rule> violation on bank N" for every violated tRP/tRCD/tRAS/tRFC/tCCD/tRC/tWR/tWTR.
"""

import os
import sys
import types

# This script's directory holds accel's litedram.py, which would shadow the litedram package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


def main(argv):
    timing_checker = "--timing-checker" in argv
    argv = [arg for arg in argv if arg != "--timing-checker"]
    if "pythondata_misc_tapcfg" not in sys.modules:
        try:
            import pythondata_misc_tapcfg  # noqa: F401
        except ImportError:
            stub = types.ModuleType("pythondata_misc_tapcfg")
            stub.data_location = ""
            sys.modules["pythondata_misc_tapcfg"] = stub
    import litedram.gen as gen

    if timing_checker:
        from litedram.phy.model import SDRAM_VERBOSE_STD

        model = gen.SDRAMPHYModel

        def checked_model(*args, **kwargs):
            kwargs.setdefault("verbosity", SDRAM_VERBOSE_STD)
            return model(*args, **kwargs)

        gen.SDRAMPHYModel = checked_model
    sys.argv = ["litedram.gen", *argv]
    gen.main()


if __name__ == "__main__":
    main(sys.argv[1:])

"""FPGA targets: the board registry, the fit check and bitstream builds (``accel build``).

Nothing here is imported by the rest of :mod:`accel` except the CLI: dependencies run
spec -> quant -> plan -> hw -> synth.
"""

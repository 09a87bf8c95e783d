"""accel: a fixed-point CNN accelerator generator.

Data flows one way: layer spec -> quantized golden model -> hardware plan -> Amaranth -> Verilog
-> simulation / synthesis.  ``accel.spec`` is the first stage: what the network computes.
"""

__version__ = "0.1.0"

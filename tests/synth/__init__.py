"""Synthesis tests (marked ``synth``): the designs map to the FPGA primitives we expect."""

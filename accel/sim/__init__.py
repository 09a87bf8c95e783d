"""Simulation: a self-checking harness around the accelerator and its cocotb runner."""

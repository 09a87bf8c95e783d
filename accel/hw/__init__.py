"""Amaranth hardware components of the accelerator."""

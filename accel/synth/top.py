"""The board top that ``accel build`` synthesizes: a self-driving test top.

::

    LFSR -> accelerator.i          accelerator.o -> rotating XOR checksum -> parity -> LED

A 16-bit Galois LFSR supplies one input value per cycle (``last`` on every image's final
value, so images follow each other with no gap); the output is always ready and every logit bit
is folded into a checksum register whose parity drives an LED. Every input and output bit
therefore reaches a pin, so synthesis cannot remove any of the accelerator, and the top needs
no I/O beyond the clock, the reset button and one LED. It measures what the accelerator costs
and how fast it runs; :mod:`.uart_top` is the top that talks to a host.
"""

from __future__ import annotations

from amaranth import Cat, Elaboratable, Module, Mux, Signal
from amaranth.lib import io

from ..hw.accelerator import Accelerator


class SelfTestTop(Elaboratable):
    """``accelerator`` fed by an LFSR, its logits XOR-reduced to an LED.

    Parameters
    ----------
    accelerator : Accelerator
    image_values : int
        Input values per image (``last`` after this many).
    """

    def __init__(self, *, accelerator: Accelerator, image_values: int):
        if image_values < 1:
            raise ValueError(f"image_values must be a positive integer, not {image_values!r}")
        self.accelerator = accelerator
        self.image_values = image_values

    def elaborate(self, platform):
        m = Module()
        m.submodules.accel = acc = self.accelerator
        lfsr = Signal(16, init=0xACE1)
        count = Signal(range(self.image_values))
        last = count == self.image_values - 1
        take = acc.i.valid & acc.i.ready
        m.d.comb += [acc.i.valid.eq(1), acc.i.payload.data[0].eq(lfsr[:acc.input_bits]),
                     acc.i.payload.last.eq(last)]
        with m.If(take):
            # taps 16, 14, 13, 11 (maximal length)
            m.d.sync += lfsr.eq(Cat(lfsr[1:], 0) ^ (0xB400 * lfsr[0]))
            m.d.sync += count.eq(Mux(last, 0, count + 1))
        out = Cat(acc.o.payload.data[0], acc.o.payload.last)
        check = Signal(len(out))
        m.d.comb += acc.o.ready.eq(1)
        with m.If(acc.o.valid):
            m.d.sync += check.eq(Cat(check[-1], check[:-1]) ^ out)
        led = _request_led(platform)
        if led is not None:
            m.submodules.led = buffer = io.Buffer("o", led)
            m.d.comb += buffer.o.eq(check.xor())
        return m


def _request_led(platform):
    """The port of the board's first LED (an RGB LED's red one), or None in simulation."""
    if platform is None:
        return None
    names = {name for name, _ in platform.resources}
    if "led" in names:
        return platform.request("led", 0, dir="-")
    if "rgb_led" in names:
        return platform.request("rgb_led", 0, dir="-").r
    raise ValueError(f"platform {type(platform).__name__} has no LED to drive")

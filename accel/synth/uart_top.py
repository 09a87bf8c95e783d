"""The UART board top: images in, logits and the predicted class out, over one serial link.

Protocol (8N1, ``baud`` bits/s; every frame starts with a sync byte so a host can resync)::

    host -> board:  0xA5, then the image: h * w * c bytes, int8 two's complement (the
                    quantized input values in raster order, channels innermost)
    board -> host:  0x5A, then the U logits as int8 bytes, then the argmax (one unsigned byte,
                    the first index of the largest logit)

Bytes before a sync byte are ignored. Inside an image a sync byte is just a pixel value, so a
request cut short leaves the top waiting for the rest of that image; the host realigns it with
one image of ``0x00`` filler and drops the answer that may produce
(:func:`accel.host.link.resync`, which ``accel run`` does first). The host side of the
protocol is :mod:`accel.host.link`, which also holds the sync byte values.

A top built with a ``status`` byte (e.g. the weight memory's, :mod:`.sdram_weights`) also
answers a status request between images::

    host -> board:  0xA7
    board -> host:  0x5C, then the status byte (its value when the answer starts)

The request is recognised where a sync byte would be (not inside an image); the answer goes
out after any answer being sent, never inside one.

Received image bytes are queued in a FIFO that holds a whole image (the accelerator may pause
its input for longer than one UART byte); a byte dropped because the queue was full lights the
error LED (a host that waits for each answer before sending the next image never causes it).
The first LED toggles on every answer. Reset (the ``sync`` domain's) clears both LEDs, drops a
partial request and cuts an answer short; the line is idle (high) while it is held.
"""

from __future__ import annotations

import math

from amaranth import Cat, Elaboratable, Module, Mux, Signal, Value, signed
from amaranth.lib import fifo, io

from ..host.link import LINK_BITS, SYNC_IN, SYNC_OUT, SYNC_STATUS, SYNC_STATUS_OUT
from ..hw.accelerator import Accelerator
from .uart import UartRx, UartTx

__all__ = ["SYNC_IN", "SYNC_OUT", "SYNC_STATUS", "SYNC_STATUS_OUT", "UartTop"]


class UartTop(Elaboratable):
    """``accelerator`` behind a UART (see module doc).

    Parameters
    ----------
    accelerator : Accelerator
    image_values : int
        Bytes per image.
    logits : int
        Output values per image.
    divisor : int
        Clock cycles per UART bit.
    status : Value or None
        An 8-bit status to answer status requests with (see module doc); None: no status.

    Members
    -------
    rx, tx : Signal
        The serial pins (for simulation; on a board they are the ``uart`` resource).
    answers : Signal
        Toggles on every answer sent; ``error``: a byte was dropped.
    """

    def __init__(self, *, accelerator: Accelerator, image_values: int, logits: int,
                 divisor: int, status=None):
        for name, value in (("image_values", image_values), ("logits", logits)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if logits > 256:
            raise ValueError(f"logits must be at most 256 (the argmax is one byte), "
                             f"not {logits!r}")
        plan = accelerator.plan
        if image_values != math.prod(plan.input_shape):
            raise ValueError(f"image_values must be the model's input size "
                             f"{math.prod(plan.input_shape)}, not {image_values!r}")
        shape = plan.output_shape
        if logits != math.prod(shape):
            raise ValueError(f"logits must be the number of values {plan.output_layer} "
                             f"outputs, {math.prod(shape)}, not {logits!r}")
        if accelerator.input_bits > LINK_BITS or accelerator.output_bits > LINK_BITS:
            raise ValueError(f"accelerator must take and give values of at most {LINK_BITS} "
                             f"bits (one byte each on the link), not int{accelerator.input_bits}"
                             f" in and int{accelerator.output_bits} out")
        if status is not None and len(Value.cast(status)) != 8:
            raise ValueError(f"status must be an 8-bit value, not {status!r}")
        self.status = status
        self.accelerator = accelerator
        self.image_values, self.logits = image_values, logits
        self.uart_rx = UartRx(divisor=divisor)
        self.uart_tx = UartTx(divisor=divisor)
        self.rx = Signal(init=1)
        self.tx = Signal(init=1)
        self.answers = Signal()
        self.error = Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.accel = acc = self.accelerator
        m.submodules.uart_rx = rx = self.uart_rx
        m.submodules.uart_tx = tx = self.uart_tx
        if platform is not None:
            uart = platform.request("uart", 0, dir="-")
            m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
            m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
            m.d.comb += [rx.rx.eq(rx_buf.i), tx_buf.o.eq(tx.tx)]
            for index, signal in enumerate((self.answers, self.error)):
                m.submodules[f"led{index}"] = led = io.Buffer(
                    "o", platform.request("led", index, dir="-"))
                m.d.comb += led.o.eq(signal)
        else:
            m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]

        # Input: wait for the sync byte, then queue image_values bytes for the accelerator.
        # The queue holds a whole image: the accelerator may pause its input for longer than
        # a UART byte while it works, and the receiver cannot be paused.
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=9, depth=self.image_values)
        status_asked = Signal()         # a status request waits for its answer
        status_byte = Signal(8)
        count = Signal(range(self.image_values))
        last = count == self.image_values - 1
        m.d.comb += [acc.i.valid.eq(queue.r_rdy), queue.r_en.eq(acc.i.ready),
                     acc.i.payload.data[0].eq(queue.r_data[:8]),
                     acc.i.payload.last.eq(queue.r_data[8])]
        with m.FSM():
            with m.State("sync"):
                m.d.comb += rx.o.ready.eq(1)
                with m.If(rx.o.valid & (rx.o.payload == SYNC_IN)):
                    m.d.sync += count.eq(0)
                    m.next = "image"
                if self.status is not None:
                    with m.If(rx.o.valid & (rx.o.payload == SYNC_STATUS)):
                        m.d.sync += status_asked.eq(1)
            with m.State("image"):
                m.d.comb += [queue.w_en.eq(rx.o.valid), rx.o.ready.eq(queue.w_rdy),
                             queue.w_data.eq(Cat(rx.o.payload, last))]
                with m.If(queue.w_en & queue.w_rdy):
                    m.d.sync += count.eq(count + 1)
                    with m.If(last):
                        m.next = "sync"
        m.d.sync += self.error.eq(self.error | rx.overrun)

        # Output: sync byte, the logits as they come, then the argmax.
        best = Signal(signed(acc.output_bits))
        best_index = Signal(range(self.logits))
        index = Signal(range(self.logits))
        value = acc.o.payload.data[0]
        with m.FSM():
            with m.State("head"):
                with m.If(status_asked):
                    m.d.comb += [tx.i.payload.eq(SYNC_STATUS_OUT), tx.i.valid.eq(1)]
                    with m.If(tx.i.ready):
                        if self.status is not None:
                            m.d.sync += status_byte.eq(self.status)
                        m.next = "status"
                with m.Else():
                    m.d.comb += [tx.i.payload.eq(SYNC_OUT), tx.i.valid.eq(acc.o.valid)]
                    with m.If(tx.i.valid & tx.i.ready):
                        m.d.sync += index.eq(0)
                        m.next = "logits"
            with m.State("status"):
                m.d.comb += [tx.i.payload.eq(status_byte), tx.i.valid.eq(1)]
                with m.If(tx.i.ready):
                    m.d.sync += status_asked.eq(0)
                    m.next = "head"
            with m.State("logits"):
                m.d.comb += [tx.i.payload.eq(value), tx.i.valid.eq(acc.o.valid),
                             acc.o.ready.eq(tx.i.ready)]
                with m.If(acc.o.valid & acc.o.ready):
                    better = (index == 0) | (value > best)
                    m.d.sync += [best.eq(Mux(better, value, best)),
                                 best_index.eq(Mux(better, index, best_index)),
                                 index.eq(index + 1)]
                    with m.If(acc.o.payload.last):
                        m.next = "argmax"
            with m.State("argmax"):
                m.d.comb += [tx.i.payload.eq(best_index), tx.i.valid.eq(1)]
                with m.If(tx.i.ready):
                    m.d.sync += self.answers.eq(~self.answers)
                    m.next = "head"
        return m

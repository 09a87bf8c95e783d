"""Several streamed stages' weight ports on one memory.

::

    ports[0].mem_cmd --+                    +--> mem.mem_cmd  (registered, round robin)
    ports[1].mem_cmd --+--> arbiter --------+
    ...                      | owner queue
    ports[k].mem_rsp <-------+-------------- mem.mem_rsp     (to the head request's owner)

A request is taken from the next port with one waiting after the last one served, held in a
register until the memory takes it, and its port and length go into the owner queue; the
memory's words go to the port at the queue's head, and its entry leaves with the last word.
The memory answers in request order (as every weight memory here does), so the words of each
port arrive in the order it asked for them. The response path is combinational: a word costs
no cycle, and a port's ``mem_rsp.ready`` (a :class:`~accel.hw.burst_reader.BurstReader` keeps
it high for words it asked for) reaches the memory directly.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from .weight_stream import weight_port_signature

__all__ = ["WeightArbiter", "shared_weight_port"]


class WeightArbiter(wiring.Component):
    """Round-robin sharing of one burst memory between ``ports`` weight ports (see module doc).

    Parameters
    ----------
    ports : int
        Weight ports (at least 2).
    addr_width, max_burst, word_width : int
        The ports' geometry (:func:`~accel.hw.weight_stream.weight_port_signature`).
    queue_depth : int
        Requests tracked at once (forwarded, last word not yet back); the plan's
        :attr:`~accel.plan.weight_memory.WeightMemoryPlan.queue_depth`.

    Members
    -------
    ports : In(weight_port_signature(...)).array(ports)
        The stages' ports: ``mem_cmd`` in, ``mem_rsp`` out.
    mem : Out(weight_port_signature(...))
        The memory's port: ``mem_cmd`` out, ``mem_rsp`` in.
    """

    def __init__(self, *, ports: int, addr_width: int, max_burst: int, word_width: int,
                 queue_depth: int):
        for name, value in (("addr_width", addr_width), ("max_burst", max_burst),
                            ("word_width", word_width), ("queue_depth", queue_depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(ports, int) or isinstance(ports, bool) or ports < 2:
            raise ValueError(f"ports must be an integer of at least 2, not {ports!r}")
        self.n, self.queue_depth = ports, queue_depth
        self.max_burst = max_burst
        signature = weight_port_signature(addr_width=addr_width, max_burst=max_burst,
                                          word_width=word_width)
        super().__init__({"ports": In(signature).array(ports), "mem": Out(signature)})

    def elaborate(self, platform):
        m = Module()
        n = self.n
        owner_bits = (n - 1).bit_length()
        length_bits = self.max_burst.bit_length()
        m.submodules.queue = queue = fifo.SyncFIFO(width=owner_bits + length_bits,
                                                   depth=self.queue_depth)
        cmd = self.mem.mem_cmd

        # Requests: the first port with one waiting, counting from the one after the last
        # served; taken only while the register is empty and the queue has room.
        last = Signal(range(n), init=n - 1)
        grant = Signal(range(n))
        any_valid = Signal()
        free = ~cmd.valid & queue.w_rdy
        for shift in reversed(range(1, n + 1)):     # the first in the order wins: assign it last
            for k in range(n):
                port = (k + shift) % n
                with m.If((last == k) & self.ports[port].mem_cmd.valid):
                    m.d.comb += [grant.eq(port), any_valid.eq(1)]
        take = free & any_valid
        for k in range(n):
            m.d.comb += self.ports[k].mem_cmd.ready.eq(take & (grant == k))
        with m.If(take):
            with m.Switch(grant):
                for k in range(n):
                    with m.Case(k):
                        m.d.sync += cmd.payload.eq(self.ports[k].mem_cmd.payload)
            m.d.sync += [cmd.valid.eq(1), last.eq(grant)]
        with m.Elif(cmd.valid & cmd.ready):
            m.d.sync += cmd.valid.eq(0)
        length = Signal(length_bits)
        with m.Switch(grant):
            for k in range(n):
                with m.Case(k):
                    m.d.comb += length.eq(self.ports[k].mem_cmd.payload.length)
        m.d.comb += [queue.w_en.eq(take), queue.w_data.eq(Cat(grant, length))]

        # Responses: to the head request's port; its entry leaves with its last word.
        owner = Signal(range(n))
        head_length = Signal(length_bits)
        m.d.comb += Cat(owner, head_length).eq(queue.r_data)
        sent = Signal(length_bits)
        rsp = self.mem.mem_rsp
        ready = Signal()
        for k in range(n):
            mine = queue.r_rdy & (owner == k)
            m.d.comb += [self.ports[k].mem_rsp.valid.eq(rsp.valid & mine),
                         self.ports[k].mem_rsp.payload.eq(rsp.payload)]
            with m.If(mine):
                m.d.comb += ready.eq(self.ports[k].mem_rsp.ready)
        m.d.comb += rsp.ready.eq(ready)
        with m.If(rsp.valid & rsp.ready):
            with m.If(sent + 1 == head_length):
                m.d.sync += sent.eq(0)
                m.d.comb += queue.r_en.eq(1)
            with m.Else():
                m.d.sync += sent.eq(sent + 1)
        return m


def shared_weight_port(m: Module, accelerator, memory_plan):
    """The streamed stages' weight ports of ``accelerator`` on one memory port, as the plan's
    :class:`~accel.plan.weight_memory.WeightMemoryPlan` ``memory_plan`` says: through a
    :class:`WeightArbiter` added to ``m`` when several stages share it (``arbitrated``), the
    only stage's port otherwise. Returns the port the memory connects to (``mem_cmd`` out,
    ``mem_rsp`` in)."""
    ports = [getattr(accelerator, accelerator.weight_ports[index])
             for index in memory_plan.stages]
    if not memory_plan.arbitrated:
        (port,) = ports
        return port
    m.submodules.arbiter = arbiter = WeightArbiter(
        ports=len(ports), addr_width=memory_plan.addr_bits, max_burst=memory_plan.max_burst,
        word_width=memory_plan.word_bits, queue_depth=memory_plan.queue_depth)
    for k, port in enumerate(ports):
        wiring.connect(m, port, arbiter.ports[k])
    return arbiter.mem

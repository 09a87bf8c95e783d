"""Systolic multiply-accumulate array: weight-stationary, with a weight ROM in every PE.

A convolution or dense layer is a matrix product: for each output pixel ``p``,
``y[p, f] = sum_k x[p, k] * W[k, f]``, with ``k`` running over the flattened window
``(kh, kw, cin)`` (``K = kh * kw * cin`` terms) and ``f`` over the ``F`` output channels.
An ``R x C`` array computes one ``(R, C)`` tile of that product per input beat::

    y[c] = sum_r x[r] * W_tile[addr][r][c]        for c in 0..C-1

Rows index the reduction (``R`` lanes of ``x``), columns index output channels. The layer's
weights are folded into ``Kt = ceil(K / R)`` k-tiles and ``Ft = ceil(F / C)`` f-tiles; weight set
``addr`` (``0 <= addr < depth``, ``depth = Kt * Ft``, numbered by the plan) holds one zero-padded
``(R, C)`` tile. Accumulating the k-tiles of an output is the job of the stage around the array.

Dataflow, and why it suits a streaming CNN
------------------------------------------
The array is *weight-stationary with local weight memories*. Processing element ``(r, c)``
owns a ROM with its ``depth`` weights, initialised from the quantized model. Operands move
between neighbours only, through registers, every cycle:

- ``x[r]`` and ``addr`` enter row ``r`` one cycle after row ``r - 1`` (skew registers outside
  the grid) and travel right through the row, register by register. The address travels with
  the operand, so neither is broadcast.
- Each PE reads its ROM at the address it receives, multiplies, and adds the product to the
  partial sum coming down from the PE above; the sum goes down through a register. The top row
  adds 0. Column ``c``'s sum leaves the bottom row, and deskew registers align the ``C``
  columns into one output beat.

This fits streaming inference because weights never move: a layer's weights are constant, so
they live where they are used and need no load bandwidth or reload time, and the folding over
k- and f-tiles is just an address sequence. Each input beat (one slice of a window) is used by
all ``C`` output channels as it passes along its row, and each output beat leaves the array
complete, so a new beat can enter every cycle and the array does ``R * C`` useful MACs per
cycle for as long as the window generator supplies data. An output-stationary array would need
a separate drain phase for its accumulators; a broadcast or adder-tree design would lose Fmax
as the array grows, while here every wire connects neighbours and the clock period is set by
one PE (ROM lookup, DSP multiply, one adder), whatever ``R`` and ``C`` are.

Timing
------
A beat presented to :class:`SystolicArray` in cycle ``t`` (``i.valid`` high in that cycle)
reaches PE ``(r, c)`` in cycle ``t + r + c``. Inside a PE (each line a register, holding its
value during the cycle above it)::

    cycle  t+r+c          t+r+c+1            t+r+c+2          t+r+c+3          t+r+c+4
           x_in, addr_in  x_out = x_in       x_mul = x_out    product =        psum_out =
           (ROM address)  w = ROM[addr_in]   w_mul = w        x_mul * w_mul    psum_in + product
                          (ROM data reg)     (DSP input regs) (DSP pipeline)   (DSP output /
                                                                               adder register)

``psum_in`` is the ``psum_out`` register of the PE above, which holds PE ``(r - 1, c)``'s sum
during cycle ``t + r + c + 3``, exactly when this PE's product register holds its product. So
column ``c``'s complete sum is in the bottom row's ``psum_out`` in cycle ``t + R + c + 3``, and
``C - 1 - c`` deskew registers align all columns. For a 2 x 2 array (``s`` = skew register,
``d`` = deskew register, ``[r,c]`` a PE; each PE adds 4 register stages to the path down
through it but only 1 to the path to its right-hand neighbour)::

    x[0],addr ------> [0,0] ---> [0,1]
                        |          |
    x[1] -> s --------> [1,0] ---> [1,1]
    addr -> s           |          |
                        d          |
                        v          v
                       y[0]       y[1]     (cycle t + R + C + 2)

    latency = R + C + 2    (4 for a 1 x 1 array: ROM, DSP input, multiply, add)

Deep ROMs
---------
A dense layer folded onto few PEs gives each PE a deep ROM (the seed network's first dense
layer on one PE: 401,408 weights, about 150-200 block RAMs). Synthesized as one memory, its
read data comes from a multiplexer over every block RAM, placed all over the chip, in a single
cycle (the seed network on ECP5: a 19.5 ns path, 51 MHz). A ROM deeper than ``bank_depth``
words is therefore split into banks of ``bank_depth`` words. Every bank has its own register
for the low address bits (one shared register drove 150 block RAMs: 18.7 ns) and a register at
its output; a tree of registered 8:1 multiplexers, steered by the bank number travelling
alongside, picks the weight. The PE gains :func:`bank_stages` register stages on the path down
(2 + the tree's levels; ``x`` is delayed to match), every PE of an array alike, so the systolic
timing above holds with a longer latency.

Logic ROMs on iCE40
-------------------
A ROM that yosys puts in logic rather than a block RAM (:func:`accel.plan.memory.mapping`)
is a tree of LUTs between the address and the ROM data register. iCE40 logic cells are bare
4-input LUTs, and yosys's delay-driven mapping (abc9), which counts a LUT level as much less
than the routing it takes, maps a 72-word ROM as a chain of 7 LUTs (digits_small's conv
layer on the iCEBreaker: 20.1 ns, 49.7 MHz against 50 MHz). On iCE40 such a ROM, when deeper
than 16 words, is read in two halves that use the two registers already in front of the
multiplier: 16-word slices (one LUT4 per bit, addressed by the low 4 address bits) are read
into the ROM data register together with the slice number, and the slice is picked by a
multiplexer in front of ``w_mul`` (the SB_MAC16's B register). No register is added, so the
latency and the systolic timing are the same as for one ROM.

DSP mapping
-----------
Why two operand registers in front of the multiplier: the ROM data register sits by the ROM's
LUTs and ``x_out`` also feeds the next PE, so the placer cannot always put them next to the DSP
block. ``x_mul``/``w_mul`` are free to sit beside it, leaving the multiplier alone between two
short hops (on ECP5 the 8 x 8 array went from 125-129 to 134-140 MHz post-route; yosys merges
``x_mul`` with the right-hand neighbour's ``x_out``, which holds the same value).

- ECP5: elaborated for an ECP5 platform, the PE instantiates the MULT18X18D itself with its A/B
  input registers and its output register enabled in place of ``x_mul``/``w_mul`` and
  ``product`` (same latency; the array never stalls, so they load every cycle). Written as
  ``*``, yosys maps the multiply to a MULT18X18D used combinationally between fabric registers
  (it packs no registers into it), and the multiplier's own delay plus two fabric hops then
  limit the clock of a whole accelerator. The adder is a CCU2C carry chain. Simulation and the
  other families keep the ``*`` form; ``tests/synth/test_mac_array_synth.py`` simulates the
  ECP5 netlist.
- iCE40 (``synth_ice40 -dsp``): the SB_MAC16 takes ``x_mul``/``w_mul`` (A/B registers),
  ``product`` (pipeline register), the adder and ``psum_out`` (output register); ``psum_in``
  comes from the SB_MAC16 above. ``product`` and ``psum_out`` carry the ``keep`` attribute:
  without it, yosys 0.70's ``ice40_dsp`` pass packs the top row's two registers
  (``product``, then ``psum_out``, which only copies it) as a two-stage pipeline and the adder
  of the PE *below* into one SB_MAC16, absorbs that PE's ``product`` register as its C
  register, and leaves the multiplier of the PE below with an undriven output: the netlist
  has fewer SB_MAC16 than PEs and computes wrong sums (found by gate-level simulation; see
  ``tests/synth/test_mac_array_synth.py``). ``keep`` on a register's output makes
  ``ice40_dsp`` refuse it as a C register or as a second pipeline stage, and nothing else.

All datapath registers are reset-less (they carry no state that matters after a reset), so they
pack into DSP input/pipeline/output registers and need no reset logic; only the valid delay
line is reset.

Widths
------
Products are exact (``input_bits + weight_bits`` wide at most). The partial sum leaving row
``r`` is only as wide as ``r + 1`` products need, for the actual weights in the ROMs
(:func:`accel.quant.numerics.accumulator_range`), so the adders in the upper rows are narrow;
the bottom row's sum is sign-extended to ``acc_bits``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth import Array, ClockSignal, Instance, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from accel.hw.layouts import check_int
from accel.plan.blocks import (
    DEFAULT_BANK_DEPTH,
    MULT18X18D_BITS,
    MUX_FANIN,
    ArrayPlan,
    array_latency,
    array_stream_timing,
    bank_stages,
    mux_levels,
    psum_bits,
    sum_bits,
)
from accel.plan.memory import mapping
from accel.quant.numerics import int_range

__all__ = [
    "MacArrayStream",
    "ProcessingElement",
    "SystolicArray",
    "bank_stages",
    "default_acc_bits",
    "in_layout",
    "out_layout",
]


_mux_levels = mux_levels


def _platform_family(platform) -> str | None:
    """The plan's name of ``platform``'s FPGA family (Amaranth's iCE40 platforms say "iCE40",
    the plan "ice40"), or None without a platform."""
    family = getattr(platform, "family", None)
    return family.lower() if isinstance(family, str) else None


def _uses_mult18x18d(platform, input_bits: int, weight_bits: int) -> bool:
    """Whether a PE instantiates the ECP5 multiplier with its registers (an Amaranth ECP5
    platform, and operands that fit its signed inputs) rather than writing ``*``."""
    return (_platform_family(platform) == "ecp5"
            and max(input_bits, weight_bits) <= MULT18X18D_BITS)


#: Address bits of one slice of a split logic ROM: one iCE40 LUT4 per bit of a 16-word slice.
LOGIC_ROM_LOW_BITS = 4


def splits_logic_rom(depth: int, weight_bits: int, family: str | None) -> bool:
    """Whether a PE reads its ``depth``-word ROM as registered ``LOGIC_ROM_LOW_BITS``-bit
    slices and a slice multiplexer (on iCE40, when yosys puts the ROM in logic and it is
    deeper than one LUT4 can address); its latency is the same either way."""
    return (family == "ice40" and depth > 1 << LOGIC_ROM_LOW_BITS
            and mapping(depth, weight_bits, family, rom=True)[0] == "logic")


def _check_bank_depth(bank_depth: object) -> int:
    bank_depth = check_int("bank_depth", bank_depth, 1)
    if bank_depth & (bank_depth - 1):
        raise ValueError(f"bank_depth must be a power of two, not {bank_depth}")
    return bank_depth


def _weights_param(weights: object, rows: int, cols: int, weight_bits: int) -> np.ndarray:
    if not isinstance(weights, np.ndarray):
        raise TypeError(f"weights must be a numpy array of integers, not {type(weights).__name__}")
    if weights.dtype == np.bool_ or not np.issubdtype(weights.dtype, np.integer):
        raise TypeError(
            f"weights must be a numpy array of integers, not an array of {weights.dtype}"
        )
    if weights.ndim != 3 or weights.shape[0] < 1 or weights.shape[1:] != (rows, cols):
        raise ValueError(
            f"weights must have shape (depth, rows, cols) = (depth >= 1, {rows}, {cols}), "
            f"not {weights.shape}"
        )
    weights = weights.astype(np.int64)
    lo, hi = int_range(weight_bits)
    bad = (weights < lo) | (weights > hi)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"weights must fit in weight_bits={weight_bits} signed bits ([{lo}, {hi}]), "
            f"not {int(weights[index])} at {index}"
        )
    return weights


_sum_bits = sum_bits


def default_acc_bits(*, rows: int, input_bits: int = 9, weight_bits: int = 8) -> int:
    """The accumulator width that holds any sum of ``rows`` products of ``input_bits``-bit and
    ``weight_bits``-bit signed integers (the default ``acc_bits`` of the array).

    Parameters
    ----------
    rows : int
        Number of products summed (the array's rows), >= 1.
    input_bits, weight_bits : int
        Widths of the signed operands, 1..32.
    """
    rows = check_int("rows", rows, 1)
    input_bits = check_int("input_bits", input_bits, 1, 32)
    weight_bits = check_int("weight_bits", weight_bits, 1, 32)
    return _sum_bits(rows, input_bits, int_range(weight_bits))


def _addr_bits(depth: int) -> int:
    return max(1, Shape.cast(range(depth)).width)


def in_layout(*, rows: int, depth: int, input_bits: int = 9, tag_bits: int = 1,
              streamed_weights: int = 0, weight_bits: int = 8) -> data.StructLayout:
    """The payload of an input beat: ``x`` (``rows`` signed ``input_bits`` values), ``addr``
    (the weight set, ``range(depth)`` but at least 1 bit wide) and caller sideband ``tag``;
    for a streamed array also ``w``, the beat's ``streamed_weights = rows * cols`` weights
    (``w[r * cols + c]`` for PE ``(r, c)``)."""
    fields = {
        "x": data.ArrayLayout(signed(input_bits), rows),
        "addr": unsigned(_addr_bits(depth)),
        "tag": unsigned(tag_bits),
    }
    if streamed_weights:
        fields["w"] = data.ArrayLayout(signed(weight_bits), streamed_weights)
    return data.StructLayout(fields)


def out_layout(*, cols: int, acc_bits: int, tag_bits: int = 1) -> data.StructLayout:
    """The payload of an output beat: ``y`` (``cols`` signed ``acc_bits`` sums) and the ``tag``
    of the input beat it came from."""
    return data.StructLayout({
        "y": data.ArrayLayout(signed(acc_bits), cols),
        "tag": unsigned(tag_bits),
    })


@dataclass(frozen=True)
class _Config:
    """Validated parameters of an array and the widths derived from them."""

    rows: int
    cols: int
    weights: np.ndarray
    input_bits: int
    weight_bits: int
    acc_bits: int
    tag_bits: int
    psum_bits: tuple[int, ...]  # width of the partial sum leaving each row

    @property
    def depth(self) -> int:
        return self.weights.shape[0]

    @classmethod
    def check(cls, *, rows, cols, weights, input_bits, weight_bits, acc_bits, tag_bits
              ) -> _Config:
        rows = check_int("rows", rows, 1)
        cols = check_int("cols", cols, 1)
        input_bits = check_int("input_bits", input_bits, 1, 32)
        weight_bits = check_int("weight_bits", weight_bits, 1, 32)
        tag_bits = check_int("tag_bits", tag_bits, 1)
        weights = _weights_param(weights, rows, cols, weight_bits)
        # Partial sums after row r hold r + 1 products of these weights.
        psums = psum_bits(rows, input_bits, weights)
        need = psums[-1]
        if acc_bits is None:
            acc_bits = default_acc_bits(rows=rows, input_bits=input_bits,
                                        weight_bits=weight_bits)
        elif (isinstance(acc_bits, int | np.integer) and not isinstance(acc_bits, bool)
              and acc_bits < need):
            raise ValueError(
                f"acc_bits must be at least {need} to hold a sum of {rows} products of "
                f"{input_bits}-bit inputs and these weights, not {acc_bits!r}"
            )
        acc_bits = check_int("acc_bits", acc_bits, need)
        return cls(rows=rows, cols=cols, weights=weights, input_bits=input_bits,
                   weight_bits=weight_bits, acc_bits=acc_bits, tag_bits=tag_bits,
                   psum_bits=psums)


class ProcessingElement(wiring.Component):
    """One processing element: a weight ROM, a registered signed multiply and a registered add.

    Four register stages from ``x_in`` to ``psum_out`` (ROM data and operand register,
    multiplier input registers, product register, sum register), :func:`bank_stages` more
    when the ROM is banked (``len(weights) > bank_depth``), and one from ``x_in`` to
    ``x_out``; see the module documentation for the timing. The multiply-add with its input,
    product and sum registers is the shape of a DSP block (SB_MAC16, MULT18X18D).

    Parameters
    ----------
    weights : sequence of int or None
        The ROM contents, one weight per address (at least one); None for a streamed PE,
        which takes the weight on ``w_in`` with ``x_in`` instead of reading a ROM.
    input_bits : int
        Width of the signed operand ``x``.
    weight_bits : int
        Width of the signed weights; every weight must fit.
    addr_bits : int
        Width of the address (at least enough for ``len(weights)`` entries).
    psum_in_bits : int
        Width of the signed partial sum from the PE above.
    psum_bits : int
        Width of the signed partial sum passed down; the caller guarantees (and
        :class:`SystolicArray` derives) that the sum never overflows it.
    bank_depth : int
        A power of two: ROMs deeper than this are split into banks of ``bank_depth`` words
        (see "Deep ROMs" in the module documentation).

    Members
    -------
    x_in : In(signed(input_bits))
        Operand from the left neighbour (or the row's skew register).
    addr_in : In(unsigned(addr_bits))
        Weight address, travelling with ``x_in``; must be ``< len(weights)``.
    psum_in : In(signed(psum_in_bits))
        Partial sum from the PE above (0 for the top row).
    x_out : Out(signed(input_bits))
        ``x_in`` one cycle later, for the right neighbour.
    addr_out : Out(unsigned(addr_bits))
        ``addr_in`` one cycle later, for the right neighbour.
    w_in : In(signed(weight_bits))
        Streamed PEs only: the weight for ``x_in``, in the same cycle.
    psum_out : Out(signed(psum_bits))
        ``psum_in + x * weights[addr]``, registered: for ``x_in``/``addr_in`` in cycle ``t`` it
        holds the sum with ``psum_in`` of cycle ``t + latency - 1`` during cycle
        ``t + latency``.

    Attributes
    ----------
    latency : int
        ``4 + bank_stages(len(weights), bank_depth)``.
    """

    def __init__(self, *, weights, input_bits: int, weight_bits: int, addr_bits: int,
                 psum_in_bits: int, psum_bits: int, bank_depth: int = DEFAULT_BANK_DEPTH):
        self._input_bits = check_int("input_bits", input_bits, 1, 32)
        self._weight_bits = check_int("weight_bits", weight_bits, 1, 32)
        self.streamed = weights is None
        # A streamed PE takes its weight on w_in, like a one-word ROM's read (one register).
        self._weights = [0] if self.streamed else [int(w) for w in weights]
        if not self._weights:
            raise ValueError("weights must hold at least one weight, not 0")
        lo, hi = int_range(self._weight_bits)
        for addr, w in enumerate(self._weights):
            if not lo <= w <= hi:
                raise ValueError(
                    f"weights must fit in weight_bits={weight_bits} signed bits ([{lo}, {hi}]), "
                    f"not {w} at {addr}"
                )
        need = _addr_bits(len(self._weights))
        self._addr_bits = check_int("addr_bits", addr_bits, need)
        self._psum_bits = check_int("psum_bits", psum_bits, 1)
        psum_in_bits = check_int("psum_in_bits", psum_in_bits, 1)
        self._bank_depth = _check_bank_depth(bank_depth)
        self.banks = -(-len(self._weights) // self._bank_depth)
        self.latency = 4 + bank_stages(len(self._weights), self._bank_depth)
        members = {
            "x_in": In(signed(self._input_bits)),
            "addr_in": In(unsigned(self._addr_bits)),
            "psum_in": In(signed(psum_in_bits)),
            "x_out": Out(signed(self._input_bits)),
            "addr_out": Out(unsigned(self._addr_bits)),
            "psum_out": Out(signed(self._psum_bits)),
        }
        if self.streamed:
            members["w_in"] = In(signed(self._weight_bits))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        weight = self._weight_rom(m, _platform_family(platform))

        x_reg = Signal.like(self.x_out, reset_less=True)
        addr_reg = Signal.like(self.addr_out, reset_less=True)
        # With a banked ROM the weight comes bank_stages() cycles later: delay x to match.
        x_late = x_reg
        for k in range(self.latency - 4):
            x_next = Signal.like(self.x_out, name=f"x_bank_delay{k}", reset_less=True)
            m.d.sync += x_next.eq(x_late)
            x_late = x_next
        if _uses_mult18x18d(platform, self._input_bits, self._weight_bits):
            product = self._mult18x18d(m, x_late, weight)
        else:
            product = self._fabric_multiply(m, x_late, weight)
        # `keep` on the sum register's output stops yosys's ice40_dsp pass from pulling it into
        # the SB_MAC16 of the PE below (see "DSP mapping" in the module documentation).
        psum = Signal.like(self.psum_out, reset_less=True, attrs={"keep": 1})
        m.d.sync += [
            x_reg.eq(self.x_in),
            addr_reg.eq(self.addr_in),
            psum.eq(self.psum_in + product),
        ]
        m.d.comb += [
            self.x_out.eq(x_reg),
            self.addr_out.eq(addr_reg),
            self.psum_out.eq(psum),
        ]
        return m

    def _fabric_multiply(self, m: Module, x, w):
        """``x * w`` of cycle ``t`` as a register in cycle ``t + 2``: the operand registers and
        the product register, for yosys to map (and, on iCE40, to pack into the SB_MAC16)."""
        # The multiplier's own input registers (see "Why two operand registers" above).
        x_mul = Signal.like(self.x_out, reset_less=True)
        w_mul = Signal(signed(self._weight_bits), reset_less=True)
        # `keep`: the product register must not become another PE's SB_MAC16 C register or
        # second pipeline stage (see "DSP mapping").
        product = Signal(signed(self._input_bits + self._weight_bits), reset_less=True,
                         attrs={"keep": 1})
        m.d.sync += [x_mul.eq(x), w_mul.eq(w), product.eq(x_mul * w_mul)]
        return product

    def _mult18x18d(self, m: Module, x, w):
        """``x * w`` of cycle ``t`` in cycle ``t + 2`` from an ECP5 MULT18X18D whose input
        registers take the place of ``x_mul``/``w_mul`` and whose output register that of
        ``product``: the two register stages of :meth:`_fabric_multiply`, inside the block."""
        a = Signal(signed(MULT18X18D_BITS))
        b = Signal(signed(MULT18X18D_BITS))
        p = Signal(signed(2 * MULT18X18D_BITS))
        m.d.comb += [a.eq(x), b.eq(w)]
        ports = {f"i_A{k}": a[k] for k in range(MULT18X18D_BITS)}
        ports.update({f"i_B{k}": b[k] for k in range(MULT18X18D_BITS)})
        ports.update({f"i_C{k}": 0 for k in range(MULT18X18D_BITS)})
        ports.update({f"o_P{k}": p[k] for k in range(2 * MULT18X18D_BITS)})
        # The array never stalls (MacArrayStream's FIFO catches its results), so the registers
        # load every cycle; like the fabric datapath registers they have no reset.
        m.submodules.mult = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
            i_CLK0=ClockSignal("sync"), i_CE0=1, i_RST0=0,
            i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
            **ports,
        )
        return p[:self._input_bits + self._weight_bits].as_signed()

    def _weight_rom(self, m: Module, family: str | None):
        """The weight for ``addr_in`` of cycle ``t``, valid in cycle ``t + latency - 3``."""
        depth, width = len(self._weights), signed(self._weight_bits)
        if self.streamed:
            w_reg = Signal(width, name="w_reg", reset_less=True)
            m.d.sync += w_reg.eq(self.w_in)
            return w_reg
        if self.banks == 1 and splits_logic_rom(depth, self._weight_bits, family):
            return self._split_logic_rom(m)
        if self.banks == 1:
            m.submodules.rom = rom = memory.Memory(shape=width, depth=depth,
                                                   init=self._weights)
            # Synchronous read (BRAM-inferable): the ROM's data register lines up with x_out.
            read = rom.read_port()
            m.d.comb += read.addr.eq(self.addr_in)
            return read.data
        low = self._bank_depth.bit_length() - 1
        # The bank number, delayed alongside: select[k] is addr_in's bank k cycles later.
        select = [self.addr_in[low:]]
        for k in range(2 + _mux_levels(self.banks)):
            select.append(Signal(range(self.banks), name=f"bank_select{k + 1}",
                                 reset_less=True))
            m.d.sync += select[-1].eq(select[-2])
        level = []
        for b in range(self.banks):
            words = self._weights[b * self._bank_depth:(b + 1) * self._bank_depth]
            bank = memory.Memory(shape=width, depth=len(words), init=words)
            m.submodules[f"rom{b}"] = bank
            read = bank.read_port()
            # Each bank gets its own address register (kept: merged into one, it would drive
            # every block RAM of the ROM across the chip) and a register at its output (a
            # block RAM's output register or a flip-flop beside it).
            addr = Signal(low, name=f"bank{b}_addr", reset_less=True, attrs={"keep": 1})
            held = Signal(width, name=f"bank{b}_data", reset_less=True)
            m.d.sync += [addr.eq(self.addr_in[:low]), held.eq(read.data)]
            m.d.comb += read.addr.eq(addr)
            level.append(held)
        # A tree of registered MUX_FANIN:1 multiplexers; level j uses digit j of the bank
        # number (base MUX_FANIN) as it stands 3 + j cycles after addr_in.
        digit_bits = MUX_FANIN.bit_length() - 1
        for j in range(_mux_levels(self.banks)):
            digit = select[3 + j][j * digit_bits:(j + 1) * digit_bits]
            groups = [level[g:g + MUX_FANIN] for g in range(0, len(level), MUX_FANIN)]
            level = []
            for g, group in enumerate(groups):
                picked = Signal(width, name=f"bank_mux{j}_{g}", reset_less=True)
                m.d.sync += picked.eq(Array(group)[digit] if len(group) > 1 else group[0])
                level.append(picked)
        (weight,) = level
        return weight

    def _split_logic_rom(self, m: Module):
        """A logic ROM read over the ROM data register and the multiplier's input register
        (see "Logic ROMs on iCE40" in the module documentation): ``LOGIC_ROM_LOW_BITS``-bit
        slices registered in cycle ``t + 1``, the slice picked combinationally into
        ``w_mul``, which the caller registers in cycle ``t + 2``; no register is added."""
        low, width = LOGIC_ROM_LOW_BITS, signed(self._weight_bits)
        size = 1 << low
        slices = []
        for b in range(-(-len(self._weights) // size)):
            words = self._weights[b * size:(b + 1) * size]
            rom = memory.Memory(shape=width, depth=len(words), init=words)
            m.submodules[f"rom{b}"] = rom
            read = rom.read_port()
            m.d.comb += read.addr.eq(self.addr_in[:low])
            slices.append(read.data)
        select = Signal(range(len(slices)), name="rom_slice", reset_less=True)
        m.d.sync += select.eq(self.addr_in[low:])
        return Array(slices)[select]


class SystolicArray(wiring.Component):
    """A ``rows x cols`` weight-stationary systolic MAC array with fixed latency.

    One input beat per cycle at most, no backpressure: for a beat ``(x, addr, tag)`` presented
    with ``i.valid`` in cycle ``t``, ``o.valid`` is high in cycle ``t + latency`` with
    ``y[c] = sum_r x[r] * weights[addr, r, c]`` and the same ``tag``. See the module
    documentation for the dataflow and the timing.

    Its streams are always ready, so their ``ready`` members are constants: Amaranth cannot
    make it a top-level Verilog module by itself. It is meant to sit inside a stage (as in
    :class:`MacArrayStream`).

    Parameters
    ----------
    rows : int
        Number of rows (reduction lanes), >= 1.
    cols : int
        Number of columns (output channels), >= 1.
    weights : numpy.ndarray of int, shape (depth, rows, cols)
        Weight sets, ``depth >= 1``; each must fit in ``weight_bits`` signed bits.
    input_bits : int
        Width of the signed inputs ``x`` (9 for int8 activations minus the zero point).
    weight_bits : int
        Width of the signed weights.
    acc_bits : int or None
        Width of the outputs ``y``. At least what any sum of ``rows`` products of an
        ``input_bits`` input and these weights needs (so overflow is impossible); ``None``
        gives :func:`default_acc_bits`, which holds any weights of ``weight_bits``.
    tag_bits : int
        Width of the caller's sideband ``tag``, >= 1.
    bank_depth : int
        A power of two: weight ROMs deeper than this are banked (two more register stages).
    streamed : bool
        No ROMs: every input beat carries its ``rows * cols`` weights in ``w`` (a weight
        stream, :mod:`accel.hw.weight_stream`); ``weights`` then only sizes the partial sums
        and ``addr`` is unused. The latency is that of an unbanked ROM.

    Members
    -------
    i : In(stream.Signature(in_layout(...), always_ready=True))
        Input beats: ``x``, ``addr`` (``< depth``), ``tag`` and, when streamed, ``w``.
    o : Out(stream.Signature(out_layout(...), always_ready=True))
        Output beats: ``y`` and ``tag``, ``latency`` cycles after their input beat.

    Attributes
    ----------
    latency : int
        ``rows + cols + 2``, plus :func:`bank_stages` when ``depth > bank_depth``.
    depth : int
        Number of weight sets.
    acc_bits : int
        Width of ``y``.
    """

    def __init__(self, *, rows: int, cols: int, weights: np.ndarray, input_bits: int = 9,
                 weight_bits: int = 8, acc_bits: int | None = None, tag_bits: int = 1,
                 bank_depth: int = DEFAULT_BANK_DEPTH, streamed: bool = False):
        config = _Config.check(rows=rows, cols=cols, weights=weights, input_bits=input_bits,
                               weight_bits=weight_bits, acc_bits=acc_bits, tag_bits=tag_bits)
        self.rows, self.cols, self.depth = config.rows, config.cols, config.depth
        self.input_bits, self.weight_bits = config.input_bits, config.weight_bits
        self.acc_bits, self.tag_bits = config.acc_bits, config.tag_bits
        self.weights = config.weights
        self._psum_bits = config.psum_bits
        self.bank_depth = _check_bank_depth(bank_depth)
        if not isinstance(streamed, bool):
            raise TypeError(f"streamed must be a bool, not {streamed!r}")
        self.streamed = streamed
        self.latency = array_latency(self.rows, self.cols, 1 if streamed else self.depth,
                                     self.bank_depth)

        super().__init__({
            "i": In(stream.Signature(
                in_layout(rows=self.rows, depth=self.depth, input_bits=self.input_bits,
                          tag_bits=self.tag_bits,
                          streamed_weights=self.rows * self.cols if streamed else 0,
                          weight_bits=self.weight_bits),
                always_ready=True)),
            "o": Out(stream.Signature(
                out_layout(cols=self.cols, acc_bits=self.acc_bits, tag_bits=self.tag_bits),
                always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.rows, self.cols
        addr_bits = _addr_bits(self.depth)

        pes = [[None] * cols for _ in range(rows)]
        for r in range(rows):
            for c in range(cols):
                pe = ProcessingElement(
                    weights=None if self.streamed else self.weights[:, r, c],
                    input_bits=self.input_bits,
                    weight_bits=self.weight_bits, addr_bits=addr_bits,
                    psum_in_bits=self._psum_bits[r - 1] if r else 1,
                    psum_bits=self._psum_bits[r], bank_depth=self.bank_depth,
                )
                m.submodules[f"pe_{r}_{c}"] = pes[r][c] = pe

        # Skew: row r gets its operand and the address r cycles after row 0. The address skew
        # chain is shared by all rows (row r taps it after r registers).
        addr = self.i.payload.addr
        for r in range(rows):
            x = self.i.payload.x[r]
            for k in range(r):
                x_next = Signal(signed(self.input_bits), name=f"skew_x{r}_{k}", reset_less=True)
                m.d.sync += x_next.eq(x)
                x = x_next
            if r:
                addr_next = Signal(unsigned(addr_bits), name=f"skew_addr{r}", reset_less=True)
                m.d.sync += addr_next.eq(addr)
                addr = addr_next
            m.d.comb += [pes[r][0].x_in.eq(x), pes[r][0].addr_in.eq(addr)]

        # Streamed weights: PE (r, c) must see its weight in the cycle its operand arrives,
        # r + c cycles after the beat entered. The row's weights are skewed like x (r
        # registers), then column c's weight waits c more.
        if self.streamed:
            for r in range(rows):
                row = [self.i.payload.w[r * cols + c] for c in range(cols)]
                for k in range(r):
                    nxt = [Signal(signed(self.weight_bits), name=f"skew_w{r}_{j}_{k}",
                                  reset_less=True) for j in range(cols)]
                    m.d.sync += [n.eq(w) for n, w in zip(nxt, row, strict=True)]
                    row = nxt
                for c in range(cols):
                    w = row[c]
                    for k in range(c):
                        w_next = Signal(signed(self.weight_bits), name=f"walk_w{r}_{c}_{k}",
                                        reset_less=True)
                        m.d.sync += w_next.eq(w)
                        w = w_next
                    m.d.comb += pes[r][c].w_in.eq(w)

        # Operands and addresses move right.
        for r in range(rows):
            for c in range(1, cols):
                m.d.comb += [
                    pes[r][c].x_in.eq(pes[r][c - 1].x_out),
                    pes[r][c].addr_in.eq(pes[r][c - 1].addr_out),
                ]

        # Partial sums move down; the top row adds 0.
        for c in range(cols):
            m.d.comb += pes[0][c].psum_in.eq(0)
            for r in range(1, rows):
                m.d.comb += pes[r][c].psum_in.eq(pes[r - 1][c].psum_out)

        # Deskew: column c leaves the bottom row c cycles after column 0; delay it by
        # cols - 1 - c so that every column of a beat comes out together.
        for c in range(cols):
            y = pes[rows - 1][c].psum_out
            for k in range(cols - 1 - c):
                y_next = Signal(signed(self._psum_bits[-1]), name=f"deskew_y{c}_{k}",
                                reset_less=True)
                m.d.sync += y_next.eq(y)
                y = y_next
            m.d.comb += self.o.payload.y[c].eq(y)

        # valid and tag travel alongside, through a plain delay line.
        valid, tag = self.i.valid, self.i.payload.tag
        for k in range(self.latency):
            valid_next = Signal(name=f"valid_{k}")
            tag_next = Signal(unsigned(self.tag_bits), name=f"tag_{k}", reset_less=True)
            m.d.sync += [valid_next.eq(valid), tag_next.eq(tag)]
            valid, tag = valid_next, tag_next
        m.d.comb += [self.o.valid.eq(valid), self.o.payload.tag.eq(tag)]
        return m


class MacArrayStream(wiring.Component):
    """A :class:`SystolicArray` behind valid/ready streams.

    The array never stalls: an output FIFO catches its results, and a credit counter accepts an
    input beat only while the FIFO is sure to have room for it (beats in flight in the array
    plus beats stored in the FIFO stay below ``fifo_depth``). With input always valid and
    output always ready it takes one beat per cycle (``rows * cols`` MACs per cycle); under
    backpressure nothing is lost or duplicated, and no combinational path runs from
    ``o.ready`` to ``i.ready``.

    Parameters
    ----------
    rows, cols, weights, input_bits, weight_bits, acc_bits, tag_bits, bank_depth, streamed
        As for :class:`SystolicArray`.

    Members
    -------
    i : In(stream.Signature(in_layout(...)))
        Input beats: ``x``, ``addr`` (``< depth``) and ``tag``.
    o : Out(stream.Signature(out_layout(...)))
        Output beats ``y`` and ``tag``, in input order.

    Attributes
    ----------
    latency : int
        Cycles from an input transfer to the earliest cycle its output can be transferred:
        1 through the input register, the array's latency, and 2 through the FIFO.
    fifo_depth : int
        ``latency + 1``: the fewest entries that sustain one beat per cycle, since a beat
        holds a credit from the cycle after its input transfer through its output transfer.
    depth, acc_bits : int
        As for :class:`SystolicArray`.
    """

    def __init__(self, *, rows: int, cols: int, weights: np.ndarray, input_bits: int = 9,
                 weight_bits: int = 8, acc_bits: int | None = None, tag_bits: int = 1,
                 bank_depth: int = DEFAULT_BANK_DEPTH, streamed: bool = False):
        # Validate before creating any elaboratable, so that bad parameters leave nothing behind
        # to warn "created but never used".
        config = _Config.check(rows=rows, cols=cols, weights=weights, input_bits=input_bits,
                               weight_bits=weight_bits, acc_bits=acc_bits, tag_bits=tag_bits)
        _check_bank_depth(bank_depth)
        if not isinstance(streamed, bool):
            raise TypeError(f"streamed must be a bool, not {streamed!r}")
        self._array = array = SystolicArray(
            rows=config.rows, cols=config.cols, weights=config.weights,
            input_bits=config.input_bits, weight_bits=config.weight_bits,
            acc_bits=config.acc_bits, tag_bits=config.tag_bits, bank_depth=bank_depth,
            streamed=streamed)
        self.rows, self.cols, self.depth = array.rows, array.cols, array.depth
        self.acc_bits, self.tag_bits = array.acc_bits, array.tag_bits
        self.streamed = streamed
        self.latency, self.fifo_depth = array_stream_timing(
            array.rows, array.cols, 1 if streamed else array.depth, array.bank_depth)
        self._fifo = SyncFIFOBuffered(
            width=Shape.cast(array.o.payload.shape()).width, depth=self.fifo_depth
        )
        super().__init__({
            "i": In(stream.Signature(array.i.payload.shape())),
            "o": Out(stream.Signature(array.o.payload.shape())),
        })

    @classmethod
    def from_plan(cls, plan: ArrayPlan) -> MacArrayStream:
        """The array of a stage's :class:`~accel.plan.blocks.ArrayPlan`."""
        return cls(**plan.component_args())

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = self._array
        m.submodules.fifo = fifo = self._fifo

        # Credits: beats accepted and not yet delivered. The FIFO (depth >= 3, so w_rdy is high
        # whenever its level is below its depth) then always has room for the array's output.
        # i.ready is `used < fifo_depth`, kept in a register (set from the count `used` takes
        # next), so that the producer's read-side enables start at a flip-flop rather than
        # behind a comparator (the window replay's read pointer: 20.8 ns on iCE40).
        used = Signal(range(self.fifo_depth + 1))
        i_ready = Signal(init=1)
        take = self.i.valid & i_ready
        give = self.o.valid & self.o.ready
        # A Signal of used's own width, not the Mux of used + 1 and used - 1: that is signed
        # and one bit wider, a width-expanding signed compare in the Verilog.
        used_next = Signal.like(used)
        m.d.comb += [used_next.eq(Mux(take & ~give, used + 1, Mux(give & ~take, used - 1, used))),
                     self.i.ready.eq(i_ready)]
        m.d.sync += [used.eq(used_next), i_ready.eq(used_next < self.fifo_depth)]

        # The beat enters the array from a register: the producer's output logic (a FIFO's
        # LUT-RAM read in the window replay) would otherwise run straight into every PE's ROM
        # address (82.7 MHz on ECP5).
        m.d.sync += [array.i.valid.eq(take), array.i.payload.eq(self.i.payload)]
        m.d.comb += [
            fifo.w_en.eq(array.o.valid),
            fifo.w_data.eq(array.o.payload),
            self.o.valid.eq(fifo.r_rdy),
            self.o.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.o.ready),
        ]
        return m

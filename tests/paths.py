"""Where the tests find the repository's example files."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SPECS = EXAMPLES / "specs"

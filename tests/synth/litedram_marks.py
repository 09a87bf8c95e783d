"""The skip mark of every test that needs the LiteDRAM generator (the ``litedram`` extra)."""

import pytest

from accel.errors import AccelError
from accel.synth import litedram


def _has_litedram() -> bool:
    try:
        litedram.litedram_versions()
    except AccelError:
        return False
    return True


needs_litedram = pytest.mark.skipif(not _has_litedram(),
                                    reason="no litedram in $ACCEL_LITEDRAM_PYTHON or here")

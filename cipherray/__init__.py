"""cipherray: a privacy-computing runtime on Ray.

import cipherray as cr
with cr.init(parties=["bank", "insurer"]) as rt:
    bank, insurer = rt.parties
    mpc = rt.mpc(bank, insurer)
    x = bank(load)().to(mpc)
    ...
"""

from cipherray.runtime import *  # noqa: F403 - the public face is the runtime's API
from cipherray.runtime import __all__ as _runtime_all

__version__ = "0.1.0"

__all__ = [*_runtime_all, "__version__"]

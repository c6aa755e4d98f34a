"""cipherray: a privacy-computing runtime on Ray.

import cipherray as cr
with cr.init(parties=["bank", "insurer"]) as rt:
    bank, insurer = rt.parties
    mpc = rt.mpc(bank, insurer)
    x = bank(load)().to(mpc)
    ...
"""

from cipherray.runtime import *  # noqa: F403 - the public face is the runtime's API
from cipherray.runtime import SharedRef
from cipherray.runtime import __all__ as _runtime_all

__version__ = "0.1.0"


def mpc_concatenate(parts, axis: int = 0):
    """Concatenate SharedRefs of one MPC location (also `cipherray.mpc.concatenate`)."""
    parts = list(parts)
    if not parts or not isinstance(parts[0], SharedRef):
        raise TypeError("mpc_concatenate expects a non-empty list of SharedRefs")
    return parts[0].location.concatenate(parts, axis=axis)


__all__ = [*_runtime_all, "__version__", "mpc_concatenate"]

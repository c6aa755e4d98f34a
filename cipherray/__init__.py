"""cipherray: a privacy-computing runtime on Ray.

import cipherray as cr
with cr.init(parties=["bank", "insurer"]) as rt:
    bank, insurer = rt.parties
    mpc = rt.mpc(bank, insurer)
    x = bank(load)().to(mpc)
    ...
"""

from cipherray.runtime import (
    HE,
    MPC,
    CipherrayError,
    ConfigError,
    DisclosureError,
    EncryptedRef,
    InputError,
    LocationError,
    Party,
    PartyError,
    PartyRef,
    PartyTimeoutError,
    PlacementError,
    RangeError,
    Ref,
    Runtime,
    SharedRef,
    SharedTensor,
    ShutdownError,
    StepError,
    init,
)

__version__ = "0.1.0"


def mpc_concatenate(parts, axis: int = 0):
    """Concatenate SharedRefs of one MPC location (also `cipherray.mpc.concatenate`)."""
    parts = list(parts)
    if not parts or not isinstance(parts[0], SharedRef):
        raise TypeError("mpc_concatenate expects a non-empty list of SharedRefs")
    return parts[0].location.concatenate(parts, axis=axis)


__all__ = [
    "MPC",
    "CipherrayError",
    "ConfigError",
    "DisclosureError",
    "EncryptedRef",
    "HE",
    "InputError",
    "LocationError",
    "Party",
    "PartyError",
    "PartyRef",
    "PartyTimeoutError",
    "PlacementError",
    "RangeError",
    "Ref",
    "Runtime",
    "SharedRef",
    "SharedTensor",
    "ShutdownError",
    "StepError",
    "__version__",
    "init",
    "mpc_concatenate",
]

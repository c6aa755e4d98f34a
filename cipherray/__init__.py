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
]

"""The runtime: the only part of cipherray that talks to Ray."""

from cipherray.runtime.errors import (
    CipherrayError,
    ConfigError,
    DisclosureError,
    InputError,
    LocationError,
    PartyError,
    PartyTimeoutError,
    PlacementError,
    RangeError,
    ShutdownError,
    StepError,
)
from cipherray.runtime.he import HE, EncryptedRef
from cipherray.runtime.mpc import MPC, SharedRef, SharedTensor
from cipherray.runtime.party import Party
from cipherray.runtime.refs import PartyRef, Ref
from cipherray.runtime.runtime import Runtime, init

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
    "init",
]

"""The runtime: the only part of cipherray that talks to Ray."""

from cipherray.runtime.encrypted import HE, EncryptedRef
from cipherray.runtime.errors import (
    CipherrayError,
    ConfigError,
    DisclosureError,
    InputError,
    LocationError,
    PartyError,
    PartyTimeoutError,
    PeerAuthError,
    PlacementError,
    RangeError,
    ShutdownError,
    StepError,
    WireError,
)
from cipherray.runtime.party import Party
from cipherray.runtime.policy import DisclosurePolicy, Grant
from cipherray.runtime.refs import PartyRef, Ref
from cipherray.runtime.runtime import Runtime, init
from cipherray.runtime.shared import MPC, SharedRef, concatenate
from cipherray.runtime.silo.certs import TLS
from cipherray.runtime.silo.wire import Expect

__all__ = [
    "MPC",
    "CipherrayError",
    "ConfigError",
    "DisclosureError",
    "DisclosurePolicy",
    "EncryptedRef",
    "Expect",
    "Grant",
    "HE",
    "InputError",
    "LocationError",
    "Party",
    "PartyError",
    "PartyRef",
    "PartyTimeoutError",
    "PeerAuthError",
    "PlacementError",
    "RangeError",
    "Ref",
    "Runtime",
    "SharedRef",
    "ShutdownError",
    "StepError",
    "TLS",
    "WireError",
    "concatenate",
    "init",
]

"""The exceptions cipherray raises. Each names the party and the step where it can."""

from __future__ import annotations


class CipherrayError(Exception):
    """Base class of every cipherray error."""


class ConfigError(CipherrayError, ValueError):
    """Bad arguments to `init`: unknown or duplicate parties, bad network model, ..."""


class LocationError(CipherrayError):
    """A ref was used at a location where its value does not live."""


class DisclosureError(CipherrayError):
    """A value would reach a party (or the driver) that the policy does not allow."""


class ShutdownError(CipherrayError, RuntimeError):
    """The runtime was used after `shutdown()`."""


class PlacementError(CipherrayError):
    """The cluster lacks the `party:<name>` resource that a party's actors need."""


class PartyError(CipherrayError):
    """A party failed, died or did not answer within the timeout during a step."""

    def __init__(self, party: str, step: str, message: str):
        super().__init__(f"party '{party}' failed at step '{step}': {message}")
        self.party = party
        self.step = step
        self.reason = message

    def __reduce__(self):
        return (type(self), (self.party, self.step, self.reason))


class PartyTimeoutError(PartyError, TimeoutError):
    """A party did not answer within the runtime's timeout."""


class StepError(PartyError):
    """A step's function raised at a party; the original exception is `.cause`."""

    def __init__(self, party: str, step: str, message: str, cause: BaseException | None = None):
        super().__init__(party, step, message)
        self.cause = cause

    def __reduce__(self):
        return (type(self), (self.party, self.step, self.reason, self.cause))


class InputError(StepError, ValueError):
    """Bad input data at a party (NaN, non-numeric, beyond the fixed-point range, ...)."""


class RangeError(InputError, OverflowError):
    """A value beyond the fixed-point range; cipherray raises rather than wraps."""


class WireError(PartyError, ValueError):
    """A cross-silo message that is malformed or not what the step expects: truncated,
    oversized, an unknown kind or dtype, or a dtype, shape or length other than the
    receiving step's. `party` is the peer whose message it was; the receiver drops the
    message and keeps its state."""


class PeerAuthError(PartyError, PermissionError):
    """A peer's TLS identity was refused: a certificate not issued by the configured CA,
    none at all, or one issued to another party than the one the peer claims to be."""

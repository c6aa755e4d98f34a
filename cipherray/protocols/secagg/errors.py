"""Named errors of secure aggregation. A round that raises returns no aggregate."""

from __future__ import annotations


class SecAggError(Exception):
    """Base class: the round was aborted and nothing was unmasked."""


class TooFewSurvivors(SecAggError):
    """Fewer parties than the threshold are left at a stage of the round."""

    def __init__(self, stage: str, have: int, need: int, client: int | None = None):
        self.stage, self.have, self.need, self.client = stage, have, need, client
        who = "" if client is None else f" for client {client}"
        super().__init__(
            f"secure aggregation aborted at stage {stage!r}{who}: "
            f"{have} parties left, the threshold is {need}"
        )


class InsufficientShares(SecAggError):
    """A Shamir reconstruction was given fewer shares than the threshold."""


class QuantizationOverflow(SecAggError):
    """The sum of the clients' quantised updates could wrap around the modulus."""


class ParameterError(SecAggError):
    """No communication graph meets the requested security and correctness bounds."""


class ProtocolViolation(SecAggError):
    """A message breaks the protocol (e.g. the server asks for both secrets of a client)."""

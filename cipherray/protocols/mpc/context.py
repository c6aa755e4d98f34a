"""`MPCContext`: what every protocol of this package runs with.

A protocol function takes the context first, then its shared data and public shapes:
`arithmetic.mul(ctx, x, y, x_shape=..., y_shape=...)`. The context bundles

- `engine`     the `Engine` that runs the steps and counts the messages;
- `provider`   the source of correlated randomness (`providers`); None where the
               protocol needs none (products by public integers, 2-member truncation);
- `frac_bits`  f, the fractional bits of the fixed-point encoding (0..30);
- `tag`        the ledger tag of the operation: its messages are tagged
               `ctx.step("open")` = "<tag>/open", and a sub-protocol runs under
               `ctx.scoped("trunc")`, tagged "<tag>/trunc". A protocol called with an
               empty tag uses its own name ("mul", "lt", "sigmoid", ...).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cipherray.protocols.fixedpoint import DEFAULT_FRAC_BITS
from cipherray.protocols.mpc.common import check_frac_bits
from cipherray.protocols.mpc.engine import Engine
from cipherray.protocols.mpc.providers import Provider


@dataclass(frozen=True)
class MPCContext:
    engine: Engine
    provider: Provider | None
    frac_bits: int = DEFAULT_FRAC_BITS
    tag: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "frac_bits", check_frac_bits(self.frac_bits))

    @property
    def n(self) -> int:
        """The number of members."""
        return self.engine.n

    @property
    def has_dealer(self) -> bool:
        return self.engine.has_dealer

    def step(self, name: str) -> str:
        """The ledger tag of step `name` of this operation: "<tag>/<name>"."""
        return f"{self.tag}/{name}" if self.tag else name

    def scoped(self, name: str) -> MPCContext:
        """The context of a sub-operation: tagged "<tag>/<name>" (`name` if no tag)."""
        return dataclasses.replace(self, tag=self.step(name))

    def with_default_tag(self, name: str) -> MPCContext:
        """This context if it carries a tag, else a copy tagged `name` (the name a
        protocol gives its messages when the caller names none)."""
        return self if self.tag else dataclasses.replace(self, tag=name)

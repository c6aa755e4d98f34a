"""Member-local steps of the runtime's shared values that `protocols.mpc.common` does
not already provide: seed-compressed sharing, sums, reshapes, concatenation, and the
reconstruction at the receiver of a reveal. Each runs at one party on its own share
(uint64 arrays; arithmetic wraps mod 2^64); the `i` argument is the member index the
engine passes. Linear steps need no communication.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cipherray.protocols import fixedpoint, sharing


def share_seeds(x: Any, n_parties: int) -> tuple:
    """At the owner, first: one fresh 32-byte seed for each other party, with the
    value's public shape: ((seed, shape), ...). Sent at once, so that the other
    parties expand their shares while the owner encodes its own."""
    shape = tuple(np.shape(x))
    out = tuple((sharing.new_seed(), shape) for _ in range(n_parties - 1))
    return out if len(out) > 1 else out[0]


def share_own(x: Any, frac_bits: int, *messages: tuple) -> np.ndarray:
    """At the owner, second: encode, and subtract every other party's share."""
    ring = fixedpoint.encode(x, frac_bits, what="value sent to MPC")  # always a new array
    # the encoding becomes the share in place: the keystreams are subtracted as they are
    # made, so no other array of this size is allocated
    return sharing.own_share(ring, [seed for seed, _ in messages], overwrite=True)


def share_receiver(msg: tuple) -> np.ndarray:
    seed, shape = msg
    return sharing.share_from_seed(seed, shape)


def share_zero(msg: tuple) -> np.ndarray:
    """The other member's share of a trivially shared input (`MPC.share` with two
    members and the OT provider): zeros of the public shape in the owner's message."""
    _seed, shape = msg
    return np.zeros(shape, dtype=np.uint64)


def ring_sum(i: int, a: np.ndarray, axis: Any) -> np.ndarray:
    return np.asarray(np.sum(a, axis=axis, dtype=np.uint64))


def reshape(i: int, a: np.ndarray, shape: Any) -> np.ndarray:
    return a.reshape(shape)


def transpose(i: int, a: np.ndarray, axes: Any) -> np.ndarray:
    return np.transpose(a, axes)


def concatenate(i: int, *parts_and_axis: Any) -> np.ndarray:
    *parts, axis = parts_and_axis
    return np.concatenate(parts, axis=axis)


def reconstruct_decode(own: np.ndarray, *others: np.ndarray, scale: int) -> np.ndarray:
    """At the receiver of a reveal: add all shares and decode with the public scale.

    A result whose magnitude reaches 2^62 (before scaling) has almost surely wrapped
    around the ring: raise rather than return garbage."""
    total = sharing.reconstruct([own, *others])
    signed = fixedpoint.to_signed(total)
    if signed.size and int(np.max(np.abs(signed.astype(np.float64)))) >= 2**62:
        raise OverflowError(
            "revealed value left the fixed-point range (|x| * scale >= 2^62): an "
            "intermediate result overflowed the 64-bit ring"
        )
    return signed.astype(np.float64) / float(scale)

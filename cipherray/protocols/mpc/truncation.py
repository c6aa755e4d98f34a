"""Truncation of additive shares: divide a shared fixed-point value by 2^d (or by k).

After a product of two values with f fractional bits the result carries 2f; the
truncation brings it back to f. Shares are signed int64 reinterpretations of uint64.

Two methods:

* `"local"` — SecureML local truncation (2 members only, 0 rounds, 0 bytes):
  member 0 computes s0 >> d (arithmetic shift), member 1 computes -((-s1) >> d).
  With x the signed ring value before truncation, the result is floor or ceil of
  x / 2^d (off by at most 1 ulp), except with probability exactly |x| / 2^64 per
  element: the two signed shares wrap when summed as integers iff member 0's share
  falls in an interval of length |x| (the shares are uniform). On failure the
  result is wrong by 2^(64-d): a large error. After a product of two values with f
  fractional bits, x = x_real * y_real * 2^(2f) and d = f, so a product fails with
  probability |x_real * y_real| * 2^(2f-64) and is then off by 2^(64-2f) (f = 16:
  2^-32 * |x_real * y_real|, off by 2^32). An exact multiple of 2^d is truncated
  exactly.

* `"wrap"` — the wrap-count ("CrypTen TTP") method for any number of members, with a
  dealer's wrap pair (r, theta_r). 1 round, (n-1) * 8 bytes per element, all to
  member 0:

  1. (r, theta_r) = provider.wrap_pair(shape): shares r_i and shares of theta_r with
     sum_i r_i = r + theta_r * 2^64 (signed, exact integers).
  2. Member i forms z_i = x_i + r_i (mod 2^64) and its local wrap beta_i in
     {-1, 0, 1}: x_i + r_i = z_i + beta_i * 2^64 exactly.
  3. Members 1..n-1 send z_i to member 0 (one round, concurrent messages).
  4. Member 0 counts the wraps theta_z among z_0..z_{n-1}.
  5. Then theta_x = theta_z + beta - theta_r - eta, where eta in {-1, 0, 1} is the
     signed overflow of x + r; eta is taken as 0. Member i's share of theta_x is
     beta_i - theta_r_i (+ theta_z at member 0), and member i outputs
     (x_i >> d) - theta_x_i * 2^(64-d).

  Error: when eta = 0 the sum of the members' floors lies in (x / 2^d - n, x / 2^d];
  member 0 adds floor(n / 2) ulp to centre it, so the result is within
  ceil(n / 2) ulp of x / 2^d (1 for 2 members, 2 for 3 and 4). eta != 0 (a large
  error of 2^(64-d)) happens with probability |x| / 2^64 (x + r overflows the signed
  range), the same failure probability as the local method.

`truncate(..., method="auto")` uses "local" for 2 members and "wrap" otherwise.

`divide_public(x, k)` divides by a public positive integer k with the same two
methods (member i takes floor(x_i / k); the wrap method subtracts
theta_x_i * floor(2^64 / k)): error below ceil(n/2) + n/2 ulp for the wrap method
(the centred floors, plus |theta_x| <= n/2 times the rounding of 2^64 / k) and 1 ulp
for the local method, with the same failure probability |x| / 2^64 (x the ring
value: the real value times its scale k * 2^f); a failure is off by about 2^64 / k.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cipherray.protocols.mpc import common, messages
from cipherray.protocols.mpc.context import MPCContext
from cipherray.protocols.mpc.engine import PerParty
from cipherray.protocols.mpc.providers import Provider, count_wraps

METHODS = ("auto", "local", "wrap")


def rounds(n: int, method: str = "auto") -> int:
    """Online rounds of one truncation for n members."""
    m = _resolve(n, method, None, check=False)
    return 0 if m == "local" else 1


def _resolve(n: int, method: str, provider: Provider | None, check: bool = True) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown truncation method {method!r}; expected one of {METHODS}")
    m = method
    if m == "auto":
        m = "local" if n == 2 else "wrap"
    if m == "local" and n != 2:
        raise ValueError(f"local truncation is only correct for 2 members, not {n}")
    if check and m == "wrap" and (provider is None or not provider.supports("wrap")):
        raise ValueError(
            "wrap truncation needs a provider of wrap pairs (DealerProvider, OTProvider)"
        )
    return m


# ------------------------------------------------------------ member-local steps


@common.member_step
def _local_div(i: int, s: np.ndarray, k: int) -> np.ndarray:
    """SecureML: member 0 floors its share / k, member 1 ceils (negate, floor, negate)."""
    sv = np.asarray(s, dtype=np.uint64).view(np.int64)
    if _is_pow2(k):
        d = np.int64(k.bit_length() - 1)
        out = sv >> d if i == 0 else -((-sv) >> d)
    else:
        out = np.floor_divide(sv, np.int64(k)) if i == 0 else -np.floor_divide(-sv, np.int64(k))
    return out.view(np.uint64)


@common.member_step
def _mask(i: int, x: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 2: z_i = x_i + r_i and beta_i (x_i + r_i = z_i + beta_i 2^64, signed)."""
    xs = np.asarray(x, dtype=np.uint64)
    z = xs + r
    return z, count_wraps([xs, r])


@common.member_step
def _count(z0: np.ndarray, *others: np.ndarray) -> np.ndarray:
    """Step 4 at member 0: theta_z."""
    return count_wraps([z0, *others])


@common.member_step
def _wrap_finish(
    i: int, x: np.ndarray, beta: np.ndarray, theta_r: np.ndarray, theta_z: Any, k: int, n: int
) -> np.ndarray:
    """Step 5: theta_x_i = beta_i - theta_r_i (+ theta_z at 0); output
    floor(x_i / k) - theta_x_i * floor(2^64 / k), member 0 adds floor(n / 2) ulp."""
    theta = beta.view(np.uint64) - theta_r
    if i == 0:
        theta = theta + np.asarray(theta_z, dtype=np.int64).view(np.uint64)
    xs = np.asarray(x, dtype=np.uint64).view(np.int64)
    if _is_pow2(k):
        q = (xs >> np.int64(k.bit_length() - 1)).view(np.uint64)
    else:
        q = np.floor_divide(xs, np.int64(k)).view(np.uint64)
    out = q - theta * np.uint64((1 << 64) // k)
    if i == 0:
        out = out + np.uint64(n // 2)
    return out


def _is_pow2(k: int) -> bool:
    return k > 0 and (k & (k - 1)) == 0


# ------------------------------------------------------------------ protocols


def divide_public(
    ctx: MPCContext, x: PerParty, k: int, *, shape: Any = None, method: str = "auto"
) -> PerParty:
    """Divide shared x (ring values) by a public integer 1 <= k < 2^62 (module docstring).

    Rounds: 0 ("local", 2 members) or 1 ("wrap"). Bytes: 0, or (n-1) * 8 per element.
    Steps are tagged "<tag>/..." (default tag "trunc")."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"divisor must be a public integer, got {type(k).__name__}")
    k = int(k)
    if not 1 <= k < 2**62:
        raise ValueError(f"divisor must be in [1, 2^62), got {k}")
    ctx = ctx.with_default_tag("trunc")
    shape = common.shape_of(ctx.engine, x, shape, "truncation input")
    if k == 1:
        return x
    if _resolve(ctx.n, method, ctx.provider) == "local":
        return ctx.engine.local(_local_div, x, k, step=ctx.step("local"))
    return _wrap_divide(ctx, x, k, shape)


def _wrap_divide(ctx: MPCContext, x: PerParty, k: int, shape: tuple) -> PerParty:
    """Steps 1-5 of the wrap method."""
    engine = ctx.engine
    # 1. wrap pair
    r, theta_r = ctx.provider.wrap_pair(engine, shape)
    # 2. mask and local wraps
    z, beta = engine.local(_mask, x, r, num_returns=2, step=ctx.step("mask"))
    # 3. z_i to member 0
    masked = messages.ring(shape, "masked share z")  # member 0 expects x's public shape
    sent = [
        engine.send(z[i], i, 0, step=ctx.step("reveal"), expect=masked) for i in range(1, ctx.n)
    ]
    # 4. member 0 counts wraps
    theta_z = engine.run_at(0, _count, z[0], *sent, step=ctx.step("count"))
    # 5. local finish
    theta_z_at_0 = common.only_at(engine, theta_z)
    return engine.local(
        _wrap_finish, x, beta, theta_r, theta_z_at_0, k, ctx.n, step=ctx.step("finish")
    )


def truncate(
    ctx: MPCContext, x: PerParty, bits: int, *, shape: Any = None, method: str = "auto"
) -> PerParty:
    """Divide shared x by 2^bits (arithmetic shift), see the module docstring.

    Rounds: 0 for 2 members ("local"), 1 for 3+ members ("wrap"; messages to member 0
    of 8 bytes per element from each of the other n-1 members)."""
    bits = int(bits)
    if not 0 <= bits < 62:
        raise ValueError(f"truncation bits must be in 0..61, got {bits}")
    return divide_public(ctx, x, 1 << bits, shape=shape, method=method)

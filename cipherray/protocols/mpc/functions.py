"""Non-linear functions on shared fixed-point values, each with a domain and error bound.

All bounds are absolute errors for the default f = 16 fractional bits and hold for
2 and 3 members (the truncation errors of 3+ members are included); they are
checked in the tests by sweeping the domain. Rounds are online rounds with
preprocessed randomness (R = binary.ltz_rounds(n) = 8 for 2 members).

============  ============  ============================  ==========  ==========
function      domain        max abs error                 rounds n=2  rounds n=3
============  ============  ============================  ==========  ==========
sigmoid       all reals     1e-3                          R + 1 = 9   11
tanh          all reals     2e-3                          9           11
exp           [-16, 4]      2e-3 * max(1, e^x)            6           13
reciprocal    [0.05, 1000]  1e-3 * max(1, 1/x)            R + 6 = 14  21
inv_sqrt      [0.05, 1000]  1e-3 * max(1, 1/sqrt(x))      R + 9 = 17  27
sqrt          [0.05, 1000]  2e-4  ([0, 0.05]: 5e-3)       R + 12 = 20 33
div_public    public k      see `div_public`              0           1
============  ============  ============================  ==========  ==========

(n = 3: R = 9 and every product adds a truncation round; consecutive wrap
truncations partly overlap because only member 0 waits for its count.)

Methods:

* sigmoid: piecewise-linear interpolation of the logistic function on 39 segments
  over [-8, 8] (knots placed so the chord error is <= 5e-4) and the constants 0 and
  1 outside (true error there <= 3.4e-4). Steps: (1) compare x with all 40 knots in
  ONE batched sign circuit (R rounds) giving integer bits b_j = [x >= k_j];
  (2) P_j = b_j * x by one batched Beaver product without truncation (1 round);
  (3) the result is sum_j a_j (P_j - P_{j+1}) + c_j (b_j - b_{j+1}) (+ b_K), a local
  linear form with public coefficients in which exactly one segment term is nonzero,
  so coefficient rounding does not accumulate; (4) one truncation by 2^f.
* exp: e^x = T(x / 16)^16 with T the degree-4 Taylor polynomial: powers y^2 then
  (y^3, y^4) batched (2 rounds), one truncation, then 4 squarings. Outside the
  domain: below -16 the result stays near 0 down to about -40 and is meaningless
  below (pass clamp=True to clamp x at -16 first, R + 1 more rounds); above 4 the
  relative error grows (~1e-2 at 8) and e^x overflows the ring beyond ~20.
* reciprocal / inv_sqrt: Newton-Raphson from an initial guess that is exact per
  half-octave: x is compared with 2^(j/2), j = -10..20 (one batched circuit,
  R rounds) and the guess is a public constant per bucket, chosen so that the
  initial relative error is <= 0.172; 3 iterations (error 0.172^8 ~ 8e-7 before
  rounding). reciprocal: y <- y (2 - x y), 2 products per iteration;
  inv_sqrt: y <- y (3 - (x y) y) / 2, 3 products per iteration. Outside the domain the
  iteration does not converge (x <= 0 gives garbage).
* sqrt: s = x * inv_sqrt(x), then one correction s + (x - s^2) inv_sqrt(x) / 2
  (sqrt(0) = 0 up to rounding).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cipherray.protocols.mpc import arithmetic, binary, common, compare, truncation
from cipherray.protocols.mpc.context import MPCContext
from cipherray.protocols.mpc.engine import PerParty

_SIGMOID_NEG_KNOTS = (
    -8.0, -6.05, -5.05, -4.4, -3.9, -3.5, -3.15, -2.85, -2.6, -2.35,
    -2.15, -1.95, -1.75, -1.55, -1.35, -1.15, -0.95, -0.75, -0.55, -0.3,
)  # fmt: skip
# symmetric, so that sigmoid(-x) = 1 - sigmoid(x) and sigmoid(0) = 1/2
SIGMOID_KNOTS = _SIGMOID_NEG_KNOTS + tuple(-k for k in reversed(_SIGMOID_NEG_KNOTS))
NEWTON_THRESHOLDS = tuple(2.0 ** (j / 2) for j in range(-10, 21))  # 2^-5 .. 2^10
INV_SQRT_THRESHOLDS = tuple(2.0 ** (j / 2) for j in range(-20, 21))  # 2^-10 .. 2^10
EXP_SQUARINGS = 4


def _logistic(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def sigmoid_plaintext(x: np.ndarray) -> np.ndarray:
    """The exact piecewise-linear approximation that `sigmoid` computes, in floating point
    (for plaintext references, e.g. the logistic-regression baseline)."""
    k = np.asarray(SIGMOID_KNOTS)
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= k[-1], 1.0, np.interp(x, k, _logistic(k), left=0.0))


# ------------------------------------------------------------ member-local steps


@common.member_step
def _minus_constants(i: int, x: np.ndarray, consts: np.ndarray) -> np.ndarray:
    """Rows x - c_j (member 0 subtracts the encoded constants)."""
    xs = np.broadcast_to(x, (len(consts),) + np.shape(x))
    if i != 0:
        return xs.copy()
    c = consts.reshape((-1,) + (1,) * np.ndim(x))
    return xs - c


@common.member_step
def _ge_from_lt(i: int, lt_bits: np.ndarray) -> np.ndarray:
    """b = 1 - [x < t] (member 0 holds the public 1)."""
    neg = np.negative(lt_bits.view(np.int64)).view(np.uint64)
    return neg + np.uint64(1) if i == 0 else neg


@common.member_step
def _linear_form(
    i: int, rows: np.ndarray, weights: np.ndarray, const: np.uint64, rows2: Any, weights2: Any
) -> np.ndarray:
    """const (member 0) + sum_j weights_j rows_j (+ sum_j weights2_j rows2_j), mod 2^64."""
    out = np.zeros(rows.shape[1:], dtype=np.uint64)
    for j in range(rows.shape[0]):
        out += weights[j] * rows[j]
    if rows2 is not None:
        for j in range(rows2.shape[0]):
            out += weights2[j] * rows2[j]
    if i == 0:
        out += const
    return out


@common.member_step
def _powers_prepare(i: int, y: np.ndarray, y2: np.ndarray) -> tuple:
    return np.stack([y, y2]), np.stack([y2, y2])


@common.member_step
def _taylor_rows(i: int, y: np.ndarray, y2: np.ndarray, y34: np.ndarray) -> np.ndarray:
    return np.stack([y, y2, y34[0], y34[1]])


@common.member_step
def _three_minus(i: int, a: np.ndarray, three: np.uint64) -> np.ndarray:
    neg = np.negative(a.view(np.int64)).view(np.uint64)
    return neg + three if i == 0 else neg


# ------------------------------------------------------------------ helpers


def _enc(values: Any, bits: int) -> np.ndarray:
    return (
        np.rint(np.asarray(values, dtype=np.float64) * 2.0**bits).astype(np.int64).view(np.uint64)
    )


def _ge_bits(ctx: MPCContext, x: PerParty, thresholds: Any, s: tuple) -> PerParty:
    """Integer bits b_j = [x >= t_j] for all thresholds in ONE batched circuit (R rounds),
    tagged "<tag>/cmp"."""
    engine = ctx.engine
    consts = common.encode_public(
        np.asarray(thresholds, dtype=np.float64), ctx.frac_bits, "threshold"
    )
    diffs = engine.local(_minus_constants, x, consts, step="local")
    lt_bits = binary.ltz_bit(ctx.scoped("cmp"), diffs, shape=(len(consts),) + s)
    return engine.local(_ge_from_lt, lt_bits, step="local")


def _bucket_guess(
    ctx: MPCContext, x: PerParty, s: tuple, thresholds: np.ndarray, values: np.ndarray
) -> PerParty:
    """values[0] below t_0, values[j+1] on [t_j, t_{j+1}): compare x with every threshold
    (R rounds), then a sum of telescoped encoded integers, exact (one rounding per
    value)."""
    bits = _ge_bits(ctx, x, thresholds, s)
    enc = _enc(values, ctx.frac_bits)
    weights = enc[1:] - enc[:-1]
    return ctx.engine.local(_linear_form, bits, weights, enc[0], None, None, step="local")


def _product(ctx: MPCContext, name: str, a: PerParty, b: PerParty, s: tuple) -> PerParty:
    """a * b of shape s, tagged "<tag>/<name>"."""
    return arithmetic.mul(ctx.scoped(name), a, b, x_shape=s, y_shape=s)


# ------------------------------------------------------------------ functions
#
# Every function takes (ctx, x, *, shape=None) plus its own options; the default tag
# is the function's name.


def piecewise_linear(
    ctx: MPCContext,
    x: PerParty,
    knots: Any,
    values: Any,
    *,
    left: float,
    right: float,
    shape: Any = None,
) -> PerParty:
    """The continuous piecewise-linear interpolant of (knots, values), constant `left`
    below knots[0] and `right` from knots[-1] on (see the sigmoid steps).

    Rounds: R + 1 + truncation rounds. Default tag "pwl"."""
    ctx = ctx.with_default_tag("pwl")
    f = ctx.frac_bits
    s = common.shape_of(ctx.engine, x, shape, "x")
    k = np.asarray(knots, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if k.ndim != 1 or k.shape != v.shape or len(k) < 2 or np.any(np.diff(k) <= 0):
        raise ValueError("knots must be increasing and match values in length (>= 2)")
    K = len(k)
    # (1) b_j = [x >= k_j]
    b = _ge_bits(ctx, x, k, s)
    # (2) P_j = b_j * x (exact, scale 2^f)
    p = arithmetic.mul(ctx.scoped("mul"), b, x, x_shape=(K,) + s, y_shape=s, truncate=False)
    # (3) segment j on [k_j, k_{j+1}): slope a_j, intercept c_j; at scale 2^(2f)
    slopes = np.diff(v) / np.diff(k)
    inter = v[:-1] - slopes * k[:-1]
    a_enc = np.concatenate([[0], _enc(slopes, f).view(np.int64), [0]]).astype(np.int64)
    c_full = np.concatenate([[left], inter, [right]])
    c_enc = _enc(c_full, 2 * f).view(np.int64)
    # telescoping: sum_j a_j (P_j - P_{j+1}) = sum_j (a_j - a_{j-1}) P_j, integer-exact
    wp = (a_enc[1:] - a_enc[:-1]).view(np.uint64)
    wb = (c_enc[1:] - c_enc[:-1]).view(np.uint64)
    z = ctx.engine.local(_linear_form, p, wp, c_enc[0].view(np.uint64), b, wb, step="local")
    # (4) back to scale 2^f
    return truncation.truncate(ctx.scoped("trunc"), z, f, shape=s)


def sigmoid(ctx: MPCContext, x: PerParty, *, shape: Any = None) -> PerParty:
    """Logistic function, piecewise linear: max abs error 1e-3 on all reals; R + 1 rounds
    (+1 truncation round for 3+ members). `sigmoid_plaintext` is its float twin."""
    k = np.asarray(SIGMOID_KNOTS)
    ctx = ctx.with_default_tag("sigmoid")
    return piecewise_linear(ctx, x, k, _logistic(k), left=0.0, right=1.0, shape=shape)


def tanh(ctx: MPCContext, x: PerParty, *, shape: Any = None) -> PerParty:
    """tanh(x) = 2 sigmoid(2x) - 1: max abs error 2e-3 on all reals; rounds as sigmoid."""
    k = np.asarray(SIGMOID_KNOTS) / 2.0
    values = 2.0 * _logistic(2.0 * k) - 1.0
    ctx = ctx.with_default_tag("tanh")
    return piecewise_linear(ctx, x, k, values, left=-1.0, right=1.0, shape=shape)


def exp(ctx: MPCContext, x: PerParty, *, shape: Any = None, clamp: bool = False) -> PerParty:
    """e^x on [-16, 4] with abs error <= 2e-3 * max(1, e^x) (module docstring).

    1. y = x / 16 (truncation by 4 bits).
    2. y^2; then (y^3, y^4) = (y * y^2, y^2 * y^2) in one batched product.
    3. T = 1 + y + y^2/2 + y^3/6 + y^4/24 (local, public coefficients, one truncation).
    4. Square T four times.
    Rounds: 2 + 4 = 6 for 2 members (+ truncation rounds for 3+: 1 + 2 + 1 + 4);
    clamp=True adds R + 1 (x -> max(x, -16))."""
    ctx = ctx.with_default_tag("exp")
    f = ctx.frac_bits
    engine = ctx.engine
    s = common.shape_of(engine, x, shape, "x")
    if clamp:
        x = compare.maximum(ctx.scoped("clamp"), x, -16.0, x_shape=s)
    # 1
    y = truncation.truncate(ctx.scoped("scale"), x, EXP_SQUARINGS, shape=s)
    # 2
    y2 = arithmetic.square(ctx.scoped("pow2"), y, shape=s)
    left, right = engine.local(_powers_prepare, y, y2, num_returns=2, step="local")
    y34 = arithmetic.mul(ctx.scoped("pow34"), left, right, x_shape=(2,) + s, y_shape=(2,) + s)
    # 3
    rows = engine.local(_taylor_rows, y, y2, y34, step="local")
    coef = _enc([1.0, 1 / 2, 1 / 6, 1 / 24], f)
    t = engine.local(_linear_form, rows, coef, np.uint64(1 << (2 * f)), None, None, step="local")
    t = truncation.truncate(ctx.scoped("taylor"), t, f, shape=s)
    # 4
    for j in range(EXP_SQUARINGS):
        t = arithmetic.square(ctx.scoped(f"sq{j}"), t, shape=s)
    return t


def reciprocal(ctx: MPCContext, x: PerParty, *, shape: Any = None, iterations: int = 3) -> PerParty:
    """1 / x on [0.05, 1000], abs error <= 1e-3 * max(1, 1/x): Newton-Raphson
    y <- y (2 - x y) from a per-half-octave guess. Rounds: R + 2 * iterations."""
    ctx = ctx.with_default_tag("reciprocal")
    s = common.shape_of(ctx.engine, x, shape, "x")
    t = np.asarray(NEWTON_THRESHOLDS)
    c = 2.0 / (1.0 + np.sqrt(2.0))  # x y0 in [c, c sqrt 2): relative error <= 0.172
    y = _bucket_guess(ctx, x, s, t, np.concatenate([[c / t[0]], c / t]))
    two = np.uint64(2 << ctx.frac_bits)
    for j in range(iterations):
        xy = _product(ctx, f"it{j}a", x, y, s)
        e = ctx.engine.local(_three_minus, xy, two, step="local")
        y = _product(ctx, f"it{j}b", y, e, s)
    return y


def inv_sqrt(ctx: MPCContext, x: PerParty, *, shape: Any = None, iterations: int = 3) -> PerParty:
    """1 / sqrt(x) on [0.05, 1000], abs error <= 1e-3 * max(1, 1/sqrt(x)): Newton
    y <- y (3 - x y^2) / 2 (the / 2 is folded into the truncation). Rounds: R + 3 * it."""
    ctx = ctx.with_default_tag("inv_sqrt")
    f = ctx.frac_bits
    s = common.shape_of(ctx.engine, x, shape, "x")
    t = np.asarray(INV_SQRT_THRESHOLDS)
    c = np.sqrt(2.0 / (1.0 + np.sqrt(2.0)))  # x y0^2 in [c^2, c^2 sqrt 2)
    y = _bucket_guess(ctx, x, s, t, np.concatenate([[c / np.sqrt(t[0])], c / np.sqrt(t)]))
    three = np.uint64(3 << f)
    for j in range(iterations):
        # (x y) y, not x (y^2): y^2 has few significant bits when x is large
        xy2 = _product(ctx, f"it{j}b", _product(ctx, f"it{j}a", x, y, s), y, s)
        e = ctx.engine.local(_three_minus, xy2, three, step="local")
        last = ctx.scoped(f"it{j}c")
        z = arithmetic.mul(last, y, e, x_shape=s, y_shape=s, truncate=False)
        y = truncation.truncate(last.scoped("trunc"), z, f + 1, shape=s)
    return y


def sqrt(ctx: MPCContext, x: PerParty, *, shape: Any = None) -> PerParty:
    """sqrt(x): abs error <= 2e-4 on [0.05, 1000], <= 5e-3 on [0, 0.05]. Rounds: R + 12.

    1. y = inv_sqrt(x); s = x * y (its error is x times that of y: large for big x).
    2. One correction s' = s + (x - s^2) * y / 2, which squares the relative errors of
       s and y (s^2, then the product truncated by 2^(f+1))."""
    ctx = ctx.with_default_tag("sqrt")
    sh = common.shape_of(ctx.engine, x, shape, "x")
    y = inv_sqrt(ctx.scoped("inv"), x, shape=sh)
    s = _product(ctx, "mul", x, y, sh)
    s2 = arithmetic.square(ctx.scoped("sq"), s, shape=sh)
    d = common.lin_sub(ctx.engine, x, s2)
    corr = ctx.scoped("corr")
    c = arithmetic.mul(corr, d, y, x_shape=sh, y_shape=sh, truncate=False)
    c = truncation.truncate(corr.scoped("trunc"), c, ctx.frac_bits + 1, shape=sh)
    return common.lin_add(ctx.engine, s, c)


def div_public(ctx: MPCContext, x: PerParty, k: Any, *, shape: Any = None) -> PerParty:
    """x / k for a public nonzero k: a positive integer uses `truncation.divide_public`
    (error within n + n/2 ulp, 0 rounds for 2 members, 1 for 3+); any other k
    multiplies by the encoded 1/k (`arithmetic.mul_public`). Default tag "div_public"."""
    ctx = ctx.with_default_tag("div_public")
    arr = common.fixedpoint.check_numeric(k, "public divisor")
    if np.any(arr == 0):
        raise ZeroDivisionError("division of a shared value by zero")
    if arr.ndim == 0 and np.issubdtype(arr.dtype, np.integer) and int(arr) > 0:
        return truncation.divide_public(ctx, x, int(arr), shape=shape)
    return arithmetic.mul_public(ctx, x, 1.0 / arr.astype(np.float64), x_shape=shape)

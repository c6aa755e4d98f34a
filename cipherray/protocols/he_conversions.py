"""Conversions between Paillier ciphertexts and additive shares over Z_2^64.

Both run between a *holder* h (an evaluator that holds ciphertexts under the
keyholder's key) and the *keyholder* k (which holds the private key); both must be
members of the MPC location. The fixed-point convention on the shares side is
value * 2^f (f fractional bits); on the Paillier side a mantissa m with base-16
exponent e means m * 16^e (see `paillier.encoding`).

H2A — `EncryptedRef.to(mpc)` (statistically hiding, exact):

1. h draws a random mask R per element, R uniform in [0, 2^(b + 40)) where b bounds
   the mantissas of values in the fixed-point range (|value| < 2^(62-f)); when the
   shares need fewer fractional digits than the ciphertext carries (4e + f < 0), R is
   a multiple of D = 2^-(4e+f) so that rounding commutes with the mask;
2. h computes Enc(m + R) homomorphically and sends it to k (one message);
3. k decrypts v = m + R over the integers (n is far larger than any v, so nothing
   wraps) and keeps round(v * 2^(4e+f)) mod 2^64 as its share;
4. h keeps -(R * 2^(4e+f)) mod 2^64 (exact, R being a multiple of D).
The shares add to round(m * 16^e * 2^f) mod 2^64; k sees m + R, which hides m up to
statistical distance 2^-40.

A2H — `SharedRef.to(he)` (perfectly hiding; probabilistic correctness):

1. h draws r uniform in Z_2^64 and adds it to its share;
2. every member except k sends its share to k (one round): k learns
   z = x + r mod 2^64, which is uniform and so reveals nothing;
3. k encrypts z (mantissa z at exponent -f/4) and sends Enc(z) to h (one message);
4. h computes Enc(z - r) = Enc(x) and re-randomises it.
Step 4 is exact unless x + r wrapped around the ring, which happens with probability
|x * 2^f| / 2^64 per element (< 2^-18 for |x| < 2^30 with f = 16, the same order as
the two-party truncation failure); a wrapped element decrypts to a value beyond the
fixed-point range and is reported as overflow on decryption.
"""

from __future__ import annotations

import os

import gmpy2
import numpy as np
from gmpy2 import mpz

from cipherray.protocols.paillier import CipherArray
from cipherray.protocols.paillier.arith import _add_plain_raw, _decrypt_raw
from cipherray.protocols.paillier.cipher_array import _objarray

SIGMA = 40  # statistical security of the H2A mask, bits


def _random_ints(count: int, bits: int) -> list[mpz]:
    nbytes = (bits + 7) // 8
    buf = os.urandom(nbytes * count)
    mask = (1 << bits) - 1
    return [
        mpz(int.from_bytes(buf[i * nbytes : (i + 1) * nbytes], "big") & mask) for i in range(count)
    ]


def _shift(e: int, f: int) -> int:
    """The power of two that maps mantissas at base-16 exponent e to f fractional bits."""
    return 4 * e + f


def h2a_mask(c: CipherArray, frac_bits: int) -> tuple[CipherArray, np.ndarray]:
    """Steps 1, 2 and 4 at the holder: (Enc(m + R) for the keyholder, own share)."""
    pk = c.public_key
    s = _shift(c.exponent, frac_bits)
    mant_bound_bits = 62 - frac_bits - 4 * c.exponent + 1  # |m| < 2^this for in-range values
    flat = [mpz(x) for x in c.ciphertexts().ravel()]
    if s >= 0:
        r = _random_ints(len(flat), mant_bound_bits + SIGMA)
        share = [(-(ri << s)) & 0xFFFFFFFFFFFFFFFF for ri in r]
        masks = r
    else:
        r1 = _random_ints(len(flat), max(mant_bound_bits + SIGMA + s, 64 + SIGMA))
        masks = [ri << (-s) for ri in r1]
        share = [(-ri) & 0xFFFFFFFFFFFFFFFF for ri in r1]
    masked = _add_plain_raw(flat, masks, pk.n, pk.nsquare)
    out = CipherArray.from_ciphertexts(pk, _objarray(masked, c.shape), c.exponent, c.kind)
    own = np.array([int(v) for v in share], dtype=np.uint64).reshape(c.shape)
    return out.rerandomize(), own


def h2a_unmask(sk, masked: CipherArray, frac_bits: int) -> np.ndarray:
    """Step 3 at the keyholder: decrypt m + R and keep round(v * 2^(4e+f)) mod 2^64."""
    pk = sk.public_key
    if masked.public_key != pk:
        raise ValueError("ciphertexts are under a different key than the keyholder's")
    s = _shift(masked.exponent, frac_bits)
    n, half = pk.n, pk.n // 2
    raw = _decrypt_raw(sk, [mpz(x) for x in masked.ciphertexts().ravel()])
    out = []
    for v in raw:
        v = v - n if v > half else v
        if s >= 0:
            y = v << s
        else:
            d = mpz(1) << (-s)
            y = gmpy2.f_div(v + (d >> 1), d)  # round half up
        out.append(int(y) & 0xFFFFFFFFFFFFFFFF)
    return np.array(out, dtype=np.uint64).reshape(masked.shape)


def a2h_mask(share: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 1 at the holder: (share + r, r) with r uniform in Z_2^64 from the CSPRNG."""
    from cipherray.protocols import prg

    r = prg.fresh_ring(np.shape(share))
    return np.add(share, r, dtype=np.uint64), r


def a2h_encrypt(pk, z_parts: list[np.ndarray], frac_bits: int) -> CipherArray:
    """Steps 2-3 at the keyholder: z = sum of what it received plus its own share;
    encrypt z as a mantissa at exponent -f/4."""
    if frac_bits % 4:
        raise ValueError("HE conversion needs a multiple of 4 fractional bits (base 16)")
    z = z_parts[0].astype(np.uint64, copy=True)
    for p in z_parts[1:]:
        z += p.astype(np.uint64)
    ints = np.array([int(v) for v in z.ravel()], dtype=object).reshape(z.shape)
    enc = pk.encrypt(ints)  # mantissas z at exponent 0 ...
    # ... relabelled as exponent -f/4: the mantissa z means z * 2^-f
    return CipherArray.from_ciphertexts(pk, enc.ciphertexts(), -(frac_bits // 4), "float")


def a2h_unmask(c: CipherArray, r: np.ndarray, frac_bits: int) -> CipherArray:
    """Step 4 at the holder: Enc(z) - r as mantissas, then re-randomise."""
    pk = c.public_key
    flat = [mpz(x) for x in c.ciphertexts().ravel()]
    neg_r = [(-int(v)) % int(pk.n) for v in np.asarray(r, dtype=np.uint64).ravel()]
    out = _add_plain_raw(flat, [mpz(v) for v in neg_r], pk.n, pk.nsquare)
    res = CipherArray.from_ciphertexts(pk, _objarray(out, c.shape), -(frac_bits // 4), "float")
    return res.rerandomize()


# -- what a receiver expects of an HE message (run before any step uses it; see
#    `protocols.mpc.messages`): ValueError naming what is wrong
def _key_of(value: object) -> object:
    from cipherray.protocols.paillier.packing import PackedCipherArray

    if isinstance(value, CipherArray):
        return value.public_key
    if isinstance(value, PackedCipherArray):
        return value.cipher.public_key
    raise ValueError(f"expected Paillier ciphertexts, not {type(value).__name__}")


def check_ciphertexts(value: object) -> None:
    """Ciphertexts (a `CipherArray` or a packed one)."""
    _key_of(value)


def check_under_key(value: object, own: object) -> None:
    """Ciphertexts under the key of `own`, the receiver's private key (H2A's masked
    values, ciphertexts sent to the keyholder to decrypt)."""
    if _key_of(value) != own.public_key:
        raise ValueError("ciphertexts under a different key than the keyholder's")


def check_like_mask(value: object, own: np.ndarray) -> None:
    """A2H's returned ciphertexts: a `CipherArray` of the shape of the holder's mask."""
    if not isinstance(value, CipherArray):
        raise ValueError(f"expected a CipherArray, not {type(value).__name__}")
    if tuple(value.shape) != tuple(np.shape(own)):
        raise ValueError(
            f"expected ciphertexts of shape {tuple(np.shape(own))}, not {tuple(value.shape)}"
        )


def check_public_key(value: object) -> None:
    """A Paillier public key."""
    from cipherray.protocols.paillier import PublicKey

    if not isinstance(value, PublicKey):
        raise ValueError(f"expected a Paillier public key, not {type(value).__name__}")

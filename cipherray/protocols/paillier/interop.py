"""Interoperability with python-paillier (``phe``).

phe uses g = n+1, base-16 ``EncodedNumber`` and max_int = n//3 - 1, the same
conventions as this package, so a ciphertext integer with its exponent means the same
number in both. ``from_phe`` accepts an ``EncryptedNumber`` or a (nested) list of them
and aligns all exponents to the lowest (phe's ``decrease_exponent_to``); ``to_phe``
returns a nested list of ``EncryptedNumber`` matching the array's shape (a single
``EncryptedNumber`` for a 0-d array).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gmpy2 import mpz

from . import arith
from . import encoding as enc
from .cipher_array import CipherArray, _objarray, validate_ciphertexts
from .errors import KeyMismatchError
from .keys import PublicKey


def from_phe(encrypted: Any, public_key: PublicKey | None = None) -> CipherArray:
    """CipherArray from phe EncryptedNumber(s). ``public_key``: use this key object
    (its n must match); default: imported from the first number's phe key."""
    arr = np.empty((), dtype=object)
    if isinstance(encrypted, list | tuple | np.ndarray):
        arr = np.array(encrypted, dtype=object)
    else:
        arr[()] = encrypted
    items = arr.ravel().tolist()
    if not items:
        raise ValueError("no EncryptedNumbers given")
    n0 = int(items[0].public_key.n)
    if public_key is None:
        public_key = PublicKey.from_phe(items[0].public_key)
    for e in items:
        if not hasattr(e, "ciphertext") or not hasattr(e, "exponent"):
            raise TypeError("from_phe expects phe.EncryptedNumber objects")
        if int(e.public_key.n) != n0 or n0 != public_key.n:
            raise KeyMismatchError("EncryptedNumbers were produced under different keys")
    exps = [int(e.exponent) for e in items]
    exp = min(exps)
    cts = [mpz(e.ciphertext(be_secure=False)) for e in items]
    validate_ciphertexts(public_key, cts)
    nsq = public_key.nsquare
    if any(x != exp for x in exps):
        cts = [
            c if x == exp else arith._pow_many([c], enc.BASE ** (x - exp), nsq)[0]
            for c, x in zip(cts, exps)
        ]
    kind = enc.FLOAT if exp < 0 else enc.INT
    return CipherArray._wrap(public_key, _objarray(cts, arr.shape), exp, kind)


def to_phe(c: CipherArray) -> Any:
    """Nested list (shape of ``c``) of phe EncryptedNumber; 0-d gives one number."""
    import phe

    ppk = c.public_key.to_phe()
    flat = [phe.EncryptedNumber(ppk, int(x), c.exponent) for x in c._data.ravel().tolist()]
    if c.ndim == 0:
        return flat[0]
    return _objarray(flat, c.shape).tolist()

"""CipherArray: an n-d array of Paillier ciphertexts sharing one public key, one base-16
exponent and one kind ("int" or "float").

Storage is a NumPy object array of gmpy2 ``mpz`` (no Python object per number beyond
the mpz itself); every operation runs one tight loop over flat lists through the raw
kernels in :mod:`.arith`. On the GPU path, results of encryption, ``c + c``, ``c + x``,
``c * k``, ``c.sum()``, ``rerandomize()``, the matrix products of a 1-d ``c`` and
``from_bytes`` stay on the device as limbs (:mod:`.device`) until something needs the
integers (indexing, a CPU operation); decryption and ``to_bytes`` read the limbs.

Supported: ``c + c``, ``c + plain``, ``plain + c``, ``-c``,
``c - c``, ``c - plain``, ``plain - c``, ``c * plain``, ``c / plain``, ``c.sum(axis)``,
``c @ X``, ``X @ c``, indexing/slicing, ``reshape``, ``T``, ``concatenate``,
``to_bytes`` / ``from_bytes``, pickle, ``to_phe`` / ``from_phe``, ``rerandomize``.
Ciphertext-ciphertext products raise TypeError (additively homomorphic only).

Results of homomorphic operations are not re-randomised (like phe); call
``rerandomize()`` before sending a result to the key holder if its randomness must not
reveal how it was computed.

Wire format (``to_bytes``), all big-endian::

    b"CRPA" | u8 version (1) | u8 kind (0 int, 1 float) | i32 exponent |
    16-byte key fingerprint | u32 width W (bytes of n^2) | u8 ndim | ndim x u64 shape |
    size x W-byte ciphertexts (C order)
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from typing import Any

import gmpy2
import numpy as np
from gmpy2 import mpz

from . import arith, device
from . import backend as _backend
from . import encoding as enc
from .errors import HOMOMORPHIC_ONLY, KeyMismatchError
from .keys import PublicKey
from .randomness import fresh_randomness

_MAGIC = b"CRPA"
_VERSION = 1
_HEADER = struct.Struct(">4sBBi16sIB")


def serialised_nbytes(bits: int, shape: tuple) -> int:
    """Bytes of `to_bytes` for ciphertexts of `shape` under a key whose n has `bits` bits
    (n^2 then has 2 bits - 1 or 2 bits bits: the same whole bytes)."""
    count = 1
    for d in shape:
        count *= int(d)
    return _HEADER.size + 8 * len(shape) + count * ((2 * int(bits) + 7) // 8)


def _wire_width(pk: PublicKey) -> int:
    """Bytes of one serialised ciphertext: those of n^2."""
    return (pk.nsquare.bit_length() + 7) // 8


def _objarray(values: list, shape: tuple) -> np.ndarray:
    # np.fromiter: assigning a list of mpz into an object array probes each as a sequence
    return np.fromiter(values, dtype=object, count=len(values)).reshape(shape)


def validate_ciphertexts(pk: PublicKey, flat: list) -> None:
    """Reject values outside [1, n^2) or not invertible mod n^2 (gcd with n != 1)."""
    nsq, n = pk.nsquare, pk.n
    for i, c in enumerate(flat):
        if not (0 < c < nsq):
            raise ValueError(f"ciphertext #{i} is out of range [1, n^2)")
    prod = mpz(1)
    for c in flat:
        prod = prod * c % n
    if gmpy2.gcd(prod, n) != 1:
        for i, c in enumerate(flat):
            if gmpy2.gcd(c, n) != 1:
                raise ValueError(f"ciphertext #{i} is not invertible modulo n^2")


class CipherArray:
    """Array of Paillier ciphertexts (see module docstring)."""

    # _obj: object array of mpz, or None while only the device limbs (_dev) exist
    __slots__ = ("_pk", "_obj", "_dev", "_shape", "exponent", "kind")
    __array_ufunc__ = None  # make numpy defer to our reflected operators

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(
            "create a CipherArray with PublicKey.encrypt, CipherArray.from_ciphertexts, "
            "from_bytes or from_phe"
        )

    @classmethod
    def _wrap(cls, pk: PublicKey, data: np.ndarray, exponent: int, kind: str) -> CipherArray:
        self = object.__new__(cls)
        self._pk, self._obj, self._dev, self._shape = pk, data, None, data.shape
        self.exponent, self.kind = int(exponent), kind
        return self

    @classmethod
    def _wrap_device(
        cls, pk: PublicKey, dev: device.DeviceCiphertexts, shape: tuple, exponent: int, kind: str
    ) -> CipherArray:
        self = object.__new__(cls)
        self._pk, self._obj, self._dev, self._shape = pk, None, dev, tuple(shape)
        self.exponent, self.kind = int(exponent), kind
        return self

    @property
    def _data(self) -> np.ndarray:
        """The ciphertexts as an object array of mpz (fetched from the device once if they
        only live there)."""
        if self._obj is None:
            self._obj = _objarray(self._dev.to_mpz(), self._shape)
        return self._obj

    def _device(self) -> device.DeviceCiphertexts:
        """The ciphertexts as device limbs (uploaded once if they only live on the host)."""
        if self._dev is None:
            self._dev = device.upload(self._pk, self._obj.ravel().tolist())
        return self._dev

    @property
    def on_device(self) -> bool:
        """Whether the ciphertexts are held on the GPU (as limbs)."""
        return self._dev is not None

    @classmethod
    def from_ciphertexts(
        cls, public_key: PublicKey, ciphertexts: Any, exponent: int = 0, kind: str = "int"
    ) -> CipherArray:
        """Wrap raw ciphertext integers (validated) with an exponent and kind."""
        arr = np.asarray(ciphertexts, dtype=object)
        flat = [mpz(int(c)) for c in arr.ravel()]
        validate_ciphertexts(public_key, flat)
        if kind not in (enc.INT, enc.FLOAT):
            raise ValueError("kind must be 'int' or 'float'")
        return cls._wrap(public_key, _objarray(flat, arr.shape), exponent, kind)

    # -- array protocol -------------------------------------------------------------
    @property
    def public_key(self) -> PublicKey:
        return self._pk

    @property
    def shape(self) -> tuple:
        return self._shape

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def size(self) -> int:
        return math.prod(self._shape)

    @property
    def nbytes(self) -> int:
        """Bytes on the wire: the length of :meth:`to_bytes` (header and ciphertexts),
        computed without serialising (the runtime's message ledger counts this)."""
        return _HEADER.size + 8 * self.ndim + self.size * _wire_width(self._pk)

    def __len__(self) -> int:
        if not self._shape:
            raise TypeError("len() of a 0-d CipherArray")
        return self._shape[0]

    def __iter__(self) -> Iterator[CipherArray]:
        for i in range(len(self)):
            yield self[i]

    def ciphertexts(self) -> np.ndarray:
        """A copy of the raw ciphertexts (object array of mpz)."""
        return self._data.copy()

    def _like(self, data: np.ndarray, exponent: int | None = None, kind: str | None = None):
        return CipherArray._wrap(
            self._pk, data, self.exponent if exponent is None else exponent, kind or self.kind
        )

    def __getitem__(self, idx: Any) -> CipherArray:
        if isinstance(idx, CipherArray):
            raise TypeError("cannot index with a CipherArray")
        res = self._data[idx]
        if not isinstance(res, np.ndarray):
            res = _objarray([res], ())
        return self._like(res)

    def reshape(self, *shape: Any) -> CipherArray:
        if self._obj is None:  # C order is the limbs' order: no fetch
            new = np.empty(self._shape, dtype=np.uint8).reshape(*shape).shape
            return CipherArray._wrap_device(self._pk, self._dev, new, self.exponent, self.kind)
        return self._like(self._data.reshape(*shape))

    def ravel(self) -> CipherArray:
        return self.reshape(-1)

    @property
    def T(self) -> CipherArray:
        return self._like(self._data.T)

    def copy(self) -> CipherArray:
        return self._like(self._data.copy())

    def __repr__(self) -> str:
        return (
            f"CipherArray(shape={self.shape}, kind={self.kind}, exponent={self.exponent}, "
            f"key={self._pk.fingerprint.hex()[:12]})"
        )

    # -- helpers --------------------------------------------------------------------
    def _check_key(self, other: CipherArray) -> None:
        if other._pk != self._pk:
            raise KeyMismatchError(
                "ciphertexts were produced under different Paillier public keys "
                f"({self._pk.fingerprint.hex()[:12]} vs {other._pk.fingerprint.hex()[:12]})"
            )

    def _at_exponent(self, exponent: int) -> np.ndarray:
        """Data re-expressed at a lower-or-equal exponent (multiply by 16^diff)."""
        diff = self.exponent - exponent
        if diff < 0:
            raise ValueError("cannot raise an exponent")
        if diff == 0:
            return self._data
        flat = arith._pow_many(self._data.ravel().tolist(), enc.BASE**diff, self._pk.nsquare)
        return _objarray(flat, self.shape)

    def decrease_exponent_to(self, exponent: int) -> CipherArray:
        """Same values at a lower base-16 exponent (like phe's method)."""
        return self._like(self._at_exponent(exponent), exponent=exponent)

    @staticmethod
    def _plain(other: Any) -> np.ndarray:
        if isinstance(other, list | tuple | int | float | np.generic | bool | np.ndarray):
            return np.asarray(other)
        if type(other).__name__ == "mpz":
            return np.asarray(int(other), dtype=object)
        raise TypeError(f"unsupported operand type {type(other).__name__}")

    # -- addition -------------------------------------------------------------------
    def __add__(self, other: Any) -> CipherArray:
        pk = self._pk
        if isinstance(other, CipherArray):
            self._check_key(other)
            if self._add_on_device(other):
                kind = enc.FLOAT if enc.FLOAT in (self.kind, other.kind) else enc.INT
                dev = device.add(self._device(), other._device())
                return CipherArray._wrap_device(pk, dev, self.shape, self.exponent, kind)
            exp = min(self.exponent, other.exponent)
            a, b = self._at_exponent(exp), other._at_exponent(exp)
            if a.shape != b.shape:
                a, b = np.broadcast_arrays(a, b)
            kind = enc.FLOAT if enc.FLOAT in (self.kind, other.kind) else enc.INT
            flat = arith._add_raw(a.ravel().tolist(), b.ravel().tolist(), pk.nsquare)
            return CipherArray._wrap(pk, _objarray(flat, a.shape), exp, kind)
        if hasattr(other, "ciphertext") and hasattr(other, "exponent"):
            raise TypeError("convert phe EncryptedNumbers with CipherArray.from_phe first")
        plain = self._plain(other)
        pkind = enc.classify(plain)
        if pkind == enc.FLOAT:
            exp = min(self.exponent, enc.precision_to_exponent(None))
        else:
            exp = min(self.exponent, 0)
        kind = enc.FLOAT if enc.FLOAT in (self.kind, pkind) else enc.INT
        on_gpu = (
            exp == self.exponent
            and np.broadcast_shapes(self.shape, plain.shape) == self.shape
            and self.on_device
            and _backend.use_gpu(self.size)
        )
        if on_gpu:
            m64, _, _ = enc.int64_mantissas(pk, plain, exponent=exp)
            if m64 is not None:  # plaintexts straight from the array to the device
                mb64 = np.broadcast_to(m64.reshape(plain.shape), self.shape).ravel()
                dev = device.add_plain_int64(self._dev, mb64)
                return CipherArray._wrap_device(pk, dev, self.shape, exp, kind)
        m, exp, _ = enc.encode(pk, plain, exponent=exp)
        m_arr = _objarray(m, plain.shape)
        if on_gpu:
            mb = np.broadcast_to(m_arr, self.shape).ravel().tolist()
            dev = device.add_plain(self._dev, mb)
            return CipherArray._wrap_device(pk, dev, self.shape, exp, kind)
        a, b = np.broadcast_arrays(self._at_exponent(exp), m_arr)
        flat = arith._add_plain_raw(a.ravel().tolist(), b.ravel().tolist(), pk.n, pk.nsquare)
        return CipherArray._wrap(pk, _objarray(flat, a.shape), exp, kind)

    __radd__ = __add__

    def _add_on_device(self, other: CipherArray) -> bool:
        # "auto" keeps additions of host data on the CPU (one multiplication each is cheaper
        # than the conversions); data already on the device stays there
        if self.exponent != other.exponent or self.shape != other.shape:
            return False
        if not (self.on_device or other.on_device or _backend.get_backend() == "gpu"):
            return False
        return _backend.use_gpu(self.size)

    def __neg__(self) -> CipherArray:
        flat = arith._batch_invert(self._data.ravel().tolist(), self._pk.nsquare)
        return self._like(_objarray(flat, self.shape))

    def __sub__(self, other: Any) -> CipherArray:
        if isinstance(other, CipherArray):
            self._check_key(other)
            return self + (-other)
        return self + self._negate_plain(other)

    def __rsub__(self, other: Any) -> CipherArray:
        return (-self) + other

    @classmethod
    def _negate_plain(cls, other: Any) -> np.ndarray:
        plain = cls._plain(other)
        if plain.dtype.kind in "bu":
            plain = plain.astype(object)
        if plain.dtype.kind == "i" and plain.size and plain.min() == np.iinfo(plain.dtype).min:
            plain = plain.astype(object)
        return -plain

    # -- multiplication by plaintexts -----------------------------------------------
    def __mul__(self, other: Any) -> CipherArray:
        if isinstance(other, CipherArray):
            raise TypeError(HOMOMORPHIC_ONLY)
        plain = self._plain(other)
        return self._mul_plain(plain, None)

    __rmul__ = __mul__

    def mul(self, plain: Any, precision: float | None = None) -> CipherArray:
        """Elementwise product with a plaintext (broadcast), floats encoded at
        ``precision`` (default 2^-32)."""
        if isinstance(plain, CipherArray):
            raise TypeError(HOMOMORPHIC_ONLY)
        return self._mul_plain(self._plain(plain), precision)

    def _mul_plain(self, plain: np.ndarray, precision: float | None) -> CipherArray:
        pk = self._pk
        on_gpu = np.broadcast_shapes(self.shape, plain.shape) == self.shape and _backend.use_gpu(
            self.size
        )
        if on_gpu:
            k64, kexp, pkind = enc.int64_mantissas(pk, plain, precision)
            if k64 is not None:  # scalars straight from the array to the device
                kind = enc.FLOAT if enc.FLOAT in (self.kind, pkind) else enc.INT
                kb = np.broadcast_to(k64.reshape(plain.shape), self.shape).ravel()
                dev = device.scalar_mul(self._device(), kb)
                return CipherArray._wrap_device(pk, dev, self.shape, self.exponent + kexp, kind)
        k, kexp, pkind = enc.signed_mantissas(pk, plain, precision)
        k_arr = _objarray(k, plain.shape)
        kind = enc.FLOAT if enc.FLOAT in (self.kind, pkind) else enc.INT
        if on_gpu:
            kb = np.broadcast_to(k_arr, self.shape).ravel().tolist()
            if _backend.fits_int64(kb):
                dev = device.scalar_mul(self._device(), kb)
                return CipherArray._wrap_device(pk, dev, self.shape, self.exponent + kexp, kind)
        a, b = np.broadcast_arrays(self._data, k_arr)
        flat = arith._scalar_mul_raw(a.ravel().tolist(), b.ravel().tolist(), pk.nsquare)
        return CipherArray._wrap(pk, _objarray(flat, a.shape), self.exponent + kexp, kind)

    def __truediv__(self, other: Any) -> CipherArray:
        if isinstance(other, CipherArray):
            raise TypeError(HOMOMORPHIC_ONLY)
        plain = self._plain(other)
        return self._mul_plain(1.0 / plain.astype(np.float64), None)

    def __rtruediv__(self, other: Any):
        raise TypeError(HOMOMORPHIC_ONLY)

    def __pow__(self, other: Any):
        raise TypeError(HOMOMORPHIC_ONLY)

    __rpow__ = __pow__
    __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __rtruediv__

    # -- reductions and matrix products ---------------------------------------------
    def sum(self, axis: int | tuple | None = None) -> CipherArray:
        """Homomorphic sum over ``axis`` (all elements when None)."""
        nsq = self._pk.nsquare
        if axis is None and self.on_device and _backend.use_gpu(self.size):
            dev = device.product(self._dev)
            return CipherArray._wrap_device(self._pk, dev, (), self.exponent, self.kind)
        if axis is None:
            return self._like(_objarray([arith._prod_raw(self._data.ravel().tolist(), nsq)], ()))
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        axes = tuple(a % self.ndim for a in axes)
        keep = [a for a in range(self.ndim) if a not in axes]
        moved = np.transpose(self._data, keep + list(axes))
        out_shape = tuple(self.shape[a] for a in keep)
        rows = moved.reshape(int(np.prod(out_shape, dtype=np.int64)), -1)
        flat = [arith._prod_raw(r.tolist(), nsq) for r in rows]
        return self._like(_objarray(flat, out_shape))

    def _matmul_data(self, plain: np.ndarray, precision: float | None, transpose: bool):
        pk = self._pk
        on_gpu = self.ndim == 1 and plain.ndim in (1, 2) and _backend.use_gpu(self.size)
        if on_gpu:  # int64 mantissas straight from the array to the device
            p2 = self._matvec_layout(plain, transpose)  # before the copy: at most one
            k64, kexp, pkind = enc.int64_mantissas(pk, p2, precision)
            if k64 is not None:
                return self._matvec_on_device(k64.reshape(p2.shape), plain, kexp, pkind)
        k, kexp, pkind = enc.signed_mantissas(pk, plain, precision)
        X = _objarray(k, plain.shape)
        kind = enc.FLOAT if enc.FLOAT in (self.kind, pkind) else enc.INT
        if on_gpu:  # exact mantissas (an object array) that still fit in int64
            try:
                x64 = np.array(self._matvec_layout(X, transpose), dtype=np.int64)
            except OverflowError:
                x64 = None
            if x64 is not None:
                return self._matvec_on_device(x64, plain, kexp, pkind)
        if transpose:  # X @ c  ==  (c.T @ X.T).T
            C, X = self._data.T, X.T
        else:
            C = self._data
        c2 = C.reshape(1, -1) if C.ndim == 1 else C
        x2 = X.reshape(-1, 1) if X.ndim == 1 else X
        if c2.ndim != 2 or x2.ndim != 2:
            raise ValueError("matmul supports 1-d and 2-d operands")
        if c2.shape[1] != x2.shape[0]:
            raise ValueError(f"matmul shape mismatch: {self.shape} and {plain.shape}")
        cols = [x2[:, j].tolist() for j in range(x2.shape[1])]
        rows = [arith._matmul_raw(c2[i].tolist(), cols, pk.nsquare) for i in range(c2.shape[0])]
        out = _objarray([v for r in rows for v in r], (c2.shape[0], x2.shape[1]))
        if C.ndim == 1:
            out = out[0]
        if X.ndim == 1:
            out = out[..., 0]
        if transpose:
            out = out.T
        if not isinstance(out, np.ndarray):
            out = _objarray([out], ())
        return CipherArray._wrap(pk, out, self.exponent + kexp, kind)

    @staticmethod
    def _matvec_layout(plain: np.ndarray, transpose: bool) -> np.ndarray:
        """The plaintext matrix of ``c @ X`` / ``X @ c`` (1-d c) with one row per ciphertext."""
        return plain.reshape(-1, 1) if plain.ndim == 1 else (plain.T if transpose else plain)

    def _matvec_on_device(self, x2: np.ndarray, plain: np.ndarray, kexp: int, pkind: str):
        """prod_r c_r^x2[r, j] on the device for int64 x2 (rows = this array's ciphertexts)."""
        if x2.shape[0] != self.size:
            raise ValueError(f"matmul shape mismatch: {self.shape} and {plain.shape}")
        kind = enc.FLOAT if enc.FLOAT in (self.kind, pkind) else enc.INT
        dev = device.matvec(self._device(), x2)
        shape = (x2.shape[1],) if plain.ndim == 2 else ()
        return CipherArray._wrap_device(self._pk, dev, shape, self.exponent + kexp, kind)

    def __matmul__(self, other: Any) -> CipherArray:
        if isinstance(other, CipherArray):
            raise TypeError(HOMOMORPHIC_ONLY)
        return self._matmul_data(self._plain(other), None, transpose=False)

    def __rmatmul__(self, other: Any) -> CipherArray:
        if isinstance(other, CipherArray):
            raise TypeError(HOMOMORPHIC_ONLY)
        return self._matmul_data(self._plain(other), None, transpose=True)

    def matmul(self, plain: Any, precision: float | None = None, left: bool = False) -> CipherArray:
        """``self @ plain`` (or ``plain @ self`` with ``left=True``) with floats encoded at
        ``precision``; multi-exponentiation (Pippenger) per output element."""
        return self._matmul_data(self._plain(plain), precision, transpose=left)

    # -- randomness -----------------------------------------------------------------
    def rerandomize(self) -> CipherArray:
        """Fresh randomness: multiply each ciphertext by a new hs^a (same plaintexts)."""
        pk = self._pk
        if self.on_device and _backend.use_gpu(self.size):  # times an encryption of 0: hs^a
            dev = device.add(self._dev, device.encrypt(pk, [0] * self.size))
            return CipherArray._wrap_device(pk, dev, self.shape, self.exponent, self.kind)
        r = fresh_randomness(pk, self.size)
        flat = arith._add_raw(self._data.ravel().tolist(), r, pk.nsquare)
        return self._like(_objarray(flat, self.shape))

    obfuscate = rerandomize

    # -- serialisation --------------------------------------------------------------
    def to_bytes(self) -> bytes:
        pk = self._pk
        width = _wire_width(pk)
        header = _HEADER.pack(
            _MAGIC,
            _VERSION,
            0 if self.kind == enc.INT else 1,
            self.exponent,
            pk.fingerprint,
            width,
            self.ndim,
        ) + struct.pack(f">{self.ndim}Q", *self.shape)
        if self._obj is None:  # straight from the device limbs, no integers in between
            payload = self._dev.to_bytes(width)
        else:
            payload = b"".join([int(c).to_bytes(width, "big") for c in self._obj.ravel().tolist()])
        return header + payload

    @classmethod
    def from_bytes(cls, b: bytes, public_key: PublicKey) -> CipherArray:
        """Parse :meth:`to_bytes` output; checks format, key fingerprint and every
        ciphertext (range, invertibility)."""
        b = bytes(b)
        if len(b) < _HEADER.size:
            raise ValueError("truncated CipherArray bytes")
        magic, ver, kind, exp, fp, width, ndim = _HEADER.unpack_from(b, 0)
        if magic != _MAGIC or ver != _VERSION:
            raise ValueError("not a CipherArray serialisation (bad magic/version)")
        if fp != public_key.fingerprint:
            raise KeyMismatchError(
                "ciphertexts were serialised under a different public key "
                f"(fingerprint {fp.hex()[:12]} != {public_key.fingerprint.hex()[:12]})"
            )
        if width != _wire_width(public_key) or kind not in (0, 1):
            raise ValueError("corrupt CipherArray header")
        off = _HEADER.size
        try:
            shape = struct.unpack_from(f">{ndim}Q", b, off)
        except struct.error as e:
            raise ValueError("truncated CipherArray header") from e
        off += 8 * ndim
        size = int(np.prod(shape, dtype=np.int64))
        if len(b) - off != size * width:
            raise ValueError("CipherArray payload length does not match its shape")
        kind_s = enc.INT if kind == 0 else enc.FLOAT
        if _backend.use_gpu(size):  # a GPU party: straight to device limbs, checked there
            dev = device.from_wire(public_key, memoryview(b)[off:], size, width)
            return cls._wrap_device(public_key, dev, shape, exp, kind_s)
        flat = [
            mpz(int.from_bytes(b[off + i * width : off + (i + 1) * width], "big"))
            for i in range(size)
        ]
        validate_ciphertexts(public_key, flat)
        return cls._wrap(public_key, _objarray(flat, shape), exp, kind_s)

    def __reduce__(self):
        return (_unpickle, (self._pk, self.to_bytes()))

    # -- phe interop ----------------------------------------------------------------
    @classmethod
    def from_phe(cls, encrypted: Any, public_key: PublicKey | None = None) -> CipherArray:
        from .interop import from_phe

        return from_phe(encrypted, public_key)

    def to_phe(self) -> Any:
        from .interop import to_phe

        return to_phe(self)


def _unpickle(pk: PublicKey, b: bytes) -> CipherArray:
    return CipherArray.from_bytes(b, pk)


def concatenate(arrays: list[CipherArray], axis: int = 0) -> CipherArray:
    """Join CipherArrays (same key) along ``axis``; exponents aligned to the lowest."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("need at least one CipherArray")
    for a in arrays:
        if not isinstance(a, CipherArray):
            raise TypeError("concatenate takes CipherArrays only")
        arrays[0]._check_key(a)
    exp = min(a.exponent for a in arrays)
    kind = enc.FLOAT if any(a.kind == enc.FLOAT for a in arrays) else enc.INT
    data = np.concatenate([a._at_exponent(exp) for a in arrays], axis=axis)
    return CipherArray._wrap(arrays[0]._pk, data, exp, kind)
